"""Child scenarios of the Scale benchmark (bench/scale.py): databases of a million subscribers and ten
million delivery rows, compaction's bytes per recipient, and the operator pages timed in-process."""
from __future__ import annotations

import asyncio
import os
import time
from datetime import timedelta

from . import message

ADMIN_PASSWORD = "bench-admin-password"
ALERTS = 10  # alerts of the pages database, each to every subscriber
SOURCES, ITEMS = 50, 20000  # feeds and stored items of the pages database


def subscribers(p: dict) -> dict:
    """A database with n active instant subscribers (10 % in English) and nothing else."""
    from bot.store import open_db, schema, utcnow

    engine = open_db(f"sqlite:///{p['db']}")
    now = utcnow()
    for start in range(0, p["n"], 20000):
        with engine.begin() as conn:
            conn.execute(schema.subscribers.insert(), [
                {"email": f"abonne{i:07d}@example.org", "status": "active", "mode": "instant",
                 "language": "en" if i % 10 == 9 else "fr", "topics": [], "origin": "import",
                 "token_nonce": f"{i:016x}", "created_at": now, "confirmed_at": now}
                for i in range(start, min(p["n"], start + 20000))])
    engine.dispose()
    return {"n": p["n"], "bytes": file_bytes(p["db"])}


def file_bytes(path: str) -> int:
    """The database's size once its WAL is checkpointed into it."""
    import sqlite3

    with sqlite3.connect(path) as raw:
        raw.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    return os.path.getsize(path)


def compaction(p: dict) -> dict:
    """Compact a database holding one sent alert to n subscribers (a run --once result) as if 8 days
    later; then a second alert to all of them, compacted 8 days after that: what each further alert keeps."""
    from bot.store import compaction as comp
    from bot.store import maintenance, open_db, utcnow

    before = file_bytes(p["db"])
    engine = open_db(f"sqlite:///{p['db']}")
    with engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT count(*) FROM deliveries").scalar()
        item = conn.exec_driver_sql("SELECT max(id) FROM items").scalar()
    t0 = time.perf_counter()
    report = comp.compact(engine, 7, now=utcnow() + timedelta(days=8))
    t1 = time.perf_counter()
    freed = maintenance.reclaim(engine, budget_s=600)
    t2 = time.perf_counter()
    after = file_bytes(p["db"])
    _add_alert(engine, _copy_item(engine, item), utcnow() + timedelta(days=8))
    second = file_bytes(p["db"])
    again = comp.compact(engine, 7, now=utcnow() + timedelta(days=16))
    maintenance.reclaim(engine, budget_s=600)
    engine.dispose()
    return {"rows": rows, "bytes_before": before, "bytes_after": after, "folded": report.rows,
            "compact_s": round(t1 - t0, 2), "reclaim_s": round(t2 - t1, 2), "batches": report.batches,
            "slowest_batch_s": max(report.slowest_batch_s, again.slowest_batch_s), "freed_pages": freed.get("freed_pages"),
            "second_bytes_before": second, "second_bytes_after": file_bytes(p["db"]), "second_folded": again.rows}


def _copy_item(engine, item_id: int) -> int:
    """Another flash item like `item_id` (a second alert), already queued."""
    from sqlalchemy import select

    from bot.store import schema

    with engine.begin() as conn:
        row = dict(conn.execute(select(schema.items).where(schema.items.c.id == item_id)).mappings().one())
        row.pop("id")
        row.update(key=row["key"] + "-2", norm_title=row["norm_title"] + " 2")
        return conn.execute(schema.items.insert().values(**row)).inserted_primary_key[0]


