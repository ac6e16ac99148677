"""Benchmark 2: latency (placeholder until written)."""
from .common import Skipped


def bench(log=print) -> dict:
    """Not written yet."""
    raise Skipped("latency benchmark not written yet")
