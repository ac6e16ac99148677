"""Subscribers' delivery limits (own daily cap, quiet hours, time zone: columns of `subscribers`) and
what they hold back: `folded` alert rows, and the summary mails (deliveries of kind 'summary') that
carry them, their items listed in digest_items like a digest's (so an item reaches a subscriber in at
most one digest or summary). The rules themselves are bot.delivery.quiet's.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime, timedelta

from sqlalchemy import Engine, String, cast, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from bot.models import DeliveryState
from bot.store import summary
from bot.store.schema import deliveries, digest_items, subscribers

D, S = deliveries.c, subscribers.c
LIMIT_COLUMNS = ("max_per_day", "quiet_start", "quiet_end", "timezone")
INSTANT_MODES = ("instant", "both")
SUMMARY_MAILS = (None, None, "email", 0)  # the summary group every summary mail is counted in
_LONGEST_DAY = timedelta(hours=50)  # covers "since local midnight" in every zone (UTC-12 … UTC+14, DST)


def limited():
    """SQL: the subscriber has a cap or quiet hours of their own (fan-out checks them one by one)."""
    return or_(S.max_per_day.is_not(None), S.quiet_start.is_not(None))


def set_limits(engine: Engine, subscriber_id: int, max_per_day: int | None, quiet_start: str | None,
               quiet_end: str | None, tz: str | None) -> bool:
    """Store checked limits (bot.delivery.quiet parses them); False when the subscriber is gone."""
    with engine.begin() as conn:
        res = conn.execute(update(subscribers).where(S.id == subscriber_id, S.status != "deleted").values(
            max_per_day=max_per_day or None, quiet_start=quiet_start, quiet_end=quiet_end, timezone=tz))
    return res.rowcount == 1


def gated_subscribers(conn, batch: int, everyone: bool) -> Iterator[list[dict]]:
    """Active instant/both subscribers fan-out must look at one by one (with topics or limits; all of
    them when a global cap applies), in keyset-paged batches."""
    last = 0
    no_topics = or_(S.topics.is_(None), cast(S.topics, String).in_(["[]", "null", ""]))
    while True:
        q = (select(S.id, S.topics, S.mode, *(S[c] for c in LIMIT_COLUMNS))
             .where(S.status == "active", S.mode.in_(INSTANT_MODES), S.id > last).order_by(S.id).limit(batch))
        if not everyone:
            q = q.where(or_(~no_topics, limited()))
        rows = [dict(r) for r in conn.execute(q).mappings()]
        if not rows:
            return
        last = rows[-1]["id"]
        yield rows


def alert_times(conn, subscriber_ids: list[int], now: datetime) -> dict[int, list[datetime]]:
    """When each subscriber's recent alert mails were queued (folded and cancelled ones do not count)."""
    out: dict[int, list[datetime]] = defaultdict(list)
    for i in range(0, len(subscriber_ids), 900):
        q = select(D.subscriber_id, D.created_at).where(
            D.subscriber_id.in_(subscriber_ids[i:i + 900]), D.kind == "alert", D.channel == "email",
            D.created_at > now - _LONGEST_DAY, D.state.not_in([DeliveryState.FOLDED, DeliveryState.CANCELLED]))
        for sid, at in conn.execute(q):
            out[sid].append(at)
    return out


def _insert(conn, table):
    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)


def fold(conn, item_id: int, folds: list[tuple[int, str, datetime | None]], now: datetime) -> int:
    """Record folded alerts, one `folded` row per (subscriber_id, reason, summary due); a due time puts
    the item into the subscriber's pending summary (created when none waits). Summary rows created."""
    if not folds:
        return 0
    rows = [{"item_id": item_id, "channel": "email", "recipient": str(sid), "subscriber_id": sid, "revision": 0,
             "kind": "alert", "state": DeliveryState.FOLDED, "attempts": 0, "last_error": reason,
             "created_at": now, "next_attempt_at": None} for sid, reason, _ in folds]
    n = conn.execute(_insert(conn, deliveries).on_conflict_do_nothing(), rows).rowcount or 0
    summary.queued(conn, (item_id, None, "email", 0), n, now, DeliveryState.FOLDED)
    created = 0
    for sid, _, due in folds:
        if due is None:
            continue  # the subscriber's next digest carries it
        summary_id = _pending_summary(conn, sid, due)
        if summary_id is None:
            summary_id = conn.execute(deliveries.insert().values(
                item_id=None, digest_id=None, channel="email", recipient=str(sid), subscriber_id=sid, revision=0,
                kind="summary", state=DeliveryState.PENDING, attempts=0, created_at=now, next_attempt_at=due,
            )).inserted_primary_key[0]
            summary.queued(conn, SUMMARY_MAILS, 1, now)
            created += 1
        conn.execute(_insert(conn, digest_items).on_conflict_do_nothing(),
                     [{"subscriber_id": sid, "item_id": item_id, "delivery_id": summary_id}])
    return created


def _pending_summary(conn, subscriber_id: int, due: datetime) -> int | None:
    """The subscriber's summary still waiting to go (claimed ones are left alone), moved to `due` if later."""
    row = conn.execute(select(D.id, D.next_attempt_at).where(
        D.subscriber_id == subscriber_id, D.kind == "summary", D.state == DeliveryState.PENDING)
        .order_by(D.id.desc()).limit(1)).first()
    if row is None:
        return None
    # An UPDATE that still requires `pending`: a row claimed meanwhile is not reused (its items are read).
    res = conn.execute(update(deliveries).where(D.id == row.id, D.state == DeliveryState.PENDING)
                       .values(next_attempt_at=max(row.next_attempt_at, due)))
    return row.id if res.rowcount == 1 else None


def quiet_correction_rows(conn, item_id: int, revision: int) -> list[dict]:
    """Pending correction mails of one revision whose subscriber has quiet hours (they may have to wait)."""
    q = (select(D.id, D.subscriber_id, *(S[c] for c in LIMIT_COLUMNS))
         .select_from(deliveries.join(subscribers, S.id == D.subscriber_id))
         .where(D.item_id == item_id, D.revision == revision, D.kind == "update", D.channel == "email",
                D.state == DeliveryState.PENDING, S.quiet_start.is_not(None)))
    return [dict(r) for r in conn.execute(q).mappings()]


def defer(conn, until: list[tuple[int, datetime]]) -> int:
    """Move pending rows to later times: [(delivery_id, next_attempt_at)]; rows moved."""
    moved = 0
    for delivery_id, when in until:
        moved += conn.execute(update(deliveries).where(D.id == delivery_id, D.state == DeliveryState.PENDING)
                              .values(next_attempt_at=when)).rowcount or 0
    return moved
