"""Shared bench helpers: mode switches, output folder, ports, statistics."""
from __future__ import annotations

import os
import socket
import statistics
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
FULL = os.environ.get("BENCH_FULL", "") not in ("", "0")
# Tiny sizes that only check a section's code runs end to end (its numbers mean nothing).
SMOKE = os.environ.get("BENCH_SMOKE", "") not in ("", "0")
# Medians of at least 3 runs; BENCH_RUNS may raise it (never below 3 for published numbers).
RUNS = max(3, int(os.environ.get("BENCH_RUNS", "3") or 3))


class Skipped(Exception):
    """A benchmark that cannot run here; the message says why (shown as a 'skipped' row)."""


def free_port() -> int:
    """An ephemeral TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def median(values: list[float]) -> float | None:
    """The median of the non-None values, or None when there is none."""
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def percentile(values: list[float], p: float) -> float | None:
    """The p-th percentile (0..100), nearest-rank; None for an empty list."""
    vals = sorted(v for v in values if v is not None)
    if not vals:
        return None
    k = max(0, min(len(vals) - 1, round(p / 100 * len(vals) + 0.5) - 1))
    return vals[k]


def need(module: str, *names: str):
    """Import `module` (and check `names` exist in it) or raise Skipped saying what is missing."""
    import importlib

    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        raise Skipped(f"{module} is not available yet ({exc})") from None
    missing = [n for n in names if not hasattr(mod, n)]
    if missing:
        raise Skipped(f"{module} has no {', '.join(missing)} yet")
    return mod


class Profile:
    """With BENCH_PROFILE=1, cProfile the block and write bench/out/<name>.prof and a top-30 .txt."""

    def __init__(self, name: str):
        self.name = name
        self.on = os.environ.get("BENCH_PROFILE", "") not in ("", "0")

    def __enter__(self) -> "Profile":
        if self.on:
            import cProfile

            self.prof = cProfile.Profile()
            self.prof.enable()
        return self

    def __exit__(self, *exc) -> None:
        if not self.on:
            return
        import io
        import pstats

        self.prof.disable()
        OUT.mkdir(parents=True, exist_ok=True)
        self.prof.dump_stats(OUT / f"{self.name}.prof")
        buf = io.StringIO()
        stats = pstats.Stats(self.prof, stream=buf).sort_stats("tottime")
        stats.print_stats(30)
        buf.write("\n\n==== by cumulative time ====\n")
        stats.sort_stats("cumulative").print_stats(40)
        (OUT / f"{self.name}.txt").write_text(buf.getvalue())
