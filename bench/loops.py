"""Run a coroutine on the default asyncio loop or on uvloop."""
from __future__ import annotations

import asyncio

from .common import Skipped


def run(coro_fn, loop: str = "asyncio"):
    """asyncio.run(coro_fn()) on the chosen loop ("asyncio" or "uvloop")."""
    if loop == "uvloop":
        try:
            import uvloop
        except ImportError:
            raise Skipped("uvloop is not installed") from None
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(coro_fn())
    return asyncio.run(coro_fn())
