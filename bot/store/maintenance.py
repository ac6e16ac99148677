"""Housekeeping: prune old items, finished deliveries and processed bounce mails after `[bot] retention_days`,
fold old stats buckets."""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Engine, and_, delete, exists, func, or_, select

from bot.models import AWAITING_FANOUT, FINAL_STATES, AlertState
from bot.store import bounces, dashboard, stats
from bot.store.db import retry_locked, utcnow
from bot.store.schema import deliveries, digests, items


def prune(engine: Engine, retention_days: int, now: datetime | None = None) -> dict[str, int]:
    """Delete finished deliveries, items, digest runs and processed bounce mails older than the retention,
    and fold stats buckets older than 35 days into one (totals kept); return counts."""
    cutoff = (now or utcnow()) - timedelta(days=retention_days)
    # Rows still waiting to be sent are never pruned, whatever their age.
    unfinished = exists().where(deliveries.c.item_id == items.c.id, deliveries.c.state.notin_(FINAL_STATES))
    # An item is old only when it was both detected and published before the cutoff: a feed that
    # still lists an old item keeps it recent through its publication date, so it is not re-alerted.
    old_item = and_(func.coalesce(items.c.detected_at, items.c.published_at) < cutoff,
                    or_(items.c.published_at.is_(None), items.c.published_at < cutoff), ~unfinished)

    def run() -> dict[str, int]:
        with engine.begin() as conn:
            n_del = conn.execute(delete(deliveries).where(
                deliveries.c.created_at < cutoff, deliveries.c.state.in_(FINAL_STATES))).rowcount
            dashboard.fold_latencies(conn, old_item)  # the latency histogram keeps counting them
            n_items = conn.execute(delete(items).where(old_item)).rowcount
            n_dig = conn.execute(delete(digests).where(digests.c.created_at < cutoff, ~exists().where(
                deliveries.c.digest_id == digests.c.id))).rowcount
            n_bounces = bounces.prune(conn, cutoff)  # never one still waiting to be processed
        return {"deliveries": n_del, "items": n_items, "digests": n_dig, "bounce_mails": n_bounces}
    counts = retry_locked(run)
    counts["stats_buckets"] = retry_locked(lambda: stats.fold(engine, now or utcnow()))
    return counts


def summary_counts(engine: Engine) -> dict[str, int]:
    """Numbers for the startup summary: sources (active/paused), subscribers by status, items."""
    from bot.store.schema import sources, subscribers

    with engine.connect() as conn:
        out = {f"sources_{'paused' if p else 'active'}": n for p, n in conn.execute(
            select(sources.c.paused, func.count()).group_by(sources.c.paused))}
        out.update({f"subscribers_{s}": n for s, n in conn.execute(
            select(subscribers.c.status, func.count()).group_by(subscribers.c.status))})
        out["items"] = conn.execute(select(func.count()).select_from(items)).scalar() or 0
    return out


def orphaned_alerts(engine: Engine, retention_days: int, now: datetime | None = None) -> list[int]:
    """Alerts whose fan-out is owed (`detected`/`approved`): the process died between storing them and
    queueing their deliveries (two transactions). Only items detected within the retention
    are considered, so an old item whose finished rows were pruned is never alerted again."""
    cutoff = (now or utcnow()) - timedelta(days=retention_days)
    has_rows = exists().where(deliveries.c.item_id == items.c.id)
    # `queued` without rows: an empty audience, or a database written by a release that marked items
    # queued before creating their rows; queueing again is idempotent.
    owed = or_(items.c.alert_state.in_(AWAITING_FANOUT), and_(items.c.alert_state == AlertState.QUEUED, ~has_rows))
    query = select(items.c.id).where(owed, items.c.is_flash.is_(True), items.c.detected_at >= cutoff).order_by(items.c.id)
    with engine.connect() as conn:
        return [r[0] for r in conn.execute(query)]
