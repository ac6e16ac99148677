"""Benchmark 1: one Flash Info alert fanned out to N email subscribers, next to the baselines."""
from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
from pathlib import Path

from . import loops, message
from .common import FULL, RUNS, Profile, Skipped, need
from .harness import ChildFailed, run_child
from .common import median

CONNS = int(os.environ.get("BENCH_CONNS", "8"))  # [email] concurrency, same for (b)
# rss2email-style costs the same per message at any N (a new connection each), so quick mode
# measures it on at most this many messages; full mode sends all N.
QUICK_CAP_A = 3000
VARIANTS = ("ours", "rss2email", "raw_asyncio", "raw_uvloop")


def sizes() -> list[int]:
    """N values: 1k and 10k always, 100k with BENCH_FULL=1."""
    return [1000, 10000, 100000] if FULL else [1000, 10000]


def _rss_now_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    return 0.0


# ---- child side: our real path -------------------------------------------------------------

def _config(db_path: str, port: int, conns: int):
    from bot.config import parse_config

    data = {
        "bot": {"database": db_path, "public_url": message.PUBLIC_URL, "name": "Flashbot bench"},
        "email": {"host": "127.0.0.1", "port": port, "sender": message.SENDER, "tls": "none",
                  "concurrency": conns},
        "delivery": {"batch_size": int(os.environ.get("BENCH_BATCH", "500"))},
    }
    return parse_config(data, Path(db_path).parent, "bench")


def prepare(p: dict) -> dict:
    """Create a fresh SQLite DB with one source, one Flash item and N active instant subscribers."""
    from bot.store import open_db, schema, utcnow

    path, n = p["db"], p["n"]
    engine = open_db(f"sqlite:///{path}")
    now = utcnow()
    with engine.begin() as conn:
        sid = conn.execute(schema.sources.insert().values(
            name="bench", url="http://127.0.0.1/flash.xml", origin="config", baselined=True,
            created_at=now)).inserted_primary_key[0]
        body = "".join(f"<p>{t}</p>" for t in message.PARAGRAPHS)
        item_id = conn.execute(schema.items.insert().values(
            source_id=sid, key=message.LINK, title=message.TITLE, headline=message.HEADLINE,
            label="FLASH INFO", link=message.LINK, summary_html=body, content_html=body,
            categories=["Flash Info"], language="fr", published_at=now, content_hash="bench",
            is_flash=True, alert_state="none", norm_title=message.HEADLINE.lower(),
            detected_at=now)).inserted_primary_key[0]
    batch = 5000
    for start in range(0, n, batch):
        rows = [{"email": f"abonne{i:07d}@example.org", "status": "active", "mode": "instant",
                 # one in ten reads English: two renders per item, as in real life
                 "language": "en" if i % 10 == 9 else "fr", "topics": [], "origin": "import",
                 "token_nonce": f"{i:016x}", "created_at": now, "confirmed_at": now}
                for i in range(start, min(n, start + batch))]
        with engine.begin() as conn:
            conn.execute(schema.subscribers.insert(), rows)
    engine.dispose()
    return {"n": n, "item_id": item_id}


class FirstSendProbe:
    """Wraps the real EmailChannel to note when the first message was accepted by the MTA."""

    def __init__(self, inner):
        self._inner = inner
        self.name = inner.name
        self.first: float | None = None

    async def send(self, msg):
        sent = await self._inner.send(msg)
        if self.first is None:
            self.first = time.perf_counter()
        return sent

    def __getattr__(self, attr):  # close(), check() and anything else go to the real channel
        return getattr(self._inner, attr)


