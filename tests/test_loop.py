"""The service runs on uvloop when it is installed."""
import asyncio

from bot.service import loop


def test_runs_on_uvloop_when_installed():
    async def which():
        return type(asyncio.get_running_loop()).__module__

    expected = "uvloop" if loop.uvloop is not None else "asyncio"
    assert loop.run(which()).startswith(expected)


def test_exceptions_propagate():
    async def boom():
        raise KeyError("x")

    try:
        loop.run(boom())
    except KeyError:
        return
    raise AssertionError("exception swallowed")
