"""Digest storage: candidate items, digest subscribers, and queuing one digest run atomically."""
from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from sqlalchemy import Connection, Engine, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from bot.store import summary
from bot.store.claims import notify
from bot.store.schema import deliveries, digest_items, digests, items, meta, sources, subscribers

DIGEST_MODES = ("digest", "both")
# Items that never belong in a newsletter: held for approval, cancelled by an operator.
_EXCLUDED_ALERT_STATES = ("held", "cancelled")


def item_time():
    """When an item became known: detected, else published, else updated."""
    return func.coalesce(items.c.detected_at, items.c.published_at, items.c.updated_at)


def candidate_items(conn: Connection, since: datetime, limit: int = 5000) -> list[dict]:
    """Items newer than `since` fit for a digest (no baseline, duplicate, held or cancelled one)."""
    q = (
        select(items, sources.c.name.label("source_name"), sources.c.category.label("source_category"),
               sources.c.origin.label("source_origin"), item_time().label("known_at"))
        .join(sources, sources.c.id == items.c.source_id)
        .where(item_time() > since, items.c.baseline.is_(False), items.c.duplicate_of.is_(None),
               items.c.alert_state.notin_(_EXCLUDED_ALERT_STATES))
        .order_by(item_time().desc())
        .limit(limit)
    )
    rows = [dict(r._mapping) for r in conn.execute(q)]
    for r in rows:  # SQLite hands back func.coalesce() of UTCDateTime columns as naive strings
        r["known_at"] = max(t for t in (r["detected_at"], r["published_at"], r["updated_at"]) if t)
    return rows


def digest_subscribers(engine: Engine, batch: int = 500, only_email: str | None = None) -> Iterator[list[dict]]:
    """Active subscribers whose mode includes the digest, in batches (memory stays flat)."""
    after = 0
    while True:
        q = (select(subscribers).where(subscribers.c.id > after, subscribers.c.status == "active",
                                       subscribers.c.mode.in_(DIGEST_MODES), subscribers.c.email.is_not(None))
             .order_by(subscribers.c.id).limit(batch))
        if only_email is not None:
            q = q.where(func.lower(subscribers.c.email) == only_email.lower())
        with engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(q)]
        if not rows:
            return
        yield rows
        after = rows[-1]["id"]


def subscriber_by_email(engine: Engine, email: str) -> dict | None:
    """One subscriber row by address (case-insensitive), whatever its status."""
    with engine.connect() as conn:
        row = conn.execute(select(subscribers).where(func.lower(subscribers.c.email) == email.lower())).first()
    return dict(row._mapping) if row else None


def already_digested(conn: Connection, subscriber_ids: list[int], item_ids: list[int]) -> set[tuple[int, int]]:
    """(subscriber_id, item_id) pairs that went into an earlier digest."""
    if not subscriber_ids or not item_ids:
        return set()
    q = select(digest_items.c.subscriber_id, digest_items.c.item_id).where(
        digest_items.c.subscriber_id.in_(subscriber_ids), digest_items.c.item_id.in_(item_ids))
    return set(map(tuple, conn.execute(q).all()))  # all() fetches in one call: far cheaper per row than iterating


def digest_exists(engine: Engine, run_key: str) -> bool:
    """Whether a digest run with this key was already queued."""
    with engine.connect() as conn:
        return conn.execute(select(digests.c.id).where(digests.c.run_key == run_key)).first() is not None


def create_digest(conn: Connection, run_key: str, now: datetime) -> int | None:
    """Insert the run's row inside the caller's transaction; None when the key exists already."""
    try:
        with conn.begin_nested():
            return conn.execute(insert(digests).values(run_key=run_key, created_at=now)).inserted_primary_key[0]
    except IntegrityError:
        return None


def queue_subscriber_digests(conn: Connection, digest_id: int, todo: list[tuple[int, list[int]]], now: datetime) -> None:
    """One pending digest delivery per (subscriber_id, item_ids), with its digest_items rows: two multi-row statements."""
    if not todo:
        return
    rows = [{"digest_id": digest_id, "item_id": None, "channel": "email", "recipient": str(sid), "subscriber_id": sid,
             "revision": 0, "kind": "digest", "state": "pending", "attempts": 0, "next_attempt_at": now, "created_at": now}
            for sid, _ in todo]
    stmt = insert(deliveries).returning(deliveries.c.id, deliveries.c.subscriber_id, sort_by_parameter_order=True)
    delivery_of = {r.subscriber_id: r.id for r in conn.execute(stmt, rows)}
    summary.queued(conn, (None, digest_id, "email", 0), len(delivery_of), now)
    conn.execute(insert(digest_items), [
        {"subscriber_id": sid, "item_id": i, "delivery_id": delivery_of[sid]} for sid, ids in todo for i in ids])
    notify(conn)  # PostgreSQL: listening workers wake at commit


def mark_digested(conn: Connection, subscriber_ids: list[int], now: datetime) -> None:
    """Record the digest time of these subscribers (the start of their next digest window)."""
    if subscriber_ids:
        conn.execute(update(subscribers).where(subscribers.c.id.in_(subscriber_ids)).values(last_digest_at=now))


def set_meta_once(engine: Engine, key: str, value: str) -> str:
    """Store key=value unless the key exists; return the stored value (race-free between processes)."""
    query = select(meta.c.value).where(meta.c.key == key)
    with engine.connect() as conn:
        row = conn.execute(query).first()
    if row:
        return row[0]
    try:
        with engine.begin() as conn:
            conn.execute(insert(meta).values(key=key, value=value))
        return value
    except IntegrityError:  # another process stored it first: theirs is the value
        with engine.connect() as conn:
            return conn.execute(query).scalar_one()