"""Signed, unforgeable tokens for unsubscribe, preferences and sign-up confirmation links, and VERP addresses."""
from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

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
# A bounce comes back to the envelope sender, so each message gets its own return path:
# b-<delivery id>-<subscriber id>-<group>-<mac>, the group being a<item>r<revision> (an alert or its
# correction), d<digest> (a digest run) or m (a summary mail). The group and subscriber let a bounce
# be attributed after compaction deleted the row (bot/store/outcomes.py revives it). The older form
# b-<delivery id>-<mac> is still read. The mac is lowercase base32 (MTAs may lowercase a local part),
# 80 bits of HMAC-SHA256 over everything before it.
_BOUNCE = re.compile(r"^b-(\d{1,18})(?:-(\d{1,18})-(a\d{1,18}r\d{1,6}|d\d{1,18}|m))?-([a-z2-7]{16})$")
_UNSUB = re.compile(r"^u-(\d{1,18})-([a-z2-7]{16})$")
_GROUP = re.compile(r"^(?:a(\d+)r(\d+)|d(\d+)|m)$")
BOUNCE, MAILTO_UNSUB = "b", "u"


@dataclass(frozen=True)
class BounceRef:
    """What a verified return path names: the delivery, and (new form) its subscriber and group."""

    delivery_id: int
    subscriber_id: int | None = None  # None: the older form, which names the delivery alone
    item_id: int | None = None
    digest_id: int | None = None
    revision: int = 0


def _group(row: Mapping) -> str:
    if row.get("item_id") is not None:
        return f"a{row['item_id']}r{row.get('revision') or 0}"
    return f"d{row['digest_id']}" if row.get("digest_id") is not None else "m"


class Verp:
    """Signed local parts: `b-…-<mac>` (return path) and `u-<subscriber>-<mac>` (mailto unsubscribe)."""

    def __init__(self, key: str, domain: str):
        self.domain = domain.lower()
        self._mac = hmac.new(hmac.new(key.encode(), b"flashbot-verp", hashlib.sha256).digest(), digestmod=hashlib.sha256)

    def _sign(self, kind: str, number: int, nonce: str = "") -> str:
        mac = self._mac.copy()
        mac.update(f"{kind}:{number}:{nonce}".encode())
        return base64.b32encode(mac.digest()[:10]).decode("ascii").lower()

    def bounce_local(self, delivery_id: int, row: Mapping | None = None) -> str:
        """The local part of a delivery's return path (`row`: its subscriber_id, item_id, digest_id and
        revision, which the address then carries; without it, the older delivery-only form)."""
        if row is None or row.get("subscriber_id") is None:
            return f"b-{delivery_id}-{self._sign(BOUNCE, delivery_id)}"
        more = f"{row['subscriber_id']}-{_group(row)}"
        return f"b-{delivery_id}-{more}-{self._sign(BOUNCE, delivery_id, more)}"

    def unsub_local(self, subscriber_id: int, nonce: str) -> str:
        """The local part of a subscriber's mailto unsubscribe address (dies with the nonce)."""
        return f"u-{subscriber_id}-{self._sign(MAILTO_UNSUB, subscriber_id, nonce)}"

    def address(self, local: str) -> str:
        """local@domain."""
        return f"{local}@{self.domain}"

    @staticmethod
    def _local(address: str) -> str:
        return (address.strip().strip("<>").rpartition("@")[0] if "@" in address else address).strip().lower()

    @staticmethod
    def parse(address: str) -> tuple[str, int, str] | None:
        """(kind, number, mac) from an address or local part shaped like ours, whatever its case; else None."""
        local = Verp._local(address)
        if m := _UNSUB.match(local):
            return MAILTO_UNSUB, int(m.group(1)), m.group(2)
        if m := _BOUNCE.match(local):
            return BOUNCE, int(m.group(1)), m.group(4)
        return None

    def on_domain(self, address: str) -> bool:
        """Whether the address belongs to the bounce domain (case-insensitive)."""
        return address.strip().strip("<>").rpartition("@")[2].lower().rstrip(".") == self.domain

    def bounce_ref(self, address: str) -> BounceRef | None:
        """What a b- address names, if its mac verifies; None for anything else."""
        m = _BOUNCE.match(self._local(address))
        if m is None:
            return None
        did, sid, group, mac = int(m.group(1)), m.group(2), m.group(3), m.group(4)
        more = f"{sid}-{group}" if sid else ""
        if not hmac.compare_digest(mac, self._sign(BOUNCE, did, more)):
            return None
        if not sid:
            return BounceRef(did)
        g = _GROUP.match(group)
        return BounceRef(did, int(sid), int(g.group(1)) if g.group(1) else None, int(g.group(3)) if g.group(3) else None,
                         int(g.group(2) or 0))

    def bounce_id(self, address: str) -> int | None:
        """The delivery id a b- address names, if its mac verifies; None for anything else."""
        ref = self.bounce_ref(address)
        return ref.delivery_id if ref else None

    def unsub_ok(self, subscriber_id: int, nonce: str, mac: str) -> bool:
        """Whether a u- mac matches this subscriber's current nonce."""
        return hmac.compare_digest(mac, self._sign(MAILTO_UNSUB, subscriber_id, nonce))