class _thread_timers:
    """With BENCH_PROFILE=1: wall time spent in the outbox's database calls (they run in threads,
    which cProfile does not see). Without it: a no-op yielding an empty dict."""

    NAMES = ("claim", "batch_context", "record")

    def __enter__(self) -> dict:
        self.times: dict = {}
        self.saved = {}
        if os.environ.get("BENCH_PROFILE", "") in ("", "0"):
            return self.times
        from bot.store import outbox

        for name in self.NAMES:
            fn = self.saved[name] = getattr(outbox, name)

            def timed(*a, _fn=fn, _name=name, **kw):
                t = time.perf_counter()
                try:
                    return _fn(*a, **kw)
                finally:
                    c = self.times.setdefault(_name, [0, 0.0, 0.0])
                    dt = time.perf_counter() - t
                    c[0] += 1
                    c[1] = round(c[1] + dt, 4)
                    c[2] = round(max(c[2], dt), 4)
            setattr(outbox, name, timed)
        return self.times

    def __exit__(self, *exc) -> None:
        from bot.store import outbox

        for name, fn in self.saved.items():
            setattr(outbox, name, fn)


def run(p: dict) -> dict:
    """Fan the alert out through queue_events -> DeliveryEngine.run_due -> EmailChannel."""
    deliver = need("bot.delivery.engine", "DeliveryEngine")
    fanout = need("bot.delivery.fanout", "queue_events")
    render = need("bot.render.renderer", "Renderer")
    need("bot.delivery.channels.email", "EmailChannel")
    from sqlalchemy import func, select
    from bot.models import Event
    from bot.store import open_db, schema

    shutil.copyfile(p["template"], p["db"])
    cfg = _config(p["db"], p["port"], p["conns"])
    engine = open_db(cfg.database_url)
    rss_start = _rss_now_mb()

    async def main() -> dict:
        renderer = render.Renderer(cfg)
        channels = need("bot.delivery.channels", "build_channels").build_channels(cfg)
        probe = channels["email"] = FirstSendProbe(channels["email"])
        engine_ = deliver.DeliveryEngine(engine, cfg, channels, renderer)
        event = Event(item_id=p["item_id"], kind="flash", source="bench", title=message.TITLE,
                      is_flash=True)
        t0 = time.perf_counter()
        queued = await asyncio.to_thread(fanout.queue_events, engine, cfg, [event])
        t_queued = time.perf_counter()
        with Profile(f"fanout-{p['n']}"), _thread_timers() as timers:
            stats = await engine_.run_due()
        t1 = time.perf_counter()
        for ch in channels.values():
            await ch.close()
        return {"queued": queued, "queue_s": t_queued - t0, "wall": t1 - t0, "timers": timers,
                "first": (probe.first - t0) if probe.first else None, "stats": stats}

    r = loops.run(main, p.get("loop", "uvloop"))
    d = schema.deliveries
    with engine.connect() as conn:
        states = dict(conn.execute(select(d.c.state, func.count()).where(d.c.channel == "email")
                                   .group_by(d.c.state)).all())
    engine.dispose()
    sent = states.get("sent", 0)
    return {"n": p["n"], "queued": r["queued"], "sent": sent, "states": states,
            "wall_s": round(r["wall"], 3), "msg_per_s": round(sent / r["wall"], 1),
            "queue_s": round(r["queue_s"], 3),
            "first_s": round(r["first"], 4) if r["first"] is not None else None,
            "rss_start_mb": rss_start, "loop": p.get("loop", "uvloop"), "db_timers": r["timers"],
            "engine_stats": {k: v for k, v in (r["stats"] or {}).items()
                             if isinstance(v, (int, float, str))}}


# ---- parent side ---------------------------------------------------------------------------

def _variants(n: int, port: int, template: str, tmp: str, item_id: int | None) -> dict:
    a_n = n if FULL else min(n, QUICK_CAP_A)
    return {
        "ours": ("fanout_run", {"n": n, "port": port, "conns": CONNS, "template": template,
                                "db": f"{tmp}/run-{n}.db", "item_id": item_id, "loop": "uvloop"}),
        "rss2email": ("baseline_smtplib", {"n": a_n, "port": port}),
        "raw_asyncio": ("baseline_raw", {"n": n, "port": port, "conns": CONNS, "loop": "asyncio"}),
        "raw_uvloop": ("baseline_raw", {"n": n, "port": port, "conns": CONNS, "loop": "uvloop"}),
    }


