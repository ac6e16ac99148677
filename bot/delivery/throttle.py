"""`[email] rate_limit` for the whole cluster: send slots reserved in small blocks from the
database's throttle row (bot/store/throttle.py), then spent locally at the configured spacing."""
from __future__ import annotations

import asyncio
import logging
from collections import deque

from sqlalchemy import Engine

from bot.store import throttle

log = logging.getLogger(__name__)
BLOCK_SECONDS = 0.25  # one reservation covers this much sending time (one UPDATE per block)


class ClusterRateLimiter:
    """Drop-in for the channel's local RateLimiter: `await wait()` before each send."""

    def __init__(self, engine: Engine, channel: str, rate: float):
        self.engine, self.channel, self.rate = engine, channel, rate
        self.block = max(1, int(rate * BLOCK_SECONDS))
        self._slots: deque[float] = deque()  # loop times of the slots reserved and not yet used
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        """Sleep until this process's next reserved slot; reserve a block when none is left."""
        loop = asyncio.get_running_loop()
        async with self._lock:
            # Slots left over from a burst long past are void: using them now would exceed the rate.
            while self._slots and self._slots[0] < loop.time() - 1.0 / self.rate:
                self._slots.popleft()
            if not self._slots:
                start = loop.time() + await self._reserve()
                self._slots.extend(start + i / self.rate for i in range(self.block))
            slot = self._slots.popleft()
        if slot > loop.time():
            await asyncio.sleep(slot - loop.time())

    async def _reserve(self) -> float:
        """Seconds until the reserved block starts; while the database is unreachable nothing is sent
        (sending unmetered could exceed the cluster's rate), so it waits and asks again."""
        pause = 0.5
        while True:
            try:
                return await asyncio.to_thread(throttle.reserve, self.engine, self.channel, self.block, self.rate)
            except Exception as exc:  # noqa: BLE001 - the database is restarting or unreachable
                log.warning("cannot reserve %s send slots (%s); waiting %.1fs", self.channel, type(exc).__name__, pause)
                await asyncio.sleep(pause)
                pause = min(pause * 2, 5.0)
