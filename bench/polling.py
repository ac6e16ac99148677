"""Benchmark 2: polling 2,000 sources (placeholder until written)."""
from .common import Skipped


def bench(log=print) -> dict:
    """Not written yet."""
    raise Skipped("polling benchmark not written yet")
