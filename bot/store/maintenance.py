"""Housekeeping: compact the delivery log after `[delivery] detail_days`, prune old items, deliveries,
digest runs and processed bounce mails after `[bot] retention_days`, fold old stats buckets, and hand
freed pages back to the file system."""
from __future__ import annotations

import time
from datetime import datetime, timedelta

from sqlalchemy import Engine, and_, delete, exists, func, or_, select

from bot.models import AWAITING_FANOUT, UNFINISHED_STATES, AlertState
from bot.store import bounces, dashboard, stats
from bot.store.compaction import Pacer, fold_old
from bot.store.db import retry_locked, utcnow
from bot.store.schema import digests, items
from bot.store.schema_summary import delivery_counts, delivery_groups

G, C = delivery_groups.c, delivery_counts.c
_BATCH = 500  # items or digest runs deleted per transaction


def _unfinished(subject):
    """Whether the subject (an item id, or minus a digest id) has rows waiting or in flight (from the summary)."""
    return exists().where(G.subject == subject, C.group_id == G.id,
                          C.state.in_([str(s) for s in UNFINISHED_STATES]), C.n > 0)


def _delete_batched(engine: Engine, table, where, pacer: Pacer, before=None) -> int:
    """DELETE … WHERE where, _BATCH ids per transaction (each holds the write lock briefly); `before(conn,
    ids)` runs first in the same transaction."""
    total = 0
    while True:
        def one() -> int:
            with engine.begin() as conn:
                ids = conn.execute(select(table.c.id).where(where).order_by(table.c.id).limit(_BATCH)).scalars().all()
                if ids and before is not None:
                    before(conn, ids)
                return conn.execute(delete(table).where(table.c.id.in_(ids))).rowcount if ids else 0
        t0 = time.monotonic()
        n = retry_locked(one)
        pacer.took(time.monotonic() - t0)
        total += n
        if n < _BATCH or pacer.stopped():
            return total


def prune(engine: Engine, retention_days: int, now: datetime | None = None, pacer: Pacer | None = None) -> dict[str, int]:
    """Fold finished deliveries older than the retention, then delete such items, digest runs and processed
    bounce mails, and fold stats buckets older than 35 days into one (totals kept); return counts."""
    cutoff = (now or utcnow()) - timedelta(days=retention_days)
    pacer = pacer or Pacer()
    n_del = fold_old(engine, cutoff, pacer)
    # Rows still waiting to be sent are never pruned, whatever their age. An item is old only when it
    # was both detected and published before the cutoff: a feed that still lists an old item keeps it
    # recent through its publication date, so it is not re-alerted.
    old_item = and_(func.coalesce(items.c.detected_at, items.c.published_at) < cutoff,
                    or_(items.c.published_at.is_(None), items.c.published_at < cutoff), ~_unfinished(items.c.id))
    # The latency histogram keeps counting the alerts deleted here (same transaction).
    n_items = _delete_batched(engine, items, old_item, pacer,
                              lambda conn, ids: dashboard.fold_latencies(conn, items.c.id.in_(ids)))
    old_digest = and_(digests.c.created_at < cutoff, ~_unfinished(-digests.c.id))
    n_dig = _delete_batched(engine, digests, old_digest, pacer)

    def old_bounces() -> int:
        with engine.begin() as conn:
            return bounces.prune(conn, cutoff)  # never one still waiting to be processed
    counts = {"deliveries": n_del, "items": n_items, "digests": n_dig, "bounce_mails": retry_locked(old_bounces)}
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
    # Queued rows leave a group in the summary that outlives their compaction: an alert whose rows
    # were all compacted is not mistaken for one never fanned out.
    has_rows = exists().where(G.item_id == items.c.id)
    # `queued` without rows: an empty audience, or a database written by a release that marked items
    # queued before creating their rows; queueing again is idempotent.
    owed = or_(items.c.alert_state.in_(AWAITING_FANOUT), and_(items.c.alert_state == AlertState.QUEUED, ~has_rows))
    query = select(items.c.id).where(owed, items.c.is_flash.is_(True), items.c.detected_at >= cutoff).order_by(items.c.id)
    with engine.connect() as conn:
        return [r[0] for r in conn.execute(query)]


