"""The event loop Flashbot runs on: uvloop when installed (its sockets are markedly faster), else asyncio's."""
from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is a locked dependency on Linux and macOS
    uvloop = None


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    """asyncio.run(coro) on the fastest available loop."""
    if uvloop is None:
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)
