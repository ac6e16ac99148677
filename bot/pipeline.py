"""The one orchestrator (Miniflux's RefreshFeed): every entry path — a scheduled poll, a WebSub push,
`poll --once`, `run --once`, an editor's approval, a hand-written alert from the desk (and its
correction) — goes fetch → parse → detect → store → fan-out → wake (the desk skips the fetch).

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
from bot.clock import SYSTEM, Clock
from bot.delivery import fanout
from bot.ingest import desk as desk_ingest
from bot.ingest import poll as ingest
from bot.models import ALERTING, NO_PROGRESS, Event, EventKind, Progress
from bot.store import desk as desk_store
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
    clock: Clock = SYSTEM  # what "now" is for storing and queueing (tests pass a FixedClock)


async def refresh(p: Pipeline, source_id: int) -> ingest.PollReport:
    """One source, the whole way: the story of every alert starts here."""
    started = time.monotonic()
    # fetch (ETag/304, Retry-After, backoff) → parse → detect Flash Info → store items as events
    report = await ingest.refresh_source(p.engine, p.cfg, p.client, source_id, p.db_lock, clock=p.clock)
    queued = await fan_out(p, report.events)
    log_poll(report, queued, time.monotonic() - started)
    return report


async def cycle(p: Pipeline, due_only: bool = False, progress: Progress = NO_PROGRESS) -> list[tuple[ingest.PollReport, int]]:
    """Poll every active source (or only the due ones) once, then fan out what each one stored;
    returns (report, rows queued) per source. `poll`, `poll --once` and `run --once` use it, the
    last two with a `progress` (the CLI's bar)."""
    poll = ingest.poll_due if due_only else ingest.poll_all
    reports = await poll(p.engine, p.cfg, p.client, p.clock, progress=progress)
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
            events = await asyncio.to_thread(ingest.ingest_bytes, p.engine, p.cfg, source_id, body, headers, p.clock)
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


async def hand_written(p: Pipeline, draft: desk_ingest.Draft, editor: str, via: str) -> tuple[Event | None, int, int]:
    """An editor's alert from the desk: an item of the desk's source (approval, cross-source dedupe as
    for feeds unless forced), fanned out like any alert. (event: flash, held or duplicate — None when
    this very draft was sent already; item id; rows queued)."""
    now = p.clock.now()
    item = desk_ingest.to_item(draft, p.cfg, now)
    cfg = p.cfg
    if draft.force:  # the editor saw the similar alert in the preview and sends anyway
        cfg = cfg.model_copy(update={"flash": cfg.flash.model_copy(update={"dedupe_window_hours": 0})})
    async with p.db_lock:
        event, item_id = await asyncio.to_thread(desk_store.store_alert, p.engine, cfg, item, draft.targets(),
                                                 editor, via, now)
    logs.event(log, "hand_written", item=item_id, kind=event.kind if event else "resent", editor=editor, via=via)
    return event, item_id, (await fan_out(p, [event]) if event else 0)


async def correct_hand_written(p: Pipeline, item_id: int, draft: desk_ingest.Draft, editor: str,
                               via: str) -> tuple[Event | None, int]:
    """An editor corrects a hand-written alert: once it went out this is an update (posts edited, an
    update mail to those who got it). LookupError when the item is not hand-written."""
    now = p.clock.now()
    row = await asyncio.to_thread(desk_store.get, p.engine, item_id)
    if row is None:
        raise LookupError(f"item {item_id} is not a hand-written alert")
    item = desk_ingest.to_item(draft, p.cfg, now, published=row["published_at"] or row["detected_at"])
    async with p.db_lock:
        event = await asyncio.to_thread(desk_store.store_edit, p.engine, p.cfg, item_id, item, editor, via, now)
    logs.event(log, "hand_written_edit", item=item_id, update=event is not None, editor=editor, via=via)
    return event, (await fan_out(p, [event]) if event else 0)


async def fan_out(p: Pipeline, events: list[Event]) -> int:
    """Delivery rows for the alerting events (flash, update), then wake delivery; rows created."""
    if not any(e.kind in ALERTING for e in events):
        return 0
    async with p.db_lock:
        queued = await asyncio.to_thread(fanout.queue_events, p.engine, p.cfg, events, p.clock.now())
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
