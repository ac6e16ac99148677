"""Benchmark 4: personalized digests (each subscriber its own item list) queued and sent."""
from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from datetime import timedelta

from . import loops, message
from .common import FULL, RUNS, Profile, median, need
from .fanout import _config, _settled_count
from .harness import run_child

ITEMS = 40  # items published in the last day
# Every digest is rendered on its own (~10 ms each here), so quick mode sends 2,000 to stay
# well under 10 minutes in all; full mode sends the 100,000 of the issue.
QUICK_N = 2000
TOPICS = ["Politique", "Monde", "Économie", "Sport", "Culture"]


def size() -> int:
    """100,000 digests with BENCH_FULL=1, QUICK_N in quick mode."""
    return 100000 if FULL else QUICK_N


def prepare(p: dict) -> dict:
    """DB with ITEMS items over five categories and N digest subscribers with varied topics."""
    from bot.store import open_db, schema, utcnow

    engine = open_db(f"sqlite:///{p['db']}")
    now = utcnow()
    with engine.begin() as conn:
        sid = conn.execute(schema.sources.insert().values(
            name="bench", url="http://127.0.0.1/fil.xml", origin="config", baselined=True,
            created_at=now)).inserted_primary_key[0]
        body = "".join(f"<p>{t}</p>" for t in message.PARAGRAPHS[:2])
        conn.execute(schema.items.insert(), [{
            "source_id": sid, "key": f"item-{k}", "title": f"Article {k} : {TOPICS[k % 5]} du jour",
            "headline": f"Article {k} : {TOPICS[k % 5]} du jour", "link": f"https://www.example-actu.fr/a/{k}.html",
            "summary_html": body, "content_html": body, "categories": [TOPICS[k % 5]], "language": "fr",
            "published_at": now - timedelta(minutes=20 * k + 5), "content_hash": f"h{k}",
            "is_flash": k % 8 == 0, "alert_state": "queued" if k % 8 == 0 else "none",
            "norm_title": f"article {k}", "detected_at": now - timedelta(minutes=20 * k + 4)}
            for k in range(ITEMS)])
    for start in range(0, p["n"], 5000):
        rows = [{"email": f"lecteur{i:07d}@example.org", "status": "active",
                 "mode": "digest" if i % 2 else "both", "language": "en" if i % 10 == 9 else "fr",
                 # everything, one topic, or two topics: each digest has its own list
                 "topics": [] if i % 3 == 0 else TOPICS[i % 5: i % 5 + 1 + i % 2],
                 "origin": "import", "token_nonce": f"{i:016x}", "created_at": now, "confirmed_at": now}
                for i in range(start, min(p["n"], start + 5000))]
        with engine.begin() as conn:
            conn.execute(schema.subscribers.insert(), rows)
    engine.dispose()
    return {"n": p["n"]}


def run(p: dict) -> dict:
    """Queue one digest run (bot.digest.send_now) and send it all (DeliveryEngine.run_due)."""
    digest = need("bot.digest", "send_now")
    deliver = need("bot.deliver", "DeliveryEngine", "build_channels")
    render = need("bot.render", "Renderer")
    from sqlalchemy import func, select
    from bot.store import open_db, schema

    shutil.copyfile(p["template"], p["db"])
    cfg = _config(p["db"], p["port"], p["conns"])
    engine = open_db(cfg.database_url)

    async def main() -> dict:
        channels = deliver.build_channels(cfg)
        eng = deliver.DeliveryEngine(engine, cfg, channels, render.Renderer(cfg))
        t0 = time.perf_counter()
        queued = await asyncio.to_thread(digest.send_now, engine, cfg)
        tq = time.perf_counter()
        with Profile(f"digest-{p['n']}"):
            await eng.run_due()
        t1 = time.perf_counter()
        for ch in channels.values():
            await ch.close()
        return {"queued": queued.get("queued"), "queue_s": tq - t0, "wall": t1 - t0}

    r = loops.run(main, "uvloop")
    d = schema.deliveries
    with engine.connect() as conn:
        sent = conn.execute(select(func.count()).where(d.c.kind == "digest", d.c.state == "sent")).scalar()
        per = conn.execute(select(func.count()).select_from(schema.digest_items)).scalar()
    engine.dispose()
    return {"n": p["n"], "queued": r["queued"], "sent": sent, "queue_s": round(r["queue_s"], 3),
            "wall_s": round(r["wall"], 3), "msg_per_s": round(sent / r["wall"], 1),
            "items_per_digest": round(per / max(sent, 1), 1)}


def bench(log=print) -> dict:
    """N personalized digests through the real queue + delivery path to smtp-sink."""
    need("bot.digest", "send_now")
    need("bot.deliver", "DeliveryEngine")
    from .sink import SmtpSink

    from .fanout import CONNS

    n, runs = size(), []
    with SmtpSink(log=log) as sink, tempfile.TemporaryDirectory(prefix="flashbot-digest-") as tmp:
        run_child("digest_prepare", {"db": f"{tmp}/template.db", "n": n})
        for rep in range(RUNS):
            before = sink.count()
            r = run_child("digest_run", {"n": n, "port": sink.port, "conns": CONNS,
                                         "template": f"{tmp}/template.db", "db": f"{tmp}/run.db"})
            r["sink_received"] = _settled_count(sink, before)
            runs.append(r)
            log(f"  run {rep + 1}: {r['sent']:,} digests in {r['wall_s']} s = {r['msg_per_s']:,.0f} "
                f"msg/s (queueing {r['queue_s']} s), {r['items_per_digest']} items each, RSS "
                f"{r['rss_mb']} MB, sink got {r['sink_received']:,}")
    out = {k: median([r[k] for r in runs]) for k in
           ("n", "sent", "msg_per_s", "wall_s", "queue_s", "rss_mb", "items_per_digest", "sink_received")}
    out["runs"] = runs
    out["method"] = (
        f"{n:,} active subscribers (digest or both modes, 10 % English, topics: none / one / two of "
        f"five) and {ITEMS} items of the last day. Measured: `bot.digest.send_now` (selects each "
        "subscriber's items and queues one digest row each) then `DeliveryEngine.run_due()` "
        f"rendering every digest with `renderer.email_digest` and sending over {CONNS} SMTP "
        "connections to smtp-sink. msg/s = digests sent ÷ (queue + send) wall time.")
    return out
