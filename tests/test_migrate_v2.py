"""Schema step 4 (issue #14) upgrades an existing database in place: a step-3 database (created by the
previous release: no image, targets, limit columns, no desk_log) keeps its rows and gains the new ones."""
from __future__ import annotations

import sqlite3

from sqlalchemy import inspect

from bot.store import open_db
from bot.store.db import schema_version
from bot.store.schema import SCHEMA_VERSION

NEW = {"items": ["image_url", "image_alt", "targets"],
       "subscribers": ["max_per_day", "quiet_start", "quiet_end", "timezone"]}


def _make_v3(path) -> None:
    open_db(f"sqlite:///{path}").dispose()
    with sqlite3.connect(path) as db:
        for table, columns in NEW.items():
            for column in columns:
                db.execute(f'ALTER TABLE {table} DROP COLUMN "{column}"')
        db.execute("DROP TABLE desk_log")
        db.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
        db.execute("INSERT INTO subscribers (email, status, mode, language, topics, origin, bounces, token_nonce) "
                   "VALUES ('old@example.org', 'active', 'both', 'fr', '[]', 'web', 0, 'n')")


def test_a_step_3_database_is_upgraded_in_place(tmp_path):
    path = tmp_path / "old.db"
    _make_v3(path)
    engine = open_db(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            assert schema_version(conn) == SCHEMA_VERSION  # and on through any later step
            have = inspect(conn)
            for table, columns in NEW.items():
                assert set(columns) <= {c["name"] for c in have.get_columns(table)}
            assert have.has_table("desk_log")
            assert conn.exec_driver_sql("SELECT email, max_per_day, quiet_start FROM subscribers").all() == [
                ("old@example.org", None, None)]
    finally:
        engine.dispose()
    open_db(f"sqlite:///{path}").dispose()  # a second start finds nothing to do
