"""Benchmark 5: the operator pages at 1,000,000 subscribers and 10,000,000 delivery rows — subscriber
pages (first, page 5,000 by keyset, searches, a filter), the overview and its live section during a
100,000-row fan-out, sources, the failures pages, the per-alert view, /metrics and the CLI's counts.

Each page is requested through the real app (create_app, logged in, httpx over ASGI: routing, store
queries, Jinja rendering, security headers), in a fresh child process per run; reported per page:
the first request of the process, the median of the next REPEAT, and the CPU time those took (all
threads of the process: what the page costs whatever else the machine is doing).
"""
from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from .common import RUNS, SMOKE, median
from .harness import run_child

N = 2_000 if SMOKE else 1_000_000  # the issues' scale, in quick and full mode alike
FANOUT = 500 if SMOKE else 100_000  # rows of the alert whose fan-out is running during the overview timings
DEEP = 20 if SMOKE else 5000  # the deep page reached by its keyset cursor ("page 5,000")
ALERTS = 10  # earlier alerts, each sent to every subscriber: ALERTS × N delivery rows (building them takes minutes)
PAGE = 50
TARGET_MS = 200
REPEAT = 5
PASSWORD = "bench-admin-password"
METRICS_TOKEN = "bench-metrics-token-0123456789"
DOMAINS = ["gmail.com", "orange.fr", "free.fr", "laposte.net", "example.org"]
STATUSES = ["active"] * 85 + ["pending"] * 5 + ["unsubscribed"] * 7 + ["suppressed"] * 2 + ["deleted"]


