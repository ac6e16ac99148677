"""Benchmark 8: one alert to N subscribers through real `flashbot run --role worker` processes:
SQLite (one process) and PostgreSQL with 1, 2 and 4 workers, into Postfix's smtp-sink.

Per configuration: msg/s (from the first message to the last, and over the whole alert from the
queueing commit), PostgreSQL CPU seconds per 1,000 messages (the postmaster and its backends, from
/proc), peak RSS per worker (VmHWM), and who used the two cores (workers, PostgreSQL, smtp-sink,
the queueing) as a share of the wall time. Also the wake-up: an idle PostgreSQL worker's delay
from the queueing commit to its first accepted message, for small alerts (LISTEN/NOTIFY).

`BENCH_SMOKE=1 python -m bench.cluster` runs every configuration once on 300 subscribers and prints
the results: it checks the code runs end to end (its numbers mean nothing and are written nowhere).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from . import message
from .common import FULL, ROOT, RUNS, SMOKE, Skipped, median
from .sink import SmtpSink

CONFIGS = [("sqlite", 1), ("postgresql", 1), ("postgresql", 2), ("postgresql", 4)]
WAKE_SAMPLES = 2 if SMOKE else 10
TICK = os.sysconf("SC_CLK_TCK")


def size() -> int:
    """N: 100,000 with BENCH_FULL=1, 300 with BENCH_SMOKE=1, else 10,000."""
    return 300 if SMOKE else 100_000 if FULL else 10_000


def _cpu(pid: int, children: bool = False) -> float:
    """CPU seconds of a process (plus its reaped children's, for the postmaster)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = int(fields[11]) + int(fields[12]) + ((int(fields[13]) + int(fields[14])) if children else 0)
    return ticks / TICK


def _children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(d.name))
            except (OSError, ValueError, IndexError):
                continue
    return out


def _hwm_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def _pg_cpu(postmaster: int | None) -> float:
    if postmaster is None:
        return 0.0
    return _cpu(postmaster, children=True) + sum(_cpu(c) for c in _children(postmaster))


