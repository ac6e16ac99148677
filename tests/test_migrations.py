"""Alembic migrations on SQLite and PostgreSQL: a new database, a database made by the last release
before Alembic (tests/data/subscribers-v1.db) upgraded in place, a newer schema refused, `db` commands."""
from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config as AlembicConfig
from alembic.migration import MigrationContext
from sqlalchemy import func, select, text

from bot.store import migrate, open_db
from bot.store.db import make_engine
from bot.store.schema import SCHEMA_VERSION, deliveries, meta, metadata, subscribers

DATA = Path(__file__).parent / "data"


def _url(database, tmp_path) -> str:
    return database or f"sqlite:///{tmp_path / 'm.db'}"


def _cli(tmp_path, database, *args):
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[bot]\ndatabase = "{database or "m.db"}"\n')
    return subprocess.run([sys.executable, "-m", "bot", "--config", str(cfg), *args],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)


def test_new_database_is_created_at_head_and_matches_the_tables(database, tmp_path):
    engine = open_db(_url(database, tmp_path))
    try:
        st = migrate.status(engine)
        assert st == {"current": migrate.head(), "head": migrate.head(), "pending": []}
        with engine.connect() as conn:
            assert conn.execute(select(meta.c.value).where(meta.c.key == "schema_version")).scalar() == str(SCHEMA_VERSION)
    finally:
        engine.dispose()


def test_revisions_from_empty_build_exactly_the_declared_schema(database, tmp_path):
    """Running every revision (not create_all) gives the tables schema.py declares: nothing missing, nothing extra."""
    engine = make_engine(_url(database, tmp_path))
    try:
        with engine.connect() as conn:
            cfg = AlembicConfig()
            cfg.set_main_option("script_location", str(migrate.SCRIPTS))
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
            conn.commit()
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
        # Types are compared loosely by Alembic; what matters is no table, column or index differs.
        assert [d for d in diff if d[0] not in ("modify_type",)] == []
    finally:
        engine.dispose()


def test_database_of_the_previous_release_upgrades_in_place(tmp_path):
    db = tmp_path / "subscribers.db"
    shutil.copy(DATA / "subscribers-v1.db", db)
    with sqlite3.connect(db) as old:
        before = {t: old.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                  for t in ("sources", "items", "subscribers", "deliveries", "digests", "digest_items", "meta")}
        key = old.execute("SELECT value FROM meta WHERE key = 'secret_key'").fetchone()[0]
    assert before["deliveries"] == 7 and before["subscribers"] == 3  # what make_v1_db.py queued
    result = _cli(tmp_path, "subscribers.db", "db", "current")
    assert result.returncode == 3 and "database: 0001" in result.stdout and "pending: 0002" in result.stdout
    engine = open_db(f"sqlite:///{db}")
    try:
        assert migrate.status(engine)["current"] == migrate.head()
        with engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(deliveries)).scalar() == 7
            assert conn.execute(select(func.count()).select_from(deliveries).where(deliveries.c.claimed_by.is_(None))).scalar() == 7
            assert conn.execute(select(meta.c.value).where(meta.c.key == "secret_key")).scalar() == key  # links stay valid
            assert conn.execute(select(func.count()).select_from(subscribers)).scalar() == 3
            assert conn.execute(text("SELECT count(*) FROM instances")).scalar() == 0
    finally:
        engine.dispose()
    with sqlite3.connect(db) as new:
        after = {t: new.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in before if t != "meta"}
    assert after == {t: n for t, n in before.items() if t != "meta"}  # nothing dropped
    again = _cli(tmp_path, "subscribers.db", "db", "upgrade")
    assert again.returncode == 0 and "already at" in again.stdout


def test_db_upgrade_command_on_the_previous_release(tmp_path):
    shutil.copy(DATA / "subscribers-v1.db", tmp_path / "old.db")
    result = _cli(tmp_path, "old.db", "db", "upgrade")
    assert result.returncode == 0 and f"upgraded: 0001 → {migrate.head()}" in result.stdout, result.stderr
    current = _cli(tmp_path, "old.db", "db", "current")
    assert current.returncode == 0 and "up to date" in current.stdout


@pytest.mark.parametrize("how", ["alembic", "legacy"])
def test_a_newer_schema_is_refused_with_a_clear_message(database, tmp_path, how):
    url = _url(database, tmp_path)
    engine = open_db(url)
    with engine.begin() as conn:
        if how == "alembic":  # made by a later release
            conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
        else:  # a pre-Alembic build with more numbered steps than this release knows
            conn.execute(text("DROP TABLE alembic_version"))
            conn.execute(meta.update().where(meta.c.key == "schema_version").values(value="7"))
    engine.dispose()
    with pytest.raises(migrate.SchemaError, match="newer than this Flashbot"):
        open_db(url)
    run = _cli(tmp_path, database, "run", "--once")
    assert run.returncode == 1 and "newer than this Flashbot" in run.stderr, run.stderr
    assert "Traceback" not in run.stderr
    current = _cli(tmp_path, database, "db", "current")
    assert current.returncode == 1 and "newer than this Flashbot" in current.stderr


def test_an_unreachable_database_is_one_line_without_the_password(tmp_path):
    result = _cli(tmp_path, "postgresql://flash:s3cret-pw@127.0.0.1:1/nope", "db", "current")
    assert result.returncode == 1 and "s3cret-pw" not in result.stderr + result.stdout
    assert "postgresql+psycopg://flash:***@127.0.0.1:1/nope" in result.stderr and "Traceback" not in result.stderr
