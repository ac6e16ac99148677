"""The stats table: counts per 15-minute bucket of delivery outcomes, poll outcomes, subscriber events and bounces.

Each count is added in the transaction of the change it counts (bump), so charts and Prometheus
counters agree with the rows exactly, survive restarts and are shared by every process.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta, timezone

from sqlalchemy import Connection, Engine, delete, func, select

from bot.models import DeliveryState, SendOutcome, SubscriberEvent
from bot.store.schema import deliveries, stats, subscribers

BUCKET = timedelta(minutes=15)
# Buckets older than this are folded into FOLDED: charts look back 30 days at most.
KEEP = timedelta(days=35)
FOLDED = datetime(1970, 1, 1, tzinfo=timezone.utc)
DELIVERY, POLL, SUBSCRIBER = "delivery", "poll", "subscriber"
BOUNCE = "bounce"  # bounces and complaints after the hand-off, per BounceKind (bot.store.outcomes)


def bucket_of(at: datetime) -> datetime:
    """The start of the UTC quarter hour holding `at`."""
    at = at.astimezone(timezone.utc)
    return at.replace(minute=at.minute - at.minute % 15, second=0, microsecond=0)


def _insert(conn: Connection):
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(stats)


def bump(conn: Connection, metric: str, events: Iterable[tuple[datetime, str, str]], n: int = 1) -> None:
    """Count `n` for each (when, label, outcome) event, inside the caller's transaction."""
    counts: Counter = Counter()
    for at, label, outcome in events:
        counts[(bucket_of(at), label, str(outcome))] += n
    add(conn, metric, counts)


def add(conn: Connection, metric: str, counts: Mapping[tuple[datetime, str, str], int]) -> None:
    """Add {(bucket, label, outcome): n} to the table (an upsert per key, one statement)."""
    rows = [{"bucket": b, "metric": metric, "label": label, "outcome": outcome, "n": n}
            for (b, label, outcome), n in counts.items() if n]
    if not rows:
        return
    ins = _insert(conn)
    stmt = ins.on_conflict_do_update(index_elements=["bucket", "metric", "label", "outcome"],
                                     set_={"n": stats.c.n + ins.excluded.n})
    conn.execute(stmt, rows)


def series(engine: Engine, metric: str, since: datetime) -> list[tuple[datetime, str, str, int]]:
    """(bucket, label, outcome, n) of `metric` from `since` on, oldest first."""
    q = (select(stats.c.bucket, stats.c.label, stats.c.outcome, stats.c.n)
         .where(stats.c.bucket >= bucket_of(since), stats.c.metric == metric)
         .order_by(stats.c.bucket))
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(q)]


def totals(engine: Engine, metric: str) -> dict[tuple[str, str], int]:
    """{(label, outcome): n} of `metric` over all time (the Prometheus counters)."""
    q = (select(stats.c.label, stats.c.outcome, func.sum(stats.c.n))
         .where(stats.c.metric == metric).group_by(stats.c.label, stats.c.outcome))
    with engine.connect() as conn:
        return {(label, outcome): int(n) for label, outcome, n in conn.execute(q)}


def fold(engine: Engine, now: datetime) -> int:
    """Merge buckets older than KEEP into the FOLDED bucket (totals unchanged); return buckets merged."""
    cutoff = bucket_of(now - KEEP)
    old = (stats.c.bucket < cutoff) & (stats.c.bucket > FOLDED)
    with engine.begin() as conn:
        rows = conn.execute(select(stats.c.metric, stats.c.label, stats.c.outcome, func.sum(stats.c.n), func.count())
                            .where(old).group_by(stats.c.metric, stats.c.label, stats.c.outcome)).all()
        if not rows:
            return 0
        conn.execute(delete(stats).where(old))
        merged = 0
        for metric, label, outcome, n, buckets in rows:
            add(conn, metric, {(FOLDED, label, outcome): int(n)})
            merged += buckets
    return merged


def backfill(conn: Connection) -> None:
    """Count what a database had before the stats table existed (the v2 migration): sends at their
    sent time, failures at their creation (their end was not recorded), sign-ups, confirmations and
    departures at the subscribers' dates. Streams the rows; one upsert at the end."""
    d, s = deliveries, subscribers
    counts: Counter = Counter()
    for state, channel, sent, created in conn.execute(
            select(d.c.state, d.c.channel, d.c.sent_at, d.c.created_at)
            .where(d.c.state.in_([DeliveryState.SENT, DeliveryState.FAILED]))):
        at = sent if state == DeliveryState.SENT else created
        if at is not None:
            outcome = SendOutcome.SENT if state == DeliveryState.SENT else SendOutcome.FAILED
            counts[(bucket_of(at), channel, str(outcome))] += 1
    add(conn, DELIVERY, counts)
    counts = Counter()
    for status, created, confirmed, left in conn.execute(
            select(s.c.status, s.c.created_at, s.c.confirmed_at, s.c.unsubscribed_at)):
        for at, event in ((created, SubscriberEvent.SIGNUP), (confirmed, SubscriberEvent.CONFIRM),
                          (left if status in ("unsubscribed", "deleted") else None, SubscriberEvent.UNSUBSCRIBE)):
            if at is not None:
                counts[(bucket_of(at), "", str(event))] += 1
    add(conn, SUBSCRIBER, counts)
