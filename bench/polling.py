"""Benchmark 2: one cold and one warm polling cycle of 2,000 sources through bot.ingest.poll_due."""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from . import loops
from .common import FULL, ROOT, RUNS, Profile, Skipped, median, need
from .feedfarm import SIZES, cpu_seconds, feed
from .harness import run_child

SOURCES = 2000
# Cold cycles are bounded by feedparser (~10-80 ms CPU per feed): quick mode measures each feed
# size on this many sources and reports per-source costs; full mode polls all 2,000.
QUICK_COLD = 200
WARM_CYCLES = 3
WORKERS = 3  # server processes
INTERVAL = 60


class FeedFarm:
    """The pre-forked feed server as a child process group we own."""

    def __enter__(self) -> "FeedFarm":
        self.proc = subprocess.Popen([sys.executable, "-m", "bench.feedfarm", str(WORKERS)], cwd=ROOT,
                                     stdout=subprocess.PIPE, text=True, start_new_session=True)
        self.port, *self.pids = (int(x) for x in self.proc.stdout.readline().split())
        return self

    def __exit__(self, *exc) -> None:
        self.proc.terminate()  # its SIGTERM handler stops the forked workers it started
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, 9)
            self.proc.wait()


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


def run(p: dict) -> dict:
    """Child: fresh DB with N sources of one size; a cold cycle, then (optionally) a warm one."""
    ingest = need("bot.ingest.poll", "poll_due", "sync_sources")
    sources = need("bot.ingest.fetch", "make_client")
    from sqlalchemy import func, select
    from bot.config import parse_config
    from bot.store import open_db, schema, utcnow

    size, n, port = p["size"], p["n"], p["port"]
    tmp = tempfile.mkdtemp(prefix="flashbot-poll-")
    data = {"bot": {"database": f"{tmp}/poll.db"},
            "fetch": {"concurrency": p["concurrency"]},
            "sources": [{"name": f"{size}-{i:05d}", "url": f"http://127.0.0.1:{port}/feed/{size}/{i}.xml",
                         "interval": INTERVAL} for i in range(n)]}
    cfg = parse_config(data, Path(tmp), "bench")
    engine = open_db(cfg.database_url)
    ingest.sync_sources(engine, cfg)

    loop = p.get("loop", "asyncio")
    farm = p.get("farm_pids") or []

    async def cycle(now, label: str) -> dict:
        async with sources.make_client(cfg.fetch) as client:
            f0, c0, t0 = cpu_seconds(farm), _cpu(), time.perf_counter()
            with Profile(f"poll-{label}-{size}-{loop}"):
                reports = await ingest.poll_due(engine, cfg, client, now=now)
            wall, cpu, f1 = time.perf_counter() - t0, _cpu() - c0, cpu_seconds(farm)
        n = max(1, len(reports))
        return {"wall_s": round(wall, 3), "cpu_s": round(cpu, 3), "polled": len(reports),
                "cpu_ms_per_source": round(cpu / n * 1000, 4),
                "farm_cpu_s": None if f0 is None or f1 is None else round(f1 - f0, 3),
                "errors": sum(1 for r in reports if r.error),
                "not_modified": sum(1 for r in reports if r.result.not_modified),
                "first_error": next((f"{r.source}: {r.error}" for r in reports if r.error), None)}

    out = {"size": size, "n": n, "loop": loop, "parse_ms": _parse_ms(size)}
    out["cold"] = loops.run(lambda: cycle(None, "cold"), loop)
    with engine.connect() as conn:
        out["cold"]["items_stored"] = conn.execute(select(func.count()).select_from(schema.items)).scalar()
    warm = []
    for k in range(p.get("warm", 0)):  # each warm cycle pretends one more interval has passed
        later = utcnow() + timedelta(seconds=(INTERVAL + 1) * (k + 1))
        warm.append(loops.run(lambda: cycle(later, "warm"), loop))
    if warm:
        out["warm"] = warm
    engine.dispose()
    for f in Path(tmp).iterdir():
        f.unlink()
    os.rmdir(tmp)
    return out


def _parse_ms(size: str, samples: int = 20) -> float:
    """CPU ms of `parse_feed` alone on one feed of this size (what a cold poll cannot avoid)."""
    from bot.ingest.parse import parse_feed

    bodies = [feed(size, i) for i in range(samples)]
    c0 = time.process_time()
    for body in bodies:
        parse_feed(body, {"content-type": "application/rss+xml; charset=utf-8"}, "http://127.0.0.1/")
    return round((time.process_time() - c0) / samples * 1000, 3)


def _log_run(log, label: str, r: dict) -> None:
    c = r["cold"]
    log(f"  {label}: cold {c['polled']} sources {c['wall_s']} s wall, {c['cpu_ms_per_source']} ms "
        f"CPU/source, {c['errors']} errors" + "".join(
            f"; warm {w['wall_s']} s, {w['cpu_ms_per_source']} ms CPU/source, {w['not_modified']} x 304"
            f" (feed farm {w['farm_cpu_s']} s CPU)"
            for w in r.get("warm", [])) + f"; RSS {r['rss_mb']} MB")
    if c["first_error"]:
        log(f"    first error: {c['first_error']}")


def bench(log=print) -> dict:
    """Cold cycle per feed size (fresh DB per run); warm cycles on 2,000 sources after a cold one."""
    need("bot.ingest.poll", "poll_due", "sync_sources")
    from bot.config import FetchConfig

    conc = FetchConfig().concurrency
    n_cold = SOURCES if FULL else QUICK_COLD
    out = {"sources": SOURCES, "cold_sources": n_cold, "server_workers": WORKERS,
           "concurrency": conc, "cold": {}}
    with FeedFarm() as farm:
        base = {"port": farm.port, "concurrency": conc}
        for size, nitems in SIZES.items():
            runs = []
            for rep in range(RUNS):
                runs.append(run_child("poll", {**base, "size": size, "n": n_cold, "farm_pids": farm.pids}))
                _log_run(log, f"{size:<6} run {rep + 1}", runs[-1])
            cold = {k: median([r["cold"][k] for r in runs])
                    for k in ("wall_s", "cpu_s", "cpu_ms_per_source", "errors", "items_stored", "farm_cpu_s")}
            cold["parse_ms"] = median([r["parse_ms"] for r in runs])
            cold.update(items_per_feed=nitems, feed_kb=len(feed(size, 1)) / 1024, sources=n_cold,
                        rss_mb=median([r["rss_mb"] for r in runs]), runs=[r["cold"] for r in runs])
            out["cold"][size] = cold
        # Warm: 2,000 small feeds polled cold once (to learn ETags), then WARM_CYCLES all-304
        # cycles, on the default loop (what `flashbot run` uses) and on uvloop.
        for loop, key in (("asyncio", "warm"), ("uvloop", "warm_uvloop")):
            warm_runs = []
            for rep in range(RUNS if FULL else 1):
                try:
                    r = run_child("poll", {**base, "size": "small", "n": SOURCES, "warm": WARM_CYCLES,
                                           "loop": loop, "farm_pids": farm.pids})
                except Skipped as exc:
                    out[key] = {"skipped": str(exc)}
                    break
                _log_run(log, f"warm {loop} run {rep + 1}", r)
                warm_runs += r["warm"]
            if warm_runs:
                out[key] = {k: median([w[k] for w in warm_runs]) for k in
                            ("wall_s", "cpu_s", "cpu_ms_per_source", "errors", "not_modified", "farm_cpu_s")}
                out[key].update(size=f"{SOURCES:,} sources, median of {len(warm_runs)} cycles", loop=loop,
                                runs=warm_runs)
    return out
