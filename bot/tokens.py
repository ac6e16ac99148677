"""Signed, unforgeable tokens for unsubscribe, preferences and sign-up confirmation links."""
from __future__ import annotations

import secrets

from itsdangerous import BadSignature, SignatureExpired, URLSafeSerializer, URLSafeTimedSerializer
from itsdangerous.encoding import base64_encode
from itsdangerous.serializer import Serializer
from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError

from bot.store.schema import meta

# One salt per purpose, so a token for one action is useless for another.
UNSUBSCRIBE = "unsubscribe"
PREFERENCES = "preferences"
CONFIRM = "confirm"


class BadToken(Exception):
    """Forged, tampered, expired or stale token."""


class PlainURLSafeSerializer(URLSafeSerializer):
    """URLSafeSerializer that never tries zlib: a token holds an id and a random nonce, which do not
    compress, and trying costs time on every email (see BENCHMARKS.md). Its tokens are plain URLSafeSerializer
    tokens, and it still reads compressed ones (older tokens stay valid)."""

    def dump_payload(self, obj) -> bytes:
        """Compact JSON, base64url without padding (no compression)."""
        return base64_encode(Serializer.dump_payload(self, obj))


def secret_key(engine: Engine, configured: str | None) -> str:
    """The configured key, else one generated once and kept in the database (survives restarts)."""
    if configured:
        return configured
    query = select(meta.c.value).where(meta.c.key == "secret_key")
    with engine.connect() as conn:
        row = conn.execute(query).first()
    if row:
        return row[0]
    try:
        with engine.begin() as conn:
            conn.execute(meta.insert().values(key="secret_key", value=secrets.token_urlsafe(48)))
    except IntegrityError:
        pass  # another process or thread made it first (the web app and the delivery engine start together)
    with engine.connect() as conn:
        return conn.execute(query).scalar_one()


def make_token(key: str, purpose: str, subscriber_id: int, nonce: str) -> str:
    """A token naming the subscriber and its current nonce (rotating the nonce revokes it)."""
    if purpose == CONFIRM:
        return URLSafeTimedSerializer(key, salt=purpose).dumps([subscriber_id, nonce])
    return PlainURLSafeSerializer(key, salt=purpose).dumps([subscriber_id, nonce])


def read_token(key: str, purpose: str, token: str, max_age: float | None = None) -> tuple[int, str]:
    """(subscriber_id, nonce) from a token; BadToken if it is not genuine or too old."""
    try:
        if purpose == CONFIRM:
            data = URLSafeTimedSerializer(key, salt=purpose).loads(token, max_age=max_age)
        else:
            data = URLSafeSerializer(key, salt=purpose).loads(token)
    except SignatureExpired:
        raise BadToken("expired") from None
    except BadSignature:
        raise BadToken("invalid") from None
    if not (isinstance(data, list) and len(data) == 2 and isinstance(data[0], int) and isinstance(data[1], str)):
        raise BadToken("invalid")
    return data[0], data[1]


def link(public_url: str, purpose: str, token: str) -> str:
    """The absolute URL for a token: /unsubscribe/T, /preferences/T, /confirm/T."""
    return f"{public_url}/{purpose}/{token}"
