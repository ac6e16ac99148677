"""Poll due sources concurrently, detect Flash Info, store items and return what happened.

Each source is isolated: its fetch, parse and store run in their own task, every exception is
turned into that source's error string, and a slow or broken source never delays the others
beyond its own fetch deadline.

Every entry point takes a `clock` (bot.clock; None is the system clock) and reads the time from it
only: a poll records the moment its fetch returned, and tests pass a FixedClock.
"""
from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass, field
from datetime import datetime

import httpx
from sqlalchemy import Engine

from bot.clock import SYSTEM, Clock, FixedClock
from bot.config import Config
from bot.ingest.detect import detect
from bot.ingest.parse import parse_feed
from bot.models import NO_PROGRESS, Event, FeedResult, Item, Progress
from bot.ingest.fetch import fetch_feed, is_http
from bot.store import sources as store_sources
from bot.store.items import store_items
from bot.store.sources import sync_sources  # noqa: F401 - public interface: bot.ingest.sync_sources


@dataclass
class PollReport:
    """What polling one source did."""

    source: str
    result: FeedResult
    events: list[Event] = field(default_factory=list)
    error: str | None = None
    source_id: int | None = None


def prepare(items: list[Item], cfg: Config, source) -> list[Item]:
    """Detect Flash Info on parsed items and add the source's category."""
    out = []
    for it in items:
        if source["category"] and source["category"] not in it.categories:
            it = dataclasses.replace(it, categories=[*it.categories, source["category"]])
        out.append(detect(it, cfg.flash, all_flash=bool(source["all_flash"])))
    return out


def _store_result(engine: Engine, cfg: Config, source, result: FeedResult, now: datetime) -> list[Event]:
    """Record the fetch state and store the items (runs in a worker thread)."""
    if result.error:
        store_sources.record_failure(engine, source, result, cfg, now)
        return []
    events: list[Event] = []
    if not result.not_modified:
        events = store_items(engine, cfg, source, prepare(result.items, cfg, source), now)
        result.item_count, result.items = len(result.items), []  # stored: release the parsed feed
    store_sources.record_success(engine, source, result, cfg, now)
    return events


class Unchanged:
    """A cycle's unchanged (304) sources, whose bookkeeping is written in one transaction per batch.

    A 304 only moves timestamps and the next poll time, so 2,000 of them need not cost 2,000
    serialized transactions. If a batch cannot be written, each source is retried on its own
    and only the ones that still fail report an error.
    """

    BATCH = 250

    def __init__(self, engine: Engine, cfg: Config, db_lock: asyncio.Lock):
        self.engine, self.cfg, self.db_lock = engine, cfg, db_lock
        self.pending: list[tuple[object, FeedResult, datetime, PollReport]] = []

    async def add(self, source, result: FeedResult, now: datetime, report: PollReport) -> None:
        """Queue one unchanged source's bookkeeping; write the batch once it is full."""
        self.pending.append((source, result, now, report))
        if len(self.pending) >= self.BATCH:
            await self.flush()

    async def flush(self) -> None:
        """Write what is queued: one transaction, or one per source if the batch fails."""
        batch, self.pending = self.pending, []
        if not batch:
            return
        async with self.db_lock:
            try:
                await asyncio.to_thread(store_sources.record_successes, self.engine,
                                        [(s, r, n) for s, r, n, _ in batch], self.cfg)
                return
            except Exception:  # noqa: BLE001 - fall back to per-source writes, isolating the bad one
                pass
            for source, result, now, report in batch:
                try:
                    await asyncio.to_thread(store_sources.record_success, self.engine, source, result, self.cfg, now)
                except Exception as exc:  # noqa: BLE001
                    report.error = result.error = f"internal error while polling: {type(exc).__name__}: {exc}"[:500]