def _add_alert(engine, item_id: int, at, failed: int = 0) -> dict:
    """One alert to every subscriber, inserted as already sent (`failed` and as many cancelled per 100),
    with its summary; returns rows per state."""
    from sqlalchemy import String, case, cast, func, literal, select

    from bot.store import schema, summary
    from bot.store.schema import UTCDateTime

    S, D = schema.subscribers.c, schema.deliveries
    state = case((S.id % 100 < failed, "failed"), (S.id % 100 < 2 * failed, "cancelled"), else_="sent")
    src = select(literal(item_id), literal("email"), cast(S.id, String), S.id, literal(0), literal("alert"), state,
                 literal(1), literal(at, UTCDateTime()), literal(at + timedelta(seconds=40), UTCDateTime()),
                 case((S.id % 100 < failed, "550 5.1.1 <x@example.org>: user unknown"), else_=None)).order_by(S.id)
    cols = ["item_id", "channel", "recipient", "subscriber_id", "revision", "kind", "state", "attempts",
            "created_at", "sent_at", "last_error"]
    key = (item_id, None, "email", 0)
    with engine.begin() as conn:
        conn.execute(D.insert().from_select(cols, src))
        counts = dict(conn.execute(select(D.c.state, func.count()).where(D.c.item_id == item_id).group_by(D.c.state)).all())
        for st, n in counts.items():
            summary.queued(conn, key, n, at, st)
        gid = summary.group_ids(conn, [key])[key]
        sent = counts.get("sent", 0)
        conn.execute(schema.delivery_groups.update().where(schema.delivery_groups.c.id == gid).values(
            first_at=at + timedelta(seconds=1), last_at=at + timedelta(seconds=120),
            latency={"2": sent // 10, "30": sent // 2, "60": sent - sent // 10 - sent // 2}))
    return counts


def pages_prepare(p: dict) -> dict:
    """From a subscribers database: SOURCES feeds, ITEMS items, ALERTS alerts each sent to every
    subscriber (1 % failed, 1 % cancelled), their summary: about n × ALERTS delivery rows."""
    from bot.store import open_db, schema, utcnow

    engine = open_db(f"sqlite:///{p['db']}")
    now = utcnow() - timedelta(hours=2)
    with engine.begin() as conn:
        conn.execute(schema.sources.insert(), [{"name": f"source {s}", "url": f"https://feeds.example.org/{s}.xml",
                                                "origin": "config", "baselined": True, "created_at": now} for s in range(SOURCES)])
        body = "".join(f"<p>{t}</p>" for t in message.PARAGRAPHS[:2])
        for start in range(0, ITEMS, 5000):
            conn.execute(schema.items.insert(), [{
                "source_id": 1 + k % SOURCES, "key": f"item-{k}", "title": f"Article {k}", "headline": f"Article {k}",
                "link": f"https://www.example-actu.fr/a/{k}.html", "summary_html": body, "categories": ["Monde"],
                "content_hash": f"h{k}", "is_flash": k >= ITEMS - ALERTS, "alert_state": "queued" if k >= ITEMS - ALERTS else "none",
                "norm_title": f"article {k}", "published_at": now - timedelta(minutes=ITEMS - k),
                "detected_at": now - timedelta(minutes=ITEMS - k) + timedelta(seconds=3)} for k in range(start, min(ITEMS, start + 5000))])
    alerts = list(range(ITEMS - ALERTS + 1, ITEMS + 1))
    for item_id in alerts:
        _add_alert(engine, item_id, now + timedelta(minutes=item_id % 97), failed=1)
    engine.dispose()
    return {"rows": len(alerts) * p["n"], "bytes": file_bytes(p["db"])}


def pages(p: dict) -> dict:
    """Median and worst of `repeat` requests to each operator page, through the real app, in-process."""
    import httpx

    from bot.config import parse_config
    from bot.store import delivery_log, open_db
    from bot.web import create_app

    cfg = parse_config({"bot": {"database": p["db"], "public_url": "http://testserver"},
                        "web": {"admin_password": ADMIN_PASSWORD, "secret_key": "bench-secret-key-0123456789"}},
                       os.path.dirname(p["db"]), env={})
    engine = open_db(cfg.database_url)
    alert = ITEMS  # the latest alert
    urls = {"overview": "/admin", "failures": "/admin/failures", "failures, page 200": "/admin/failures?page=200",
            "per-alert view": f"/admin/items/{alert}", "metrics": "/metrics", "sources": "/admin/sources",
            "subscribers (first page)": "/admin/subscribers", "subscribers (search)": "/admin/subscribers?q=abonne0123"}

    async def main() -> dict:
        import re

        transport = httpx.ASGITransport(app=create_app(cfg, engine), client=("127.0.0.1", 50000))
        out = {}
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver", timeout=600) as c:
            page = await c.get("/admin/login")
            csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
            await c.post("/admin/login", data={"csrf": csrf, "password": ADMIN_PASSWORD})
            for name, url in urls.items():
                times = []
                for _ in range(p["repeat"] + 1):
                    t0 = time.perf_counter()
                    r = await c.get(url)
                    times.append(time.perf_counter() - t0)
                    assert r.status_code == 200, (url, r.status_code)
                times = sorted(times[1:])  # the first request warms the caches
                out[name] = {"median_ms": round(1000 * times[len(times) // 2], 1), "max_ms": round(1000 * times[-1], 1)}
        return out

    res = asyncio.run(main())
    for name, fn in (("deliveries CLI counts", lambda: delivery_log.counts(engine)),
                     ("deliveries CLI failures", lambda: delivery_log.failures(engine, 20))):
        times = []
        for _ in range(p["repeat"]):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        times.sort()
        res[name] = {"median_ms": round(1000 * times[len(times) // 2], 1), "max_ms": round(1000 * times[-1], 1)}
    engine.dispose()
    return {"pages": res}
