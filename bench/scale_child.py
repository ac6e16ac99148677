"""Child scenarios of the Scale benchmark (bench/scale.py): databases of a million subscribers, compaction's
bytes per recipient; `sent_alert` also builds the ten million delivery rows of the pages benchmark (bench/pages.py)."""
from __future__ import annotations

import os
import time
from datetime import timedelta



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
    sent_alert(engine, _copy_item(engine, item), utcnow() + timedelta(days=8))
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


def sent_alert(engine, item_id: int, at, failed: int = 0) -> dict:
    """One alert to every subscriber, inserted as already sent (`failed` and as many cancelled per 100),
    with its summary; returns rows per state."""
    from sqlalchemy import String, case, cast, func, literal, select

    from bot.store import schema, schema_summary, summary
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
        conn.execute(schema_summary.delivery_groups.update().where(schema_summary.delivery_groups.c.id == gid).values(
            first_at=at + timedelta(seconds=1), last_at=at + timedelta(seconds=120),
            latency={"2": sent // 10, "30": sent // 2, "60": sent - sent // 10 - sent // 2}))
    return counts
