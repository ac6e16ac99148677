"""The one orchestrator (Miniflux's RefreshFeed): every entry path — a scheduled poll, a WebSub push,
`poll --once`, `run --once`, an editor's approval — goes fetch → parse → detect → store → fan-out → wake.

A stored alert is `detected` until its delivery rows exist; `fan_out` creates them and marks it
`queued` in one transaction, so no item is ever `queued` without its rows (see bot.models.AlertState).
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
from sqlalchemy import Engine

from bot import logs
from bot.delivery import fanout
from bot.ingest import poll as ingest
from bot.models import ALERTING, NO_PROGRESS, Event, EventKind, Progress
from bot.store import items as item_store
from bot.store import maintenance

log = logging.getLogger(__name__)


@dataclass
class Pipeline:
    """What the pipeline needs; a process keeps one for its whole life."""

    cfg: object
    engine: Engine
    client: httpx.AsyncClient | None = None  # only fetching needs one (approve and push do not)
    wake: Callable[[], None] = lambda: None  # the delivery engine's wake(); other processes notice by polling
    db_lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # one SQLite writer per process


async def refresh(p: Pipeline, source_id: int) -> ingest.PollReport:
    """One source, the whole way: the story of every alert starts here."""
    started = time.monotonic()
    # fetch (ETag/304, Retry-After, backoff) → parse → detect Flash Info → store items as events
    report = await ingest.refresh_source(p.engine, p.cfg, p.client, source_id, p.db_lock)
    queued = await fan_out(p, report.events)
    log_poll(report, queued, time.monotonic() - started)
    return report


async def cycle(p: Pipeline, due_only: bool = False, progress: Progress = NO_PROGRESS) -> list[tuple[ingest.PollReport, int]]:
    """Poll every active source (or only the due ones) once, then fan out what each one stored;
    returns (report, rows queued) per source. `poll`, `poll --once` and `run --once` use it, the
    last two with a `progress` (the CLI's bar)."""
    poll = ingest.poll_due if due_only else ingest.poll_all
    reports = await poll(p.engine, p.cfg, p.client, progress=progress)
    out = []
    for report in reports:
        queued = await fan_out(p, report.events)
        log_poll(report, queued, report.result.elapsed)
        out.append((report, queued))
    return out


async def push(p: Pipeline, source_id: int, body: bytes, headers: dict) -> list[Event]:
    """A WebSub push: the same pipeline minus the fetch."""
    started = time.monotonic()
    try:
        async with p.db_lock:
            events = await asyncio.to_thread(ingest.ingest_bytes, p.engine, p.cfg, source_id, body, headers)
    except Exception as exc:  # noqa: BLE001 - a bad push is logged; polling still covers the source
        logs.event(log, "push_rejected", logging.WARNING, source_id=source_id, error=str(exc)[:300])
        return []
    queued = await fan_out(p, events)
    logs.event(log, "push", source_id=source_id, events=len(events), queued=queued,
               duration=time.monotonic() - started)
    return events


async def approve(p: Pipeline, item_id: int) -> int | None:
    """An editor approves a held alert: held → approved → fan-out → wake. None when it was not held."""
    async with p.db_lock:
        if not await asyncio.to_thread(item_store.approve, p.engine, item_id):
            return None
    logs.event(log, "approved", item=item_id)
    return await fan_out(p, [Event(item_id, EventKind.FLASH, "", "", True)])


async def fan_out(p: Pipeline, events: list[Event]) -> int:
    """Delivery rows for the alerting events (flash, update), then wake delivery; rows created."""
    if not any(e.kind in ALERTING for e in events):
        return 0
    async with p.db_lock:
        queued = await asyncio.to_thread(fanout.queue_events, p.engine, p.cfg, events)
    if queued:
        p.wake()  # deliver now instead of at the delivery engine's next tick
    return queued


def requeue_owed(cfg, engine: Engine) -> int:
    """Fan out the alerts a crash left `detected`/`approved` without rows (idempotent)."""
    ids = maintenance.orphaned_alerts(engine, cfg.bot.retention_days)
    created = sum(fanout.queue_item(engine, cfg, item_id) for item_id in ids)
    if ids:
        logs.event(log, "requeued_orphans", logging.WARNING, items=len(ids), deliveries=created)
    return created


def log_poll(report: ingest.PollReport, queued: int, duration: float) -> None:
    """One log line per poll, with what it found."""
    kinds: dict[str, int] = {}
    for e in report.events:
        kinds[e.kind] = kinds.get(e.kind, 0) + 1
    if report.error:
        logs.event(log, "poll_failed", logging.WARNING, source=report.source, error=report.error,
                   status=report.result.status, duration=duration)
        return
    logs.event(log, "poll", source=report.source, status=report.result.status,
               not_modified=report.result.not_modified, items=report.result.n_items, queued=queued,
               duration=duration, **kinds)
    for e in report.events:
        if e.kind in (EventKind.FLASH, EventKind.UPDATE, EventKind.HELD):
            logs.event(log, e.kind, source=e.source, item=e.item_id, title=e.title)
