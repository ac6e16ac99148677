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
# The worst case, every subscriber's list different, renders every digest on its own; full mode
# caps it at this many digests (it is about the per-digest cost, not the scale).
UNIQUE_MAX = 10000
# Items each worst-case subscriber already got in an earlier digest (a different set each): 19 of the 40
# leaves 21 per digest, as many as the common case (20.8), so the two compare per digest, not per size.
HISTORY = 19
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
        if p.get("unique"):  # everything, in French: only the history below sets the lists apart
            for r in rows:
                r.update(topics=[], language="fr")
        with engine.begin() as conn:
            conn.execute(schema.subscribers.insert(), rows)
    if p.get("unique"):
        _history(engine, p["n"], now)
    engine.dispose()
    return {"n": p["n"]}


def _history(engine, n: int, now) -> None:
    """An earlier digest run in which subscriber i got its own pseudo-random HISTORY items, so the
    next digest of every subscriber holds a different list (the items they have not had yet)."""
    import random

    from sqlalchemy import select
    from bot.store import schema

    with engine.begin() as conn:
        item_ids = [r[0] for r in conn.execute(select(schema.items.c.id))]
        sub_ids = [r[0] for r in conn.execute(select(schema.subscribers.c.id).order_by(schema.subscribers.c.id))]
        run = conn.execute(schema.digests.insert().values(run_key="history", created_at=now)).inserted_primary_key[0]
        for start in range(0, n, 5000):
            batch = sub_ids[start:start + 5000]
            conn.execute(schema.deliveries.insert(), [{
                "digest_id": run, "channel": "email", "recipient": str(sid), "subscriber_id": sid, "revision": 0,
                "kind": "digest", "state": "sent", "attempts": 1, "created_at": now, "next_attempt_at": now}
                for sid in batch])
            d = schema.deliveries.c
            ids = dict(conn.execute(select(d.subscriber_id, d.id).where(d.digest_id == run, d.subscriber_id.in_(batch))).all())
            conn.execute(schema.digest_items.insert(), [
                {"subscriber_id": sid, "item_id": i, "delivery_id": ids[sid]}
                for sid in batch for i in random.Random(sid).sample(item_ids, HISTORY)])


def run(p: dict) -> dict:
    """Queue one digest run (bot.digest.send_now) and send it all (DeliveryEngine.run_due)."""
    digest = need("bot.digest", "send_now")
    deliver = need("bot.delivery.engine", "DeliveryEngine")
    render = need("bot.render.renderer", "Renderer")
    from sqlalchemy import func, select
    from bot.store import open_db, schema

    shutil.copyfile(p["template"], p["db"])
    cfg = _config(p["db"], p["port"], p["conns"])
    engine = open_db(cfg.database_url)

    async def main() -> dict:
        channels = need("bot.delivery.channels", "build_channels").build_channels(cfg)
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
    di = schema.digest_items.c
    new = d.c.id.in_(select(d.c.id).where(d.c.kind == "digest", d.c.state == "sent", d.c.digest_id == select(func.max(d.c.digest_id)).scalar_subquery()))
    with engine.connect() as conn:
        sent = conn.execute(select(func.count()).where(new)).scalar()
        per = conn.execute(select(func.count()).select_from(schema.digest_items).where(di.delivery_id.in_(select(d.c.id).where(new)))).scalar()
        # how many different item lists (hence separate renders) those digests held
        lists = select(func.group_concat(di.item_id, ",").label("l")).where(di.delivery_id.in_(select(d.c.id).where(new))).group_by(di.delivery_id).subquery()
        distinct = conn.execute(select(func.count(func.distinct(lists.c.l)))).scalar()
    engine.dispose()
    return {"n": p["n"], "queued": r["queued"], "sent": sent, "queue_s": round(r["queue_s"], 3),
            "wall_s": round(r["wall"], 3), "msg_per_s": round(sent / r["wall"], 1),
            "items_per_digest": round(per / max(sent, 1), 1), "distinct_lists": distinct}


def bench(log=print) -> dict:
    """N personalized digests through the real queue + delivery path to smtp-sink, then the worst
    case (every list different) on min(N, UNIQUE_MAX) subscribers, runs interleaved."""
    need("bot.digest", "send_now")
    need("bot.delivery.engine", "DeliveryEngine")
    from .sink import SmtpSink

    from .fanout import CONNS

    n = size()
    variants = {"topics": n, "unique": min(n, UNIQUE_MAX)}
    runs: dict[str, list] = {v: [] for v in variants}
    with SmtpSink(log=log) as sink, tempfile.TemporaryDirectory(prefix="flashbot-digest-") as tmp:
        for v, count in variants.items():
            run_child("digest_prepare", {"db": f"{tmp}/{v}.db", "n": count, "unique": v == "unique"})
        for rep in range(RUNS):
            for v, count in variants.items():
                before = sink.count()
                r = run_child("digest_run", {"n": count, "port": sink.port, "conns": CONNS,
                                             "template": f"{tmp}/{v}.db", "db": f"{tmp}/run.db"})
                r["sink_received"] = _settled_count(sink, before)
                runs[v].append(r)
                log(f"  {v} run {rep + 1}: {r['sent']:,} digests in {r['wall_s']} s = {r['msg_per_s']:,.0f} "
                    f"msg/s (queueing {r['queue_s']} s), {r['items_per_digest']} items each, "
                    f"{r['distinct_lists']:,} different lists, RSS {r['rss_mb']} MB, sink got {r['sink_received']:,}")
    keys = ("n", "sent", "msg_per_s", "wall_s", "queue_s", "rss_mb", "items_per_digest", "sink_received", "distinct_lists")
    out = {k: median([r[k] for r in runs["topics"]]) for k in keys}
    out["runs"] = runs["topics"]
    worst = {k: median([r[k] for r in runs["unique"]]) for k in keys}
    worst["runs"] = runs["unique"]
    out["unique"] = worst
    out["method"] = (
        f"{n:,} active subscribers (digest or both modes, 10 % English, topics: none / one / two of "
        f"five) and {ITEMS} items of the last day. Measured: `bot.digest.send_now` (selects each "
        "subscriber's items and queues one digest row each) then `DeliveryEngine.run_due()` "
        f"rendering the digests with `renderer.email_digest` and sending over {CONNS} SMTP "
        "connections to smtp-sink. msg/s = digests sent ÷ (queue + send) wall time. Every digest is "
        "personalized (its own address, tokens, Message-ID), but subscribers with the same item list "
        f"and language share one rendering: here {fmt_int(out['distinct_lists'])} different lists. "
        f"**Worst case, every list different** (each of {worst['n']:,} subscribers already got a "
        f"different {HISTORY} of the {ITEMS} items in an earlier digest, so "
        f"{fmt_int(worst['distinct_lists'])} different lists, each rendered on its own): "
        f"{fmt_int(worst['msg_per_s'])} msg/s ({worst['items_per_digest']} items each, "
        f"{worst['wall_s']:.1f} s wall, peak RSS {worst['rss_mb']} MB, sink got "
        f"{fmt_int(worst['sink_received'])}), median of {RUNS} runs.")
    return out


def fmt_int(v) -> str:
    """1234.5 → '1,234' ('–' for None)."""
    return "–" if v is None else f"{int(round(v)):,}"
