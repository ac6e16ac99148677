"""The delivery summary: filled from the rows of a database older than it (schema v1 → current), kept in step by
the bulk writers, latency percentiles from its histogram; an older file told to vacuum once."""
from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.store import delivery_log, open_db, outbox, summary, summary_rebuild, utcnow
from bot.store import subscribers as subs
from bot.store.schema import SCHEMA_VERSION, deliveries, meta
from bot.store.schema_summary import delivery_groups
from fixtures_delivery import add_item, add_subscribers

V1 = Path(__file__).parent / "schema" / "v1.sql"


def test_v1_database_is_migrated_and_its_rows_summarized(tmp_path):
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as raw:
        raw.executescript(V1.read_text())
        now = utcnow().replace(tzinfo=None)
        raw.execute("INSERT INTO sources (id, name, url, interval, all_flash, respect_ttl, alert_on_first_poll, origin, "
                    "paused, baselined, consecutive_failures) VALUES (1, 's', 'http://x', 60, 0, 0, 0, 'config', 0, 1, 0)")
        raw.execute("INSERT INTO items (id, source_id, key, title, headline, categories, content_hash, revision, is_flash, "
                    "baseline, alert_state, also_sources, norm_title, detected_at) "
                    "VALUES (7, 1, 'k', 't', 't', '[]', 'h', 0, 1, 0, 'queued', '[]', 't', ?)", (now,))
        for i, (state, sent) in enumerate([("sent", 3), ("sent", 40), ("failed", None), ("pending", None)], 1):
            raw.execute("INSERT INTO subscribers (id, email, status, mode, language, topics, origin, bounces, token_nonce) "
                        "VALUES (?, ?, 'active', 'both', 'fr', '[]', 'web', 0, 'n')", (i, f"s{i}@example.net"))
            raw.execute("INSERT INTO deliveries (item_id, channel, recipient, subscriber_id, revision, kind, state, attempts, "
                        "created_at, sent_at) VALUES (7, 'email', ?, ?, 0, 'alert', ?, 1, ?, ?)",
                        (str(i), i, state, now, now + timedelta(seconds=sent) if sent else None))
    engine = open_db(f"sqlite:///{path}")
    with engine.connect() as conn:
        assert conn.execute(select(meta.c.value).where(meta.c.key == "schema_version")).scalar() == str(SCHEMA_VERSION)
        assert summary_rebuild.verify(conn) == {}
        group = conn.execute(select(delivery_groups)).mappings().one()
    assert {r["state"]: r["count"] for r in delivery_log.counts(engine, item_id=7)} == {"sent": 2, "failed": 1, "pending": 1}
    assert group["latency"] == {"5": 1, "60": 1} and (group["last_at"] - group["first_at"]).total_seconds() == 37
    assert delivery_log.alert(engine, 7)["groups"][0]["percentiles"] == {50: 5.0, 90: 60.0, 99: 60.0}
    engine.dispose()


def test_bulk_writers_keep_the_summary_in_step(tmp_path, database):
    engine = open_db(database or f"sqlite:///{tmp_path / 's.db'}")
    item = add_item(engine)
    ids = add_subscribers(engine, [f"s{i}@example.net" for i in range(6)])
    with engine.begin() as conn:
        outbox.insert_rows(conn, [{"item_id": item, "channel": "email", "recipient": str(s), "subscriber_id": s,
                                   "created_at": utcnow(), "next_attempt_at": utcnow()} for s in ids])
    claimed = outbox.claim(engine, 2)
    assert len(claimed) == 2 and outbox.recover(engine) == 2  # sending → retry
    subs.unsubscribe(engine, ids[2])  # its pending row is cancelled
    assert outbox.cancel_item(engine, item) == 5
    with engine.connect() as conn:
        assert summary_rebuild.verify(conn) == {}
    assert {r["state"]: r["count"] for r in delivery_log.counts(engine)} == {"cancelled": 6}
    engine.dispose()


@pytest.mark.parametrize("hist,expected", [
    (None, {50: None, 90: None}),
    ({"1": 1}, {50: 1.0, 90: 1.0}),
    ({"1": 50, "5": 40, "60": 10}, {50: 1.0, 90: 5.0}),
    ({"2": 1, "inf": 1}, {50: 2.0, 90: float("inf")}),
])
def test_percentiles_from_the_histogram(hist, expected):
    assert {p: delivery_log.percentile(hist, p) for p in (50, 90)} == expected


def test_an_outcome_for_a_row_changed_meanwhile_recounts_its_group(tmp_path, database):
    engine = open_db(database or f"sqlite:///{tmp_path / 's.db'}")
    item = add_item(engine)
    ids = add_subscribers(engine, ["x@example.net", "y@example.net"])
    with engine.begin() as conn:
        outbox.insert_rows(conn, [{"item_id": item, "channel": "email", "recipient": str(s), "subscriber_id": s,
                                   "created_at": utcnow(), "next_attempt_at": utcnow()} for s in ids])
    claimed = outbox.claim(engine, 2)
    with engine.begin() as conn:  # another process recovers one of them meanwhile
        summary.move(conn, deliveries.c.id == claimed[0]["id"], ["sending"], state="retry")
    outbox.record(engine, [{"id": r["id"], "state": "sent", "item_id": item, "digest_id": None, "channel": "email",
                            "revision": 0, "sent": utcnow()} for r in claimed], 2)  # only the other one changes
    with engine.connect() as conn:
        assert summary_rebuild.verify(conn) == {}
    assert {r["state"]: r["count"] for r in delivery_log.counts(engine)} == {"retry": 1, "sent": 1}
    engine.dispose()


def test_an_older_file_is_told_to_vacuum_once_then_shrinks(tmp_path):
    from typer.testing import CliRunner

    from bot.cli import app
    from bot.store import maintenance

    path = tmp_path / "old.db"
    with sqlite3.connect(path) as raw:  # created before incremental auto_vacuum: mode 0 (none)
        raw.executescript(V1.read_text())
    engine = open_db(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE filler (x TEXT)")
        conn.exec_driver_sql("INSERT INTO filler SELECT hex(randomblob(500)) FROM (WITH RECURSIVE n(i) AS "
                             "(SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000) SELECT i FROM n)")
        conn.exec_driver_sql("DROP TABLE filler")
    told = maintenance.reclaim(engine)
    assert told["vacuum_needed"] and told["free_pages"] > 200
    (tmp_path / "config.toml").write_text(f'[bot]\ndatabase = "{path}"\n')
    out = CliRunner().invoke(app, ["--config", str(tmp_path / "config.toml"), "compact"], catch_exceptions=False).output
    assert "flashbot compact --vacuum" in out  # said again, with the way out
    out = CliRunner().invoke(app, ["--config", str(tmp_path / "config.toml"), "compact", "--vacuum"], catch_exceptions=False).output
    assert "vacuumed:" in out
    engine.dispose()  # a connection keeps the mode it opened the file with
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA auto_vacuum").scalar() == 2
        assert conn.exec_driver_sql("PRAGMA freelist_count").scalar() == 0
    assert maintenance.reclaim(engine) == {"freed_pages": 0, "free_pages": 0}
    engine.dispose()
