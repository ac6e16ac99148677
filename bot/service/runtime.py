"""The long-lived parts shared by `run` and `run --once`: instance lock, channels, delivery engine,
pipeline, crash healing at start, and signal handling.

On SQLite one process owns the database (a flock). On PostgreSQL `run` takes no such lock (any
number of processes cooperate, see bot.service.cluster) and `run --once` takes the scheduler's."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from bot import logs, pipeline
from bot.delivery import engine as deliver
from bot.delivery.channels import build_channels
from bot.delivery.channels.base import ChannelPaused, PermanentError
from bot.ingest import poll as ingest
from bot.render.renderer import Renderer
from bot.ingest.fetch import make_client
from bot.delivery.throttle import ClusterRateLimiter
from bot.store import compaction, instances, maintenance, ratelimit, signups
from bot.store.db import is_postgres
from bot.store.instances import new_id
from bot.store.lock import InstanceLock, lock_path
from bot.store.postgres import LeaderLock

log = logging.getLogger(__name__)


class StartupError(Exception):
    """The service cannot start; the message says why and what to fix."""


@dataclass
class Runtime:
    """The long-lived parts shared by `run` and `run --once`."""

    cfg: object
    engine: object
    channels: dict
    delivery: deliver.DeliveryEngine | None  # None in a process without the worker role
    pipe: pipeline.Pipeline
    lock: InstanceLock | LeaderLock | None  # None: a PostgreSQL `run` (no single-instance lock)
    instance_id: str = ""
    warnings: list[str] = field(default_factory=list)

    async def close(self) -> None:
        """Close channels and the HTTP client, release the instance lock."""
        for ch in self.channels.values():
            with contextlib.suppress(Exception):
                await ch.close()
        await self.pipe.client.aclose()
        if self.lock is not None:
            self.lock.release()


async def check_channels(channels: dict) -> list[str]:
    """getMe / EHLO at start: a rejected token stops the start, an unreachable server only warns."""
    warnings = []
    for name, ch in channels.items():
        try:
            verdict = await asyncio.wait_for(ch.check(), timeout=15)
            logs.event(log, "channel_ok", channel=name, detail=verdict)
        except (ChannelPaused, PermanentError) as exc:
            raise StartupError(f"{name}: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - unreachable now; the outbox keeps retrying
            msg = f"{name}: unreachable for now ({exc or type(exc).__name__}); deliveries wait and retry"
            warnings.append(msg)
            logs.event(log, "channel_unreachable", logging.WARNING, channel=name, error=str(exc) or type(exc).__name__)
    return warnings


def _lock(cfg, engine, exclusive: bool) -> InstanceLock | LeaderLock | None:
    if not is_postgres(engine):
        return InstanceLock(lock_path(cfg))
    return LeaderLock(engine) if exclusive else None


async def open_runtime(cfg, engine, lock_wait: float, check: bool = True, worker: bool = True,
                       exclusive: bool = True, instance_id: str | None = None) -> Runtime | None:
    """Take the lock (see the module docstring), sync sources, build channels and the delivery engine
    (with `worker`); None if another instance holds the lock."""
    lock = _lock(cfg, engine, exclusive)
    if lock is not None and not await asyncio.to_thread(lock.acquire, lock_wait):
        return None
    instance_id = instance_id or new_id()
    channels: dict = {}
    delivery = None
    try:
        if lock is not None:  # the one process in charge (a PostgreSQL cluster: the elected scheduler)
            await asyncio.to_thread(ingest.sync_sources, engine, cfg)
        warnings: list[str] = []
        if worker:
            channels = build_channels(cfg)
            warnings = await check_channels(channels) if check else []
            _share_rates(engine, channels)
            delivery = deliver.DeliveryEngine(engine, cfg, channels, Renderer(cfg), owner=instance_id)
            await asyncio.to_thread(delivery.recover)  # rows a crash left in 'sending' go again
        if lock is not None:
            await asyncio.to_thread(pipeline.requeue_owed, cfg, engine)  # alerts stored but never fanned out
        pipe = pipeline.Pipeline(cfg, engine, make_client(cfg.fetch), wake=delivery.wake if delivery else lambda: None)
    except BaseException:
        for ch in channels.values():
            with contextlib.suppress(Exception):
                await ch.close()
        if lock is not None:
            lock.release()
        raise
    return Runtime(cfg, engine, channels, delivery, pipe, lock, instance_id, warnings)


def _share_rates(engine, channels: dict) -> None:
    """On PostgreSQL a channel's rate limit is the whole cluster's: slots come from the throttle row."""
    if not is_postgres(engine):
        return
    for name, ch in channels.items():
        if getattr(ch, "rate_limit", 0) and hasattr(ch, "use_limiter"):
            ch.use_limiter(ClusterRateLimiter(engine, name, ch.rate_limit))


async def housekeeping(cfg, engine, stop: Callable[[], bool] | None = None) -> dict:
    """Compact the delivery log, prune old items, deliveries, rate-limit events and dead instances, give
    freed pages back to the file system; queue alerts left unqueued. Every write is a short batch, and `stop`
    (checked between batches: the service is stopping) ends it early; the next run goes on."""
    pacer = compaction.Pacer(stop=stop)
    report = await asyncio.to_thread(compaction.compact, engine, cfg.delivery.detail_days, None, pacer)
    counts = {} if pacer.interrupted else await asyncio.to_thread(maintenance.prune, engine, cfg.bot.retention_days, None, pacer)
    counts.update(compacted=report.rows, compacted_groups=report.groups, slowest_batch_s=report.slowest_batch_s)
    if pacer.interrupted:
        logs.event(log, "housekeeping_interrupted", **counts)
        return counts
    counts["rate_events"] = await asyncio.to_thread(ratelimit.prune, engine)
    counts["instances"] = await asyncio.to_thread(instances.prune, engine)
    # Sign-up requests outlive every confirmation link made from them, then go.
    keep = timedelta(hours=max(cfg.web.confirm_hours, 7 * 24))
    counts["signup_requests"] = await asyncio.to_thread(signups.prune, engine, keep)
    # An alert whose fan-out failed after it was stored (database locked too long…) is not left behind.
    counts["requeued"] = await asyncio.to_thread(pipeline.requeue_owed, cfg, engine)
    counts.update(await asyncio.to_thread(maintenance.reclaim, engine, 2048, 30.0,
                                          compaction.Pacer(batch=2048, smallest=64, largest=65536, stop=stop)))
    logs.event(log, "housekeeping", **counts)
    if counts.get("vacuum_needed"):
        logs.event(log, "vacuum_needed", logging.WARNING, free_pages=counts["free_pages"],
                   hint="this database file predates incremental auto_vacuum: its free pages are reused but "
                        "never returned; run `flashbot compact --vacuum` once (rewrites the file)")
    await asyncio.to_thread(maintenance.mark_housekeeping, engine)
    return counts


def install_signals(stop: asyncio.Event) -> list:
    """Make SIGTERM and SIGINT set `stop`; returns the signals handled (none outside the main thread)."""
    loop = asyncio.get_running_loop()
    handled = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):  # not the main thread
            loop.add_signal_handler(sig, stop.set)
            handled.append(sig)
    return handled


def remove_signals(handled: list) -> None:
    """Undo install_signals."""
    loop = asyncio.get_running_loop()
    for sig in handled:
        loop.remove_signal_handler(sig)


async def until_stopped(coro, stop: asyncio.Event):
    """Await coro unless `stop` is set first (then cancel it and return None)."""
    task = asyncio.ensure_future(coro)
    waiter = asyncio.ensure_future(stop.wait())
    await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    if task.done():
        return task.result()
    task.cancel()  # polls are safe to interrupt: each source's state is written in its own transaction
    await asyncio.gather(task, return_exceptions=True)
    logs.event(log, "run_once_interrupted", phase="polling")
    return None