def reclaim(engine: Engine, step_pages: int = 2048, budget_s: float = 30.0, pacer: Pacer | None = None) -> dict:
    """Hand the database's free pages back to the file system (SQLite `incremental_vacuum`, in steps
    that each hold the write lock briefly). A file created before auto_vacuum was on keeps its free
    pages for reuse and says `vacuum_needed` (one `flashbot compact --vacuum` turns it on)."""
    if engine.dialect.name != "sqlite":
        return {}
    pacer = pacer or Pacer(target=0.05, batch=step_pages, smallest=64, largest=65536)
    freed, started = 0, time.monotonic()
    with engine.connect() as conn:
        mode = conn.exec_driver_sql("PRAGMA auto_vacuum").scalar()
        free = conn.exec_driver_sql("PRAGMA freelist_count").scalar()
        if mode != 2:
            return {"free_pages": free, "vacuum_needed": bool(free)}
        while free and time.monotonic() - started < budget_s:
            t0 = time.monotonic()
            # Python's sqlite3 steps this statement once (one page) in execute(); executescript runs it to the end.
            conn.commit()
            conn.connection.dbapi_connection.executescript(f"PRAGMA incremental_vacuum({int(pacer.batch)});")
            pacer.took(time.monotonic() - t0)
            left = conn.exec_driver_sql("PRAGMA freelist_count").scalar()
            freed, free = freed + free - left, left
            if pacer.stopped():
                break
    return {"freed_pages": freed, "free_pages": free}


def vacuum(engine: Engine) -> dict:
    """One full VACUUM that also turns incremental auto_vacuum on (a file created before it was):
    rewrites the whole file, so it needs that much free disk and blocks writers meanwhile."""
    if engine.dialect.name != "sqlite":
        return {}
    with engine.connect() as conn:
        before = conn.exec_driver_sql("PRAGMA page_count").scalar() * conn.exec_driver_sql("PRAGMA page_size").scalar()
        conn.exec_driver_sql("PRAGMA auto_vacuum=INCREMENTAL")
        conn.exec_driver_sql("VACUUM")
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        after = conn.exec_driver_sql("PRAGMA page_count").scalar() * conn.exec_driver_sql("PRAGMA page_size").scalar()
        mode = conn.exec_driver_sql("PRAGMA auto_vacuum").scalar()
    return {"bytes_before": before, "bytes_after": after, "auto_vacuum": mode}


HOUSEKEEPING_KEY = "last_housekeeping_at"


def mark_housekeeping(engine: Engine, now: datetime | None = None) -> None:
    """Note when housekeeping last ran (`run --once` from cron does it when an hour has passed)."""
    from bot.store.schema import meta

    from sqlalchemy.exc import IntegrityError

    value = (now or utcnow()).isoformat()
    for _ in range(2):  # a second process may insert the key at the same moment: then update it
        try:
            with engine.begin() as conn:
                if conn.execute(meta.update().where(meta.c.key == HOUSEKEEPING_KEY).values(value=value)).rowcount == 0:
                    conn.execute(meta.insert().values(key=HOUSEKEEPING_KEY, value=value))
            return
        except IntegrityError:
            continue


def housekeeping_due(engine: Engine, every: timedelta, now: datetime | None = None) -> bool:
    """Whether housekeeping last ran more than `every` ago (or never)."""
    from bot.store.schema import meta

    with engine.connect() as conn:
        last = conn.execute(select(meta.c.value).where(meta.c.key == HOUSEKEEPING_KEY)).scalar()
    return last is None or datetime.fromisoformat(last) <= (now or utcnow()) - every
