"""Sliding-window abuse limits (sign-ups per IP/address, admin logins) kept in `rate_events`."""
from __future__ import annotations

import hashlib
import hmac
import random
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, delete, func, insert, select, text

from bot.store.db import utcnow
from bot.store.schema import rate_events


PRUNE_CHANCE = 0.02


def bucket(kind: str, value: str, key: str) -> str:
    """A bucket name; the value is an HMAC with the secret key, so the table holds no address or IP
    and a copy of it cannot be reversed by hashing every IPv4 address or a list of addresses."""
    digest = hmac.new(key.encode("utf-8"), value.strip().lower().encode("utf-8", "replace"),
                      hashlib.sha256).hexdigest()[:32]
    return f"{kind}:{digest}"


def _serialize(conn: Connection, name: str) -> None:
    # PostgreSQL: one transaction per bucket at a time. SQLite needs nothing here: the INSERT that
    # follows takes the database's single write lock before anything is counted.
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:b))"), {"b": name})


def take(engine: Engine, name: str, limit: int, window_seconds: float,
         now: datetime | None = None) -> tuple[int, int] | None:
    """Count one event unless `limit` events already fell in the window: (event id, its rank in the
    window, 1 to limit), or None.

    Atomic across threads and processes: the event is written first and counted with the rest
    inside one write transaction, and rolled back when it went over the limit.
    """
    now = now or utcnow()
    since = now - timedelta(seconds=window_seconds)
    with engine.connect() as conn:
        with conn.begin() as tx:
            _serialize(conn, name)
            event_id = conn.execute(insert(rate_events).values(bucket=name, at=now)).inserted_primary_key[0]
            n = conn.execute(select(func.count()).select_from(rate_events)
                             .where(rate_events.c.bucket == name, rate_events.c.at > since)).scalar_one()
            if n > limit:
                tx.rollback()
    if random.random() < PRUNE_CHANCE:
        prune(engine, now=now)  # keeps the table small without a separate job
    return (event_id, n) if n <= limit else None


def allow(engine: Engine, name: str, limit: int, window_seconds: float, now: datetime | None = None) -> bool:
    """True (and one event counted) while fewer than `limit` events fell in the window."""
    return take(engine, name, limit, window_seconds, now) is not None


def give_back(engine: Engine, event_ids: list[int]) -> None:
    """Forget events counted by take() (a login attempt that turned out right)."""
    ids = [i for i in event_ids if i is not None]
    if ids:
        with engine.begin() as conn:
            conn.execute(delete(rate_events).where(rate_events.c.id.in_(ids)))


def hit(engine: Engine, name: str, now: datetime | None = None) -> None:
    """Count one event without checking the limit."""
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
