"""The cluster side of `flashbot run`: roles, this process's row in `instances` with its heartbeat,
and the scheduler election. On PostgreSQL any number of processes share the database and exactly
one of those with the scheduler role is active (a session advisory lock); on SQLite the single
instance (the instance lock) is the scheduler."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from sqlalchemy import Engine

from bot import __version__, logs
from bot.store import instances
from bot.store.db import is_postgres
from bot.store.postgres import LeaderLock

log = logging.getLogger(__name__)
ROLES = ("scheduler", "worker", "web")
HEARTBEAT_SECONDS = 5.0  # instances.STALE_AFTER (30 s) is six missed beats
ELECTION_SECONDS = 2.0  # a standby asks for the lock this often: a dead scheduler is replaced within 10 s


def parse_roles(value: str) -> list[str]:
    """'scheduler,worker,web' (any order or subset) → the roles in canonical order; ValueError otherwise."""
    asked = [r.strip().lower() for r in value.split(",") if r.strip()]
    unknown = sorted(set(asked) - set(ROLES))
    if unknown or not asked:
        raise ValueError(f"--role: {'unknown role ' + ', '.join(unknown) if unknown else 'no role given'}; "
                         f"use one or more of {','.join(ROLES)} (comma-separated)")
    return [r for r in ROLES if r in asked]


class Membership:
    """This process in the instances table: registered at start, a heartbeat every few seconds, gone at a clean stop."""

    def __init__(self, engine: Engine, instance_id: str, roles: list[str], sent: Callable[[], int],
                 leading: Callable[[], bool]):
        self.engine, self.id, self.roles = engine, instance_id, roles
        self._sent, self._leading = sent, leading

    def register(self) -> None:
        """Add the row (called once, before the other parts start)."""
        instances.register(self.engine, self.id, self.roles, __version__)

    def beat(self) -> None:
        """One heartbeat; re-registers if housekeeping forgot this process (a long database outage)."""
        if not instances.beat(self.engine, self.id, self._leading(), self._sent()):
            self.register()

    async def run(self, stop: asyncio.Event) -> None:
        """Beat every HEARTBEAT_SECONDS until `stop`; a failed beat (database restarting) is only logged."""
        while not stop.is_set():
            try:
                await asyncio.to_thread(self.beat)
            except Exception as exc:  # noqa: BLE001 - the next beat tries again
                logs.event(log, "heartbeat_failed", logging.WARNING, error=type(exc).__name__)
            await _sleep(stop, HEARTBEAT_SECONDS)

    def leave(self) -> None:
        """Remove the row at a clean stop."""
        try:
            instances.unregister(self.engine, self.id)
        except Exception as exc:  # noqa: BLE001 - the row goes stale and is pruned later
            logs.event(log, "unregister_failed", logging.WARNING, error=type(exc).__name__)


class Election:
    """Runs `elected` when this process becomes the active scheduler and `deposed` when it stops being it."""

    def __init__(self, engine: Engine, elected: Callable[[], Awaitable[None]], deposed: Callable[[], Awaitable[None]]):
        self.engine, self._elected, self._deposed = engine, elected, deposed
        self.shared = is_postgres(engine)
        self.lock = LeaderLock(engine) if self.shared else None
        self.leading = False

    async def still_leading(self) -> bool:
        """Checked before each poll: a scheduler that lost the lock (database restarted) polls nothing."""
        if not self.leading:
            return False
        if self.lock is None:
            return True
        return await asyncio.to_thread(self.lock.check)

    async def run(self, stop: asyncio.Event) -> None:
        """Campaign every ELECTION_SECONDS until `stop`, then step down and free the lock."""
        try:
            while not stop.is_set():
                if not self.leading and (self.lock is None or await asyncio.to_thread(self.lock.try_acquire)):
                    self.leading = True
                    logs.event(log, "scheduler_elected", shared=self.shared)
                    try:
                        await self._elected()
                    except Exception as exc:  # noqa: BLE001 - e.g. the database went away meanwhile
                        logs.event(log, "scheduler_start_failed", logging.ERROR, error=repr(exc))
                        await self._step_down()
                elif self.leading and self.lock is not None and not await asyncio.to_thread(self.lock.check):
                    logs.event(log, "scheduler_lost", logging.WARNING, reason="the lock's database session ended")
                    await self._step_down()
                await _sleep(stop, ELECTION_SECONDS)
        finally:
            if self.leading:
                await self._step_down()
            if self.lock is not None:
                self.lock.release()

    async def _step_down(self) -> None:
        self.leading = False
        try:
            await self._deposed()
        finally:
            if self.lock is not None:
                self.lock.release()


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except asyncio.TimeoutError:
        pass
