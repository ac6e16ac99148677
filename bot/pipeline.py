"""The pipeline in one place: fetch → parse → detect → store → queue → wake delivery, and `run_once`."""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
from sqlalchemy import Engine

from bot.delivery import engine as deliver
from bot.ingest import poll as ingest
from bot import logs
from bot.service import loop
from bot.models import Event

log = logging.getLogger("flashbot.pipeline")


@dataclass
class Pipeline:
    """What one pass of the pipeline needs; the service keeps one for its whole life."""

    cfg: object
    engine: Engine
    client: httpx.AsyncClient
    wake: Callable[[], None] = lambda: None  # the delivery engine's wake()
    db_lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # one SQLite writer per process


async def refresh(p: Pipeline, source_id: int) -> ingest.PollReport:
    """One source, the whole way (Miniflux's RefreshFeed): the story of every alert starts here."""
    started = time.monotonic()
    # fetch (ETag/304, Retry-After, backoff) → parse → detect Flash Info → store items as events
    report = await ingest.refresh_source(p.engine, p.cfg, p.client, source_id, p.db_lock)
    # queue: one outbox row per recipient and channel for each new or updated alert
    queued = await queue(p, report.events)
    if queued:
        p.wake()  # deliver now instead of at the delivery engine's next tick
    log_poll(report, queued, time.monotonic() - started)
    return report


async def push(p: Pipeline, source_id: int, body: bytes, headers: dict) -> list[Event]:
    """A WebSub push: the same pipeline minus the fetch (parse → detect → store → queue → wake)."""
    started = time.monotonic()
    try:
        async with p.db_lock:
            events = await asyncio.to_thread(ingest.ingest_bytes, p.engine, p.cfg, source_id, body, headers)
    except Exception as exc:  # noqa: BLE001 - a bad push is logged; polling still covers the source
        logs.event(log, "push_rejected", logging.WARNING, source_id=source_id, error=str(exc)[:300])
        return []
    queued = await queue(p, events)
    if queued:
        p.wake()
    logs.event(log, "push", source_id=source_id, events=len(events), queued=queued,
               duration=time.monotonic() - started)
    return events


async def queue(p: Pipeline, events: list[Event]) -> int:
    """Outbox rows for the alerting events (flash, update); 0 when there are none."""
    if not any(e.kind in ("flash", "update") for e in events):
        return 0
    async with p.db_lock:
        return await asyncio.to_thread(deliver.queue_events, p.engine, p.cfg, events)


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
        if e.kind in ("flash", "update", "held"):
            logs.event(log, e.kind, source=e.source, item=e.item_id, title=e.title)


def run_once(cfg, engine: Engine, horizon: float = 30.0, lock_wait: float = 30.0) -> dict:
    """`flashbot run --once`: poll everything, queue, deliver all that is due (and soon due), return counts."""
    from bot.service.daemon import run_once_async  # the service owns channel set-up and the instance lock

    return loop.run(run_once_async(cfg, engine, horizon=horizon, lock_wait=lock_wait))
