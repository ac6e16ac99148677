"""`flashbot run --once` (for cron): process bounces, poll every source, fan out, send the due digest, deliver, exit."""
from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta

from bot import digest, logs, pipeline
from bot.bounces import worker as bounce_worker
from bot.models import NO_PROGRESS, Progress
from bot.service import loop
from bot.service.runtime import housekeeping, install_signals, open_runtime, remove_signals, until_stopped
from bot.store import maintenance
from bot.store.lock import lock_path

log = logging.getLogger(__name__)
HOUSEKEEPING_EVERY = timedelta(hours=1)


def run_once(cfg, engine, horizon: float = 30.0, lock_wait: float = 30.0, progress: Progress = NO_PROGRESS) -> dict:
    """`flashbot run --once`: poll everything, queue, deliver all that is due (and soon due), return counts."""
    return loop.run(run_once_async(cfg, engine, horizon=horizon, lock_wait=lock_wait, progress=progress))


async def run_once_async(cfg, engine, horizon: float = 30.0, lock_wait: float = 30.0,
                         progress: Progress = NO_PROGRESS) -> dict:
    """Poll every source once, queue, send the due digest, deliver what is due; safe to run twice at once.
    `progress` sees the polling, then the sending (the CLI's bars)."""
    started = time.monotonic()
    rt = await open_runtime(cfg, engine, lock_wait, check=False)
    if rt is None:
        logs.event(log, "run_once_skipped", reason="another flashbot instance holds the lock", lock=str(lock_path(cfg)))
        return {"skipped": "locked"}
    stop = asyncio.Event()
    handled = install_signals(stop)  # SIGTERM/SIGINT: stop like `run` does, never mid-send like SIGKILL
    dig: dict | None = None
    sent: dict = {}
    bounced: dict | None = None  # None without [bounces]
    try:
        digest.note_first_start(engine)
        if cfg.bounces is not None:  # first: a suppression cancels what this run would send
            bounced = await asyncio.to_thread(bounce_worker.run_once, cfg, engine, stop.is_set)
        polled = await until_stopped(pipeline.cycle(rt.pipe, progress=progress), stop) or []
        reports = [report for report, _ in polled]
        queued = sum(n for _, n in polled)
        if not stop.is_set():
            dig = await asyncio.to_thread(digest.send_due, engine, cfg)
            sent = await rt.delivery.run_due(horizon, stop=stop, progress=progress)
        # From cron nothing else compacts or prunes: once an hour, the run that finds it due does.
        if not stop.is_set() and await asyncio.to_thread(maintenance.housekeeping_due, engine, HOUSEKEEPING_EVERY):
            await housekeeping(cfg, engine, stop.is_set)
    finally:
        remove_signals(handled)
        await rt.close()
    result = {"sources": len(reports), "errors": sum(1 for r in reports if r.error),
              "events": sum(len(r.events) for r in reports), "queued": queued,
              "digest": (dig or {}).get("queued", 0), "delivery": sent, "bounces": bounced,
              "duration": round(time.monotonic() - started, 3)}
    logs.event(log, "run_once", **{k: v for k, v in result.items() if k not in ("delivery", "bounces")}, **sent)
    return result
