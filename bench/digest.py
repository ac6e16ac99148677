"""Benchmark 2: digests (placeholder until written)."""
from .common import Skipped


def bench(log=print) -> dict:
    """Not written yet."""
    raise Skipped("digest benchmark not written yet")
