"""Signed, unforgeable tokens for unsubscribe, preferences and sign-up confirmation links, and VERP addresses."""
from __future__ import annotations

import base64
import hashlib
import hmac
import re
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


# -- VERP addresses (bounces) ---------------------------------------------------------------------
# A bounce comes back to the envelope sender, so each message gets its own: b-<delivery id>-<mac>.
# The mac is lowercase base32 (MTAs may lowercase a local part), 80 bits of HMAC-SHA256.
_VERP = re.compile(r"^([bu])-(\d{1,18})-([a-z2-7]{16})$")
BOUNCE, MAILTO_UNSUB = "b", "u"


class Verp:
    """Signed local parts: `b-<delivery>-<mac>` (return path) and `u-<subscriber>-<mac>` (mailto unsubscribe)."""

    def __init__(self, key: str, domain: str):
        self.domain = domain.lower()
        self._mac = hmac.new(hmac.new(key.encode(), b"flashbot-verp", hashlib.sha256).digest(), digestmod=hashlib.sha256)

    def _sign(self, kind: str, number: int, nonce: str = "") -> str:
        mac = self._mac.copy()
        mac.update(f"{kind}:{number}:{nonce}".encode())
        return base64.b32encode(mac.digest()[:10]).decode("ascii").lower()

    def bounce_local(self, delivery_id: int) -> str:
        """The local part of a delivery's return path."""
        return f"b-{delivery_id}-{self._sign(BOUNCE, delivery_id)}"

    def unsub_local(self, subscriber_id: int, nonce: str) -> str:
        """The local part of a subscriber's mailto unsubscribe address (dies with the nonce)."""
        return f"u-{subscriber_id}-{self._sign(MAILTO_UNSUB, subscriber_id, nonce)}"

    def address(self, local: str) -> str:
        """local@domain."""
        return f"{local}@{self.domain}"

    @staticmethod
    def parse(address: str) -> tuple[str, int, str] | None:
        """(kind, number, mac) from an address or local part shaped like ours, whatever its case; else None."""
        local = address.strip().strip("<>").rpartition("@")[0] if "@" in address else address
        m = _VERP.match(local.strip().lower())
        return (m.group(1), int(m.group(2)), m.group(3)) if m else None

    def on_domain(self, address: str) -> bool:
        """Whether the address belongs to the bounce domain (case-insensitive)."""
        return address.strip().strip("<>").rpartition("@")[2].lower().rstrip(".") == self.domain

    def bounce_id(self, address: str) -> int | None:
        """The delivery id a b- address names, if its mac verifies; None for anything else."""
        parsed = self.parse(address)
        if parsed is None or parsed[0] != BOUNCE:
            return None
        return parsed[1] if hmac.compare_digest(parsed[2], self._sign(BOUNCE, parsed[1])) else None

    def unsub_ok(self, subscriber_id: int, nonce: str, mac: str) -> bool:
        """Whether a u- mac matches this subscriber's current nonce."""
        return hmac.compare_digest(mac, self._sign(MAILTO_UNSUB, subscriber_id, nonce))

