"""An existing schema-v1 database (written by Flashbot's v1 code, tests/migrations/v1-demo.db) upgrades
in place to the current schema: every row kept, the new columns empty, the result the same as a
database created new, and the bounce processor works on the deliveries it already had."""
from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from bot.config import parse_config
from bot.store import open_db
from bot.store.schema import SCHEMA_VERSION

V1 = Path(__file__).parent / "migrations" / "v1-demo.db"
V1_TABLES = ["channel_state", "deliveries", "digest_items", "digests", "items", "meta", "rate_events", "sources", "subscribers"]
# The columns each later step adds to the v1 tables (2: web hardening, 3: furniture, 4: desk, 5: operator
# view, 6: bounces); the bounce columns start empty.
ADDED = {"sources": {"websub_callback", "poll_count"}, "items": {"furniture", "image_url", "image_alt", "targets"},
         "subscribers": {"max_per_day", "quiet_start", "quiet_end", "timezone", "status_reason"},
         "deliveries": {"finished_at", "bounced", "outcome", "outcome_at", "diagnostic"}}
EMPTY = {"deliveries": {"outcome", "outcome_at", "diagnostic"}, "subscribers": {"status_reason"}}
# Step 2 starts WebSub subscriptions over at a secret callback URL: the one change to existing values.
RESET = {"sources": {"websub_state", "websub_lease_until"}}


def _columns(db: sqlite3.Connection, table: str) -> dict[str, tuple]:
    """{name: (type, not null, default, primary key)} of a table."""
    return {r[1]: (r[2], r[3], r[4], r[5]) for r in db.execute(f"PRAGMA table_info({table})")}


def _rows(db: sqlite3.Connection, table: str, columns: list[str]) -> list[tuple]:
    return db.execute(f"SELECT {', '.join(columns)} FROM {table} ORDER BY rowid").fetchall()


def _schema(path: Path) -> dict:
    """Tables with their columns, and index names with their columns: what a migration must reproduce."""
    with sqlite3.connect(path) as db:
        tables = [t for (t,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        indexes = {name: [r[2] for r in db.execute(f"PRAGMA index_info({name})")]
                   for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_%'")}
        return {"tables": {t: _columns(db, t) for t in tables}, "indexes": indexes}


@pytest.fixture
def v1_copy(tmp_path) -> Path:
    path = tmp_path / "flashbot.db"
    shutil.copy(V1, path)
    return path


def test_the_fixture_is_a_v1_database_with_rows_in_every_table():
    with sqlite3.connect(V1) as db:
        assert db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == ("1",)
        tables = sorted(t for (t,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'"))
        assert tables == V1_TABLES
        assert all(db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] > 0 for t in tables)
        assert "outcome" not in _columns(db, "deliveries")


def test_opening_upgrades_in_place_and_keeps_every_row(v1_copy, tmp_path):
    with sqlite3.connect(v1_copy) as db:
        before = {t: (list(_columns(db, t)), _rows(db, t, [c for c in _columns(db, t) if c not in RESET.get(t, ())]))
                  for t in V1_TABLES}
    engine = open_db(f"sqlite:///{v1_copy}")
    engine.dispose()
    with sqlite3.connect(v1_copy) as db:
        assert db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (str(SCHEMA_VERSION),)
        for table, (columns, rows) in before.items():
            now = _columns(db, table)
            assert set(now) - set(columns) == ADDED.get(table, set()), table
            kept = _rows(db, table, [c for c in columns if c not in RESET.get(table, ())])
            if table == "meta":  # the version row is the one row a migration changes
                rows = [r for r in rows if r[0] != "schema_version"]
                kept = [r for r in kept if r[0] != "schema_version"]
            assert kept == rows, table
            for column in EMPTY.get(table, ()):
                assert db.execute(f"SELECT count(*) FROM {table} WHERE {column} IS NOT NULL").fetchone() == (0,)
        assert db.execute("SELECT count(*) FROM bounce_mails").fetchone() == (0,)
        assert db.execute("PRAGMA foreign_key_check").fetchall() == []
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    # Upgraded = created new: same tables, columns (types, NOT NULL, defaults) and indexes.
    fresh = tmp_path / "fresh.db"
    open_db(f"sqlite:///{fresh}").dispose()
    upgraded = _schema(v1_copy)
    # Step 3 gives items.furniture a DEFAULT '[]' so the existing rows get a value (SQLite cannot add a NOT NULL
    # column without one); a new database declares none. The one expected difference.
    kind, notnull, default, pk = upgraded["tables"]["items"]["furniture"]
    assert default == "'[]'"
    upgraded["tables"]["items"]["furniture"] = (kind, notnull, None, pk)
    assert upgraded == _schema(fresh)
    # Opening again changes nothing.
    snapshot = _schema(v1_copy)
    open_db(f"sqlite:///{v1_copy}").dispose()
    assert _schema(v1_copy) == snapshot


def test_a_bounce_for_a_delivery_sent_before_the_upgrade_is_applied(v1_copy, tmp_path):
    from bot.bounces.process import Processor
    from bot.store import bounces as inbox
    from fixtures_bounces import CORPUS, DOMAIN

    cfg = parse_config({"bot": {"database": str(v1_copy)}, "delivery": {"bounce_limit": 1},
                        "bounces": {"domain": DOMAIN}}, tmp_path, env={})
    engine = open_db(cfg.database_url)
    processor = Processor(cfg, engine)  # the key kept in the v1 database's meta table
    with sqlite3.connect(v1_copy) as db:
        delivery, email = db.execute("SELECT d.id, s.email FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id "
                                     "WHERE d.channel = 'email' AND d.state = 'sent' ORDER BY d.id LIMIT 1").fetchone()
    dsn = (CORPUS / "lhost-postfix-04.eml").read_bytes().replace(b"kijitora@example.co.jp", email.encode())
    inbox.store(engine, [{"source": "smtp", "raw": dsn, "envelope_to": processor.verp.address(processor.verp.bounce_local(delivery))}])
    assert processor.run_pending() == {"processed": 1}
    engine.dispose()
    with sqlite3.connect(v1_copy) as db:
        assert db.execute("SELECT state, outcome FROM deliveries WHERE id = ?", (delivery,)).fetchone() == ("sent", "bounced")
        status, reason = db.execute("SELECT status, status_reason FROM subscribers WHERE email = ?", (email,)).fetchone()
    assert status == "suppressed" and "5.1.1" in reason
