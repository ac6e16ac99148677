"""Lease upkeep of a delivery worker: renew the claims it is still sending, and give back to the
queue the rows of any worker whose lease ran out (it died; no restart of it is needed)."""
from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from sqlalchemy import Engine

from bot import logs
from bot.store import claims

log = logging.getLogger(__name__)


def period(lease: float) -> float:
    """How often leases are renewed and expired ones looked for: a third of the lease, 1–10 s."""
    return min(max(lease / 3, 1.0), 10.0)


def tend(engine: Engine, owner: str, lease: float) -> int:
    """One round: renew this worker's leases, recover expired ones; returns rows recovered."""
    claims.renew(engine, owner, lease)
    recovered = claims.recover(engine, expired_only=True)
    if recovered:
        logs.event(log, "leases_expired", logging.WARNING, recovered=recovered,
                   detail="rows of a stopped worker are queued again")
    return recovered


@contextlib.asynccontextmanager
async def kept(engine: Engine, owner: str, lease: float, wake: Callable[[], None]):
    """Tend leases in the background for as long as the `async with` block runs."""
    done = asyncio.Event()
    task = asyncio.ensure_future(keep(engine, owner, lease, wake, done))
    try:
        yield
    finally:
        done.set()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def keep(engine: Engine, owner: str, lease: float, wake: Callable[[], None], stop: asyncio.Event) -> None:
    """Tend leases every period() until `stop`; a database outage only delays a round."""
    while not stop.is_set():
        try:
            if await asyncio.to_thread(tend, engine, owner, lease):
                wake()
        except Exception as exc:  # noqa: BLE001 - unreachable database: the next round tries again
            logs.event(log, "lease_upkeep_failed", logging.WARNING, error=type(exc).__name__)
        try:
            await asyncio.wait_for(stop.wait(), period(lease))
        except asyncio.TimeoutError:
            pass
