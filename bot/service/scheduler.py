"""APScheduler wiring of `flashbot run`: a poll job per source, kept in step with the `sources` table,
the digest cron, housekeeping and WebSub lease renewal."""
from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Engine, select

from bot import digest, logs
from bot.clock import SYSTEM, Clock
from bot.store import sources as store_sources
from bot.store.db import utcnow
from bot.store.schema import sources

log = logging.getLogger(__name__)
RECONCILE_SECONDS = 3.0  # how soon a source added/paused/removed by the CLI or dashboard takes effect
HOUSEKEEPING_SECONDS = 3600
WEBSUB_SECONDS = 60
# A digest whose 07:00 run was delayed (busy loop, suspended VM) still goes out until this late.
DIGEST_GRACE_SECONDS = 6 * 3600


def jitter_for(interval: int) -> float:
    """Spread polls of many sources: up to a tenth of the interval, at most 15 s."""
    return min(interval * 0.1, 15.0)


def slack_for(interval: int) -> float:
    """How early a source's job may find it due: the job fires on the interval plus jitter, and a
    poll that ran late must not push the next one a whole interval away."""
    return jitter_for(interval) + 0.5


@dataclass
class Jobs:
    """The coroutines the scheduler runs (the service supplies them)."""

    poll: Callable[[int], Awaitable[object]]  # refresh one source through the pipeline
    digest: Callable[[], Awaitable[object]]  # queue the due digest and wake delivery
    housekeeping: Callable[[], Awaitable[object]]
    websub: Callable[[], Awaitable[object]] | None = None


class Scheduler:
    """One AsyncIOScheduler with a job per active source plus the service's periodic jobs."""

    def __init__(self, cfg, engine: Engine, jobs: Jobs, reconcile_seconds: float = RECONCILE_SECONDS,
                 clock: Clock | None = None):
        self.cfg, self.engine, self.jobs = cfg, engine, jobs
        self.clock = clock or SYSTEM  # what "due" is measured against (APScheduler itself runs on real time)
        self.reconcile_seconds = reconcile_seconds
        self.aps = AsyncIOScheduler(job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 30})
        self.intervals: dict[int, int] = {}  # source id -> interval of its job

    def start(self) -> None:
        """Add the fixed jobs, sync the source jobs, start (inside the running event loop)."""
        self.aps.add_job(self._reconcile_job, IntervalTrigger(seconds=self.reconcile_seconds), id="reconcile")
        self.aps.add_job(self.jobs.housekeeping, IntervalTrigger(seconds=HOUSEKEEPING_SECONDS), id="housekeeping",
                         next_run_time=utcnow() + timedelta(seconds=5))
        if self.cfg.digest.enabled:
            self.aps.add_job(self.jobs.digest, digest.trigger(self.cfg), id="digest",
                             misfire_grace_time=DIGEST_GRACE_SECONDS)
        if self.jobs.websub is not None and self.cfg.websub.enabled:
            self.aps.add_job(self.jobs.websub, IntervalTrigger(seconds=WEBSUB_SECONDS), id="websub",
                             next_run_time=utcnow() + timedelta(seconds=1))
        self.reconcile()
        self.aps.start()

    def shutdown(self) -> None:
        """Stop firing jobs (running ones are left to the service's own shutdown)."""
        if self.aps.running:
            self.aps.shutdown(wait=False)

    @property
    def running(self) -> bool:
        """Whether the scheduler is started (the dashboard's liveness signal)."""
        return self.aps.running

    def alive(self) -> bool:
        """True while running: passed to the web app as `scheduler_alive`."""
        return self.aps.running

    async def _reconcile_job(self) -> None:
        self.reconcile()

    def reconcile(self) -> dict[str, int]:
        """Make the poll jobs match the `sources` table: add new, drop paused/removed, re-time changed."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(sources.c.id, sources.c.name, sources.c.interval)
                                .where(sources.c.paused.is_(False))).all()
        wanted = {r.id: (r.name, max(1, int(r.interval))) for r in rows}
        stats = {"added": 0, "removed": 0, "changed": 0}
        for sid in set(self.intervals) - set(wanted):
            self.aps.remove_job(f"poll:{sid}")
            del self.intervals[sid]
            stats["removed"] += 1
        for sid, (name, interval) in wanted.items():
            if self.intervals.get(sid) == interval:
                continue
            trigger = IntervalTrigger(seconds=interval, jitter=jitter_for(interval))
            first = utcnow() + timedelta(seconds=random.uniform(0, min(interval, 2.0)))
            if sid in self.intervals:
                self.aps.reschedule_job(f"poll:{sid}", trigger=trigger)
                stats["changed"] += 1
            else:
                self.aps.add_job(self._poll_job, trigger, args=[sid], id=f"poll:{sid}", name=name,
                                 next_run_time=first, misfire_grace_time=max(1, interval))
                stats["added"] += 1
            self.intervals[sid] = interval
        if any(stats.values()):
            logs.event(log, "sources_scheduled", active=len(wanted), **stats)
        return stats

    def is_due(self, source_id: int) -> bool:
        """Whether the source's job should poll it now: the store's due rule (honouring ingest's
        backoff, Retry-After and push fallback), with the job's jitter as slack."""
        slack = slack_for(self.intervals.get(source_id, 60))
        return store_sources.is_due(self.engine, source_id, self.clock.now(), slack)

    async def _poll_job(self, source_id: int) -> None:
        if self.is_due(source_id):
            await self.jobs.poll(source_id)