def _settled_count(sink, before: int) -> int:
    """Messages the sink got since `before`, once its counter has stopped moving."""
    last, deadline = -1, time.monotonic() + 3
    while time.monotonic() < deadline:
        now = sink.count()
        if now == last:
            break
        last = now
        time.sleep(0.15)
    return last - before


def _summary(runs: list[dict]) -> dict:
    keys = ("msg_per_s", "first_s", "rss_mb", "cpu_s", "wall_s", "sent", "sink_received", "n",
            "queue_s", "rss_start_mb")
    out = {k: median([r.get(k) for r in runs]) for k in keys if any(k in r for r in runs)}
    out["n_runs"] = len(runs)
    out["runs"] = runs
    return out


def _one_size(n: int, sink, tmp: str, log) -> dict:
    template, skipped, item_id = f"{tmp}/template-{n}.db", {}, None
    try:
        t0 = time.perf_counter()
        item_id = run_child("fanout_prepare", {"db": template, "n": n})["item_id"]
        log(f"  prepared {n:,} subscribers in {time.perf_counter() - t0:.1f} s")
    except (Skipped, ChildFailed) as exc:
        skipped["ours"] = f"cannot prepare the database: {exc}"
    variants = _variants(n, sink.port, template, tmp, item_id)
    runs: dict[str, list] = {v: [] for v in VARIANTS}
    for rep in range(RUNS):  # interleaved, so machine noise hits every variant alike
        for v in VARIANTS:
            if v in skipped:
                continue
            scenario, params = variants[v]
            before = sink.count()
            try:
                r = run_child(scenario, params)
            except Skipped as exc:
                skipped[v] = str(exc)
                log(f"  {v}: skipped: {exc}")
                continue
            except ChildFailed as exc:
                skipped[v] = f"failed: {str(exc).splitlines()[-1][:300]}"
                log(f"  {v}: FAILED\n{exc}")
                continue
            r["sink_received"] = _settled_count(sink, before)
            runs[v].append(r)
            log(f"  N={n:>7,} {v:<12} run {rep + 1}: {r['msg_per_s']:>8,.0f} msg/s, first "
                f"{r.get('first_s')} s, RSS {r['rss_mb']} MB, sink got {r['sink_received']:,}")
    res = {v: _summary(runs[v]) for v in VARIANTS if runs[v]}
    res["skipped"] = skipped
    return res


def ratios(res: dict) -> dict:
    """ours / baseline throughput ratios of one N (None where a side is missing)."""
    def rate(v):
        return (res.get(v) or {}).get("msg_per_s")

    ours = rate("ours")
    return {b: (round(ours / rate(b), 3) if ours and rate(b) else None)
            for b in ("rss2email", "raw_asyncio", "raw_uvloop")}


def bench(log=print) -> dict:
    """Run every N with all four variants against one smtp-sink; return the results."""
    from .sink import SmtpSink

    out = {"conns": CONNS, "runs": RUNS, "quick_cap_a": None if FULL else QUICK_CAP_A, "sizes": {}}
    with SmtpSink(log=log) as sink, tempfile.TemporaryDirectory(prefix="flashbot-bench-") as tmp:
        out["db_dir_fs"] = _fs_type(tmp)
        for n in sizes():
            res = _one_size(n, sink, tmp, log)
            res["ratios"] = ratios(res)
            out["sizes"][str(n)] = res
            for f in Path(tmp).glob(f"*-{n}.db*"):
                f.unlink()
    return out


def _fs_type(path: str) -> str:
    """The file system the benchmark databases live on (tmpfs would flatter SQLite)."""
    best, fstype = "", "unknown"
    try:
        for line in open("/proc/mounts", encoding="utf-8"):
            mnt, typ = line.split()[1], line.split()[2]
            if path.startswith(mnt) and len(mnt) > len(best):
                best, fstype = mnt, typ
    except OSError:
        pass
    return fstype