async def refresh_source(engine: Engine, cfg: Config, client: httpx.AsyncClient, source_id: int,
                         db_lock: asyncio.Lock | None = None, source=None,
                         unchanged: Unchanged | None = None, clock: Clock | None = None) -> PollReport:
    """Fetch, parse, detect and store one source; never raises.

    `source` is its row when the caller already read it; with `unchanged`, a 304's bookkeeping
    is left to that batch (written by its flush) instead of its own transaction. The poll is
    recorded at clock.now() once the fetch returned.
    """
    clock = clock or SYSTEM
    name = f"source #{source_id}"
    result = FeedResult()
    try:
        if source is None:
            source = await asyncio.to_thread(store_sources.get_source, engine, source_id)
        name = source["name"]
        result = await fetch_feed(client, cfg, source["url"], source["etag"], source["last_modified"])
        if unchanged is not None and result.not_modified and not result.error:
            report = PollReport(name, result, [], None, source_id)
            await unchanged.add(source, result, clock.now(), report)
            return report
        async with db_lock or _nolock():
            events = await asyncio.to_thread(_store_result, engine, cfg, source, result, clock.now())
        return PollReport(name, result, events, result.error, source_id)
    except Exception as exc:  # noqa: BLE001 - one source's failure must never stop the others
        error = f"internal error while polling: {type(exc).__name__}: {exc}"[:500]
        result.error = result.error or error
        return PollReport(name, result, [], result.error, source_id)


class _nolock:
    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        return False


async def poll_sources(engine: Engine, cfg: Config, client: httpx.AsyncClient, source_ids: list[int],
                       clock: Clock | None = None, progress: Progress = NO_PROGRESS) -> list[PollReport]:
    """Refresh the given sources concurrently (bounded by fetch.concurrency); reports in the same order.
    `progress` counts the sources as they finish (the CLI's bar)."""
    progress.start("polling sources", len(source_ids))
    db_lock = asyncio.Lock()  # one writer at a time: SQLite serializes writes anyway
    unchanged = Unchanged(engine, cfg, db_lock)
    rows = await asyncio.to_thread(store_sources.get_sources, engine, source_ids)  # one read per cycle
    reports: list[PollReport | None] = [None] * len(source_ids)
    todo = iter(enumerate(source_ids))

    async def worker() -> None:
        # `concurrency` workers sharing one iterator: no task and semaphore wait per source.
        for i, sid in todo:
            reports[i] = await refresh_source(engine, cfg, client, sid, db_lock, rows.get(sid), unchanged, clock)
            progress.advance()
    try:
        await asyncio.gather(*(worker() for _ in range(min(cfg.fetch.concurrency, len(source_ids)))))
    finally:
        await asyncio.shield(unchanged.flush())  # also on cancellation: those polls did happen
    return reports  # type: ignore[return-value] - every slot is filled once gather returns


async def poll_due(engine: Engine, cfg: Config, client: httpx.AsyncClient, clock: Clock | None = None, *,
                   now: datetime | None = None, progress: Progress = NO_PROGRESS) -> list[PollReport]:
    """Poll every active source whose next poll is due at clock.now().

    `now=` is shorthand for clock=FixedClock(now): the cycle runs as if at that moment (bench/polling.py).
    """
    clock = FixedClock(now) if now is not None else clock or SYSTEM
    ids = await asyncio.to_thread(store_sources.claim_due, engine, cfg, clock.now())
    return await poll_sources(engine, cfg, client, ids, clock, progress)


async def poll_all(engine: Engine, cfg: Config, client: httpx.AsyncClient, clock: Clock | None = None,
                   progress: Progress = NO_PROGRESS) -> list[PollReport]:
    """Poll every active source now (except those a server asked to wait via Retry-After)."""
    clock = clock or SYSTEM
    ids = await asyncio.to_thread(store_sources.claim_due, engine, cfg, clock.now(), True)
    return await poll_sources(engine, cfg, client, ids, clock, progress)


def ingest_bytes(engine: Engine, cfg: Config, source_id: int, body: bytes, headers: dict,
                 clock: Clock | None = None) -> list[Event]:
    """Ingest a feed document pushed to us (WebSub) for a source; return its events."""
    source = store_sources.get_source(engine, source_id)
    base = source["url"] if is_http(source["url"]) else None
    result = parse_feed(body, dict(headers or {}), base)  # same base as polling: same item keys
    if result.error:
        raise ValueError(f"{source['name']}: pushed content rejected: {result.error}")
    return store_items(engine, cfg, source, prepare(result.items, cfg, source), (clock or SYSTEM).now())
