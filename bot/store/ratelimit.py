"""Sliding-window abuse limits (sign-ups per IP/address, admin logins) kept in `rate_events`."""
from __future__ import annotations

import hashlib
import random
from datetime import datetime, timedelta

from sqlalchemy import Engine, delete, func, insert, select

from bot.store.db import utcnow
from bot.store.schema import rate_events


PRUNE_CHANCE = 0.02


def bucket(kind: str, value: str) -> str:
    """A bucket name; the value is hashed so addresses and IPs are not kept in clear."""
    digest = hashlib.sha256(value.strip().lower().encode("utf-8", "replace")).hexdigest()[:32]
    return f"{kind}:{digest}"


def allow(engine: Engine, name: str, limit: int, window_seconds: float, now: datetime | None = None,
          record: bool = True) -> bool:
    """True (and count one event when record) while fewer than `limit` events fell in the window."""
    now = now or utcnow()
    since = now - timedelta(seconds=window_seconds)
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # Web replicas count into the same bucket: one check-then-record at a time per bucket.
            conn.execute(select(func.pg_advisory_xact_lock(func.hashtext(name))))
        n = conn.execute(select(func.count()).select_from(rate_events)
                         .where(rate_events.c.bucket == name, rate_events.c.at > since)).scalar_one()
        if n >= limit:
            return False
        if record:
            conn.execute(insert(rate_events).values(bucket=name, at=now))
    if random.random() < PRUNE_CHANCE:
        prune(engine, now=now)  # keeps the table small without a separate job
    return True


def hit(engine: Engine, name: str, now: datetime | None = None) -> None:
    """Count one event (e.g. a failed login) without checking the limit."""
    with engine.begin() as conn:
        conn.execute(insert(rate_events).values(bucket=name, at=now or utcnow()))


def count(engine: Engine, name: str, window_seconds: float, now: datetime | None = None) -> int:
    """Events in the bucket within the window."""
    since = (now or utcnow()) - timedelta(seconds=window_seconds)
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(rate_events)
                            .where(rate_events.c.bucket == name, rate_events.c.at > since)).scalar_one()


def prune(engine: Engine, older_than_seconds: float = 2 * 86400, now: datetime | None = None) -> int:
    """Forget events older than every window in use; return rows removed."""
    cutoff = (now or utcnow()) - timedelta(seconds=older_than_seconds)
    with engine.begin() as conn:
        return conn.execute(delete(rate_events).where(rate_events.c.at < cutoff)).rowcount