def prepare(p: dict) -> dict:
    """N subscribers (mixed statuses, modes, languages, origins), an alert with FANOUT rows 60 % sent,
    20 sources with 48 polls each; returns the keyset cursor of page 5,000 and a real address."""
    from sqlalchemy import func, select

    from bot.store import open_db, schema, utcnow

    engine = open_db(f"sqlite:///{p['db']}")
    now = utcnow()
    for start in range(0, N, 20000):
        rows = []
        for i in range(start, min(N, start + 20000)):
            status = STATUSES[i % 100]
            rows.append({"email": None if status == "deleted" else f"user{i:07d}@{DOMAINS[i % 5]}",
                         "status": status, "mode": ("instant", "digest", "both")[i % 3],
                         "language": "en" if i % 10 == 9 else "fr", "topics": [],
                         "origin": ("web", "import", "operator")[i % 3 if i % 7 else 0],
                         "token_nonce": f"{i:016x}", "created_at": now - timedelta(seconds=N - i),
                         "confirmed_at": now - timedelta(seconds=N - i)})
        with engine.begin() as conn:
            conn.execute(schema.subscribers.insert(), rows)
    _fanout_and_sources(engine, now)
    latest = _sent_alerts(engine, now)
    from .scale_child import file_bytes

    with engine.connect() as conn:
        s = schema.subscribers.c
        cursor = conn.execute(select(s.id).order_by(s.id.desc()).limit(1).offset(PAGE * (DEEP - 1) - 1)).scalar()
        address = conn.execute(select(s.email).where(s.id == N // 3)).scalar()
        rows = conn.execute(select(func.count()).select_from(schema.deliveries)).scalar()
    engine.dispose()
    return {"cursor": cursor, "address": address, "rows": rows, "latest": latest, "db_bytes": file_bytes(p["db"])}


def _sent_alerts(engine, now) -> int:
    """ALERTS earlier flash items of the last days, each sent to every subscriber (1 % failed, 1 % cancelled);
    returns the latest one's id."""
    from sqlalchemy import insert

    from bot.store import schema

    from .scale_child import sent_alert

    for k in range(ALERTS):
        at = now - timedelta(hours=6 * (ALERTS - k))
        with engine.begin() as conn:
            item = conn.execute(insert(schema.items).values(
                source_id=1, key=f"sent-{k}", title=f"FLASH INFO Alerte {k}", headline=f"Alerte {k}", label="FLASH INFO",
                content_hash=f"s{k}", categories=[], is_flash=True, alert_state="queued", norm_title=f"alerte {k}",
                published_at=at - timedelta(seconds=30), detected_at=at, first_email_at=at + timedelta(seconds=1),
                last_email_at=at + timedelta(minutes=5))).inserted_primary_key[0]
        sent_alert(engine, item, at, failed=1)
    return item


def _fanout_and_sources(engine, now) -> None:
    from sqlalchemy import insert

    from bot.models import FeedResult
    from bot.store import polls, schema, summary_rebuild

    with engine.begin() as conn:
        src = conn.execute(insert(schema.sources).values(name="bench", url="http://127.0.0.1/f.xml",
                                                         created_at=now)).inserted_primary_key[0]
        item = conn.execute(insert(schema.items).values(
            source_id=src, key="flash", title="FLASH INFO Séisme", headline="Séisme", label="FLASH INFO",
            content_hash="h", categories=[], is_flash=True, alert_state="queued", norm_title="seisme",
            published_at=now - timedelta(seconds=50), detected_at=now - timedelta(seconds=20))).inserted_primary_key[0]
        for start in range(0, FANOUT, 20000):
            conn.execute(insert(schema.deliveries), [{
                "item_id": item, "channel": "email", "recipient": str(i), "subscriber_id": i, "revision": 0,
                "kind": "alert", "state": "sent" if i % 5 < 3 else "pending", "attempts": i % 5 < 3,
                "created_at": now - timedelta(seconds=20), "next_attempt_at": now,
                "finished_at": now - timedelta(seconds=i % 20) if i % 5 < 3 else None}
                for i in range(start + 1, min(FANOUT, start + 20000) + 1)])
        summary_rebuild.rebuild(conn, [item])  # inserted directly: the summary counts them once
        for k in range(20):
            sid = conn.execute(insert(schema.sources).values(name=f"source-{k:02d}", url=f"http://127.0.0.1/{k}.xml",
                                                             created_at=now)).inserted_primary_key[0]
            row = {"id": sid, "poll_count": 0}
            for n in range(48):
                result = FeedResult(status=304 if n % 3 else 200, not_modified=bool(n % 3), elapsed=0.05)
                polls.record(conn, [polls.entry({**row, "poll_count": n}, result, now - timedelta(minutes=48 - n))])


def run(p: dict) -> dict:
    """Time every page in this process: first request and median of REPEAT more."""
    import httpx

    from bot.config import parse_config
    from bot.store import open_db
    from bot.web import create_app

    cfg = parse_config({"bot": {"database": p["db"]}, "web": {"admin_password": PASSWORD, "secret_key": "b" * 32,
                                                              "metrics_token": METRICS_TOKEN},
                        "email": {"host": "127.0.0.1", "port": 25, "sender": "b@example.org"}}, Path(p["db"]).parent, env={})
    engine = open_db(cfg.database_url)
    urls = {
        "first page": "/admin/subscribers",
        "page 5,000 (keyset)": f"/admin/subscribers?after={p['cursor']}",
        "search: part of an address": "/admin/subscribers?q=user05123",
        "search: a domain": "/admin/subscribers?q=laposte.net",
        "search: a full address": f"/admin/subscribers?q={p['address']}",
        "filter: pending, English": "/admin/subscribers?status=pending&language=en",
        "live fan-out (100,000 rows)": "/admin/live",
        "overview (live + charts)": "/admin",
        "sources (health strips)": "/admin/sources",
        "failures": "/admin/failures",
        "failures, page 200": "/admin/failures?page=200",
        "per-alert view": f"/admin/items/{p['latest']}",
        "metrics": "/metrics",
    }

    async def go() -> dict:
        out = {}
        app = create_app(cfg, engine)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as c:
            page = await c.get("/admin/login")
            csrf = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
            assert (await c.post("/admin/login", data={"csrf": csrf, "password": PASSWORD})).status_code == 303
            for name, url in urls.items():
                times, cpu, rows = [], [], None
                for _ in range(REPEAT + 1):
                    # The live figures are shared for a second between requests: time the reading each
                    # refresh really pays, not the shared copy (the subscriber summary's 30 s reuse stays).
                    app.state.web.cache.pop("fanouts", None)
                    t0, c0 = time.perf_counter(), time.process_time()
                    r = await c.get(url, headers={"authorization": f"Bearer {METRICS_TOKEN}"} if url == "/metrics" else None)
                    times.append((time.perf_counter() - t0) * 1000)
                    cpu.append((time.process_time() - c0) * 1000)  # every thread of this process
                    assert r.status_code == 200, (url, r.status_code)
                    rows = r.text.count("<tr data-id=") if "subscribers" in url or "sources" in url else None
                out[name] = {"url": url, "first_ms": round(times[0], 1), "rows": rows,
                             "median_ms": round(statistics.median(times[1:]), 1),
                             "cpu_ms": round(statistics.median(cpu[1:]), 1)}
        return out

    load = os.getloadavg()[0]
    pages = asyncio.run(go())
    # Page 5,000's rows read with OFFSET and by cursor, the query alone (no count, no HTTP), best of 5.
    from sqlalchemy import select

    from bot.store.schema import subscribers

    newest = select(subscribers).order_by(subscribers.c.id.desc()).limit(PAGE)
    queries = {"offset": newest.offset(PAGE * (DEEP - 1)), "keyset": newest.where(subscribers.c.id < p["cursor"])}
    best = {}
    with engine.connect() as conn:
        for name, q in queries.items():
            for _ in range(5):
                t0 = time.perf_counter()
                rows = conn.execute(q).all()
                best[name] = min(best.get(name, 1e9), (time.perf_counter() - t0) * 1000)
            assert len(rows) == PAGE
    offset_ms, keyset_ms = best["offset"], best["keyset"]
    store = _store_calls(engine)
    engine.dispose()
    return {"pages": pages, "store_offset_ms": round(offset_ms, 1), "store_keyset_ms": round(keyset_ms, 1),
            "store": store, "load": round((load + os.getloadavg()[0]) / 2, 1)}


def _store_calls(engine) -> dict:
    """`flashbot deliveries` reads (its counts and failures), the median of REPEAT calls each, in ms."""
    from bot.store import delivery_log

    out = {}
    for name, fn in (("`deliveries` counts", lambda: delivery_log.counts(engine)),
                     ("`deliveries` failures", lambda: delivery_log.failures(engine, 20))):
        times = []
        for _ in range(REPEAT):
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1000)
        out[name] = round(statistics.median(times), 1)
    return out


def bench(log=print) -> dict:
    """Build the 1M-subscriber database once, then time the pages in RUNS fresh processes."""
    with tempfile.TemporaryDirectory(prefix="flashbot-pages-", dir=os.environ.get("BENCH_TMP")) as tmp:
        db = f"{tmp}/pages.db"
        t0 = time.perf_counter()
        prep = run_child("pages_prepare", {"db": db}, timeout=7200)
        log(f"  built {N:,} subscribers, {prep['rows']:,} delivery rows ({ALERTS} sent alerts and a {FANOUT:,}-row "
            f"fan-out), {prep['db_bytes'] / 1e9:.2f} GB, in {time.perf_counter() - t0:.0f} s")
        runs = []
        for k in range(RUNS):
            r = run_child("pages_run", {"db": db, **prep})
            runs.append(r)
            log(f"  run {k + 1}: " + ", ".join(f"{n} {v['median_ms']} ms" for n, v in r["pages"].items()))
    names = list(runs[0]["pages"])
    pages = {n: {"url": runs[0]["pages"][n]["url"], "rows": runs[0]["pages"][n]["rows"],
                 "first_ms": median([r["pages"][n]["first_ms"] for r in runs]),
                 "median_ms": median([r["pages"][n]["median_ms"] for r in runs]),
                 "cpu_ms": median([r["pages"][n]["cpu_ms"] for r in runs]),
                 "best_ms": min(r["pages"][n]["median_ms"] for r in runs)} for n in names}
    return {"n": N, "fanout": FANOUT, "alerts": ALERTS, "rows": prep["rows"], "db_bytes": prep["db_bytes"], "page": PAGE,
            "target_ms": TARGET_MS, "repeat": REPEAT, "pages": pages,
            "store": {k: median([r["store"][k] for r in runs]) for k in runs[0]["store"]},
            "store_offset_ms": median([r["store_offset_ms"] for r in runs]),
            "store_keyset_ms": median([r["store_keyset_ms"] for r in runs]),
            "load": median([r["load"] for r in runs]), "cores": os.cpu_count(), "runs": runs}