def _postmaster(cluster) -> int | None:
    try:
        return int((cluster.data / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _config(tmp: Path, database: str, port: int) -> Path:
    cfg = tmp / "config.toml"
    cfg.write_text(f'''[bot]
database = "{database}"
public_url = "{message.PUBLIC_URL}"
name = "Flashbot bench"

[email]
host = "127.0.0.1"
port = {port}
sender = "{message.SENDER}"
tls = "none"
concurrency = 8

[web]
enabled = false

[digest]
enabled = false

[delivery]
batch_size = 500
''')
    return cfg


def _prepare(url: str, n: int) -> int:
    """A source, the bench's Flash item and N instant subscribers; returns the item id."""
    from bot.store import open_db, schema, utcnow

    engine = open_db(url)
    now = utcnow()
    body = "".join(f"<p>{t}</p>" for t in message.PARAGRAPHS)
    with engine.begin() as conn:
        sid = conn.execute(schema.sources.insert().values(
            name="bench", url="http://127.0.0.1/flash.xml", origin="config", baselined=True, paused=True,
            created_at=now)).inserted_primary_key[0]
        item = conn.execute(schema.items.insert().values(
            source_id=sid, key=message.LINK, title=message.TITLE, headline=message.HEADLINE, label="FLASH INFO",
            link=message.LINK, summary_html=body, content_html=body, categories=["Flash Info"], language="fr",
            published_at=now, content_hash="bench", is_flash=True, alert_state="none",
            norm_title=message.HEADLINE.lower(), detected_at=now)).inserted_primary_key[0]
    for start in range(0, n, 10_000):
        rows = [{"email": f"abonne{i:07d}@example.org", "status": "active", "mode": "instant",
                 "language": "en" if i % 10 == 9 else "fr", "topics": [], "origin": "import",
                 "token_nonce": f"{i:016x}", "created_at": now, "confirmed_at": now}
                for i in range(start, min(n, start + 10_000))]
        with engine.begin() as conn:
            conn.execute(schema.subscribers.insert(), rows)
    engine.dispose()
    return item


def _workers(cfg: Path, tmp: Path, k: int) -> list[subprocess.Popen]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = []
    for i in range(k):
        log = open(tmp / f"worker{i}.log", "w")
        procs.append(subprocess.Popen([sys.executable, "-m", "bot", "--config", str(cfg), "run", "--role", "worker"],
                                      cwd=tmp, stdout=log, stderr=subprocess.STDOUT, env=env))
    return procs


def _wait(what: str, check, timeout: float, every: float = 0.01):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise RuntimeError(f"timed out waiting for {what}")


def _scalar(engine, sql: str):
    from sqlalchemy import text

    with engine.connect() as conn:
        return conn.execute(text(sql)).scalar()


def one_run(backend: str, k: int, n: int, cluster, sink: SmtpSink, log) -> dict:
    """Start k workers on a fresh database, queue the alert, wait for N messages; measure."""
    from bot.config import parse_config
    from bot.delivery import fanout
    from bot.store.db import make_engine

    tmp = Path(tempfile.mkdtemp(prefix=f"bench-{backend}{k}-"))
    name = f"bench_{backend}_{k}_{int(time.time() * 1000) % 10**9}"
    url = cluster.create_database(name) if backend == "postgresql" else f"sqlite:///{tmp / 'flashbot.db'}"
    database = url if backend == "postgresql" else "flashbot.db"
    item = _prepare(url, n)
    cfg_path = _config(tmp, database, sink.port)
    cfg = parse_config(__import__("tomllib").loads(cfg_path.read_text()), tmp, env={})
    engine = make_engine(cfg.database_url)
    procs = _workers(cfg_path, tmp, k)
    try:
        _wait("the workers' heartbeats", lambda: _scalar(engine, "SELECT count(*) FROM instances") == k, 60)
        time.sleep(1.0)  # let them settle into their idle wait
        pm = _postmaster(cluster) if backend == "postgresql" else None
        base = sink.count()
        cpu0 = {"workers": sum(_cpu(p.pid) for p in procs), "postgresql": _pg_cpu(pm), "sink": _sink_cpu(sink),
                "queueing": _self_cpu()}
        t0 = time.perf_counter()
        wall0 = datetime.now(timezone.utc)
        queued = fanout.queue_item(engine, cfg, item)
        t_commit = time.perf_counter()
        commit_at = datetime.now(timezone.utc)
        cpu_q = _self_cpu()
        _wait(f"{n} messages at the sink", lambda: sink.count() - base >= n, 1800, every=0.02)
        t1 = time.perf_counter()
        _wait("every row recorded", lambda: _scalar(engine, "SELECT count(*) FROM deliveries WHERE state = 'sent'") >= n, 120)
        cpu1 = {"workers": sum(_cpu(p.pid) for p in procs), "postgresql": _pg_cpu(pm), "sink": _sink_cpu(sink),
                "queueing": cpu_q}
        rss = [_hwm_mb(p.pid) for p in procs]
        first, last = _sent_span(engine)
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        engine.dispose()
        if backend == "postgresql":
            cluster.drop_database(name)
    wall = t1 - t0
    cpu = {key: round(cpu1[key] - cpu0[key], 2) for key in cpu0}
    steady = (last - first).total_seconds()
    result = {
        "backend": backend, "workers": k, "n": n, "queued": queued,
        "queue_s": round(t_commit - t0, 3), "wall_s": round(wall, 2),
        "msg_per_s": round(n / wall, 1), "steady_msg_per_s": round((n - 1) / steady, 1) if steady > 0 else None,
        "first_after_commit_s": round((first - commit_at).total_seconds(), 3),
        "cpu_s": cpu, "cores_used_pct": {key: round(100 * v / wall / (os.cpu_count() or 1), 1) for key, v in cpu.items()},
        "pg_cpu_s_per_1000": round(1000 * cpu["postgresql"] / n, 3) if backend == "postgresql" else None,
        "worker_peak_rss_mb": rss, "started": wall0.isoformat(timespec="seconds"),
        "load_average": round(os.getloadavg()[0], 1),  # the machine may be shared: say how busy it was
    }
    log(f"    {backend} x{k}: {result['msg_per_s']} msg/s (steady {result['steady_msg_per_s']}), "
        f"cpu {cpu}, rss {rss}")
    return result


def _sent_span(engine, item: int | None = None):
    """(first, last) sent_at of the deliveries (of one item), as aware datetimes."""
    from sqlalchemy import func, select

    from bot.store.schema import deliveries as d

    q = select(func.min(d.c.sent_at), func.max(d.c.sent_at))
    if item is not None:
        q = q.where(d.c.item_id == item)
    with engine.connect() as conn:
        return tuple(conn.execute(q).one())


def _self_cpu() -> float:
    t = os.times()
    return t.user + t.system


def _sink_cpu(sink: SmtpSink) -> float:
    return _cpu(sink._proc.pid) if sink._proc else 0.0


def wake_latency(cluster, sink: SmtpSink, log) -> dict:
    """An idle PostgreSQL worker: commit of a 10-recipient alert → first message accepted, WAKE_SAMPLES times."""
    from bot.config import parse_config
    from bot.delivery import fanout
    from bot.store import schema, utcnow
    from bot.store.db import make_engine
    from sqlalchemy import text

    tmp = Path(tempfile.mkdtemp(prefix="bench-wake-"))
    name = f"bench_wake_{int(time.time()) % 10**6}"
    url = cluster.create_database(name)
    _prepare(url, 10)
    cfg_path = _config(tmp, url, sink.port)
    cfg = parse_config(__import__("tomllib").loads(cfg_path.read_text()), tmp, env={})
    engine = make_engine(cfg.database_url)
    procs = _workers(cfg_path, tmp, 1)
    samples = []
    try:
        _wait("the worker's heartbeat", lambda: _scalar(engine, "SELECT count(*) FROM instances") == 1, 60)
        with engine.begin() as conn:
            sid = conn.execute(text("SELECT id FROM sources")).scalar()
        for i in range(WAKE_SAMPLES):
            time.sleep(1.5)  # idle again, past any IDLE_SECONDS poll that could hide the wake-up
            with engine.begin() as conn:
                item = conn.execute(schema.items.insert().values(
                    source_id=sid, key=f"wake{i}", title=f"FLASH wake {i}", headline=f"wake {i}", content_hash=f"w{i}",
                    categories=[], is_flash=True, alert_state="none", norm_title=f"wake {i}",
                    detected_at=utcnow())).inserted_primary_key[0]
            fanout.queue_item(engine, cfg, item)
            committed = datetime.now(timezone.utc)
            first = _wait("the wake-up send", lambda: _sent_span(engine, item)[0], 30, 0.005)
            samples.append(round((first - committed).total_seconds() * 1000, 1))
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
            p.wait(30)
        engine.dispose()
        cluster.drop_database(name)
    log(f"    wake-up (commit → first message accepted), ms: {samples}")
    return {"samples_ms": samples, "median_ms": median(samples), "max_ms": max(samples)}


def bench(log=print) -> dict:
    """Section 8 of BENCHMARKS.md."""
    from bot.demo.postgres import Cluster, find_bin

    if find_bin() is None:
        raise Skipped("PostgreSQL server binaries missing: `apt-get install postgresql` (make test-deps)")
    n = size()
    out: dict = {"n": n, "configs": {}}
    with SmtpSink(log) as sink, Cluster() as cluster:
        for run in range(1 if SMOKE else RUNS):
            for backend, k in CONFIGS:  # interleaved: every config sees the same machine conditions
                log(f"  run {run + 1}/{1 if SMOKE else RUNS}: {backend}, {k} worker(s), N = {n:,}")
                r = one_run(backend, k, n, cluster, sink, log)
                out["configs"].setdefault(f"{backend}-{k}", []).append(r)
        out["wake"] = wake_latency(cluster, sink, log)
    out["summary"] = {key: _merge(runs) for key, runs in out["configs"].items()}
    return out


def _merge(runs: list[dict]) -> dict:
    """Medians of the numeric fields of several runs of one configuration."""
    def med(get):
        return median([get(r) for r in runs])
    first = runs[0]
    return {
        "backend": first["backend"], "workers": first["workers"],
        "msg_per_s": med(lambda r: r["msg_per_s"]), "steady_msg_per_s": med(lambda r: r["steady_msg_per_s"]),
        "pg_cpu_s_per_1000": med(lambda r: r["pg_cpu_s_per_1000"]),
        "first_after_commit_s": med(lambda r: r["first_after_commit_s"]),
        "queue_s": med(lambda r: r["queue_s"]),
        "worker_peak_rss_mb": med(lambda r: max(x for x in r["worker_peak_rss_mb"] if x is not None)),
        "cores_used_pct": {key: med(lambda r, k=key: r["cores_used_pct"][k]) for key in first["cores_used_pct"]},
        "cpu_s": {key: med(lambda r, k=key: r["cpu_s"][k]) for key in first["cpu_s"]},
    }


if __name__ == "__main__":  # BENCH_SMOKE=1 python -m bench.cluster: this section alone, results printed
    import json

    print(json.dumps(bench(), indent=1, default=str))
