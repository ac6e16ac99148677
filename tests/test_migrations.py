"""Alembic migrations on SQLite and PostgreSQL: a new database, the databases made by every release
before Alembic (tests/data/subscribers-v<n>.db) upgraded in place, a newer schema refused, `db` commands."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config as AlembicConfig
from alembic.migration import MigrationContext
from sqlalchemy import Integer, MetaData, func, inspect, select, text

from bot.store import migrate, open_db, stats
from bot.store.db import make_engine
from bot.store.schema import SCHEMA_VERSION, deliveries, items, meta, metadata, subscribers

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


VERSIONS = sorted(migrate.LEGACY)  # every numbered schema of the releases before Alembic


def _legacy(version: int, database, tmp_path) -> tuple[str, str]:
    """tests/data/subscribers-v<version>.db as a database to upgrade: (URL, [bot] database value).

    On SQLite a copy of the file. On PostgreSQL (no release before Alembic ran there) its rows go into
    a database brought to the same revision by the revision files, stamped only by its meta row."""
    path = tmp_path / "subscribers.db"
    shutil.copy(DATA / f"subscribers-v{version}.db", path)
    if database is None:
        return f"sqlite:///{path}", "subscribers.db"
    engine = make_engine(database)
    try:
        with engine.connect() as conn:
            cfg = AlembicConfig()
            cfg.set_main_option("script_location", str(migrate.SCRIPTS))
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, migrate.LEGACY[version])
            conn.execute(text("DROP TABLE alembic_version"))
            conn.commit()
        _copy_rows(make_engine(f"sqlite:///{path}"), engine)
    finally:
        engine.dispose()
    return database, database


def _copy_rows(source, target) -> None:
    """Every row of every table of `source` into the same (empty) tables of `target`, ids kept."""
    old, new = MetaData(), MetaData()
    old.reflect(source)
    new.reflect(target)
    with source.connect() as src, target.begin() as dst:
        for table in old.sorted_tables:
            rows = [dict(r._mapping) for r in src.execute(table.select())]
            if rows:
                dst.execute(new.tables[table.name].insert(), rows)
            if "id" in table.c and isinstance(table.c.id.type, Integer):  # its sequence goes on after the copied ids
                dst.execute(text(f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                                 f"coalesce(max(id), 0) + 1, false) FROM {table.name}"))
    source.dispose()


def _counts(engine, names) -> dict[str, int]:
    with engine.connect() as conn:
        return {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar() for t in names}


@pytest.mark.parametrize("version", VERSIONS)
def test_database_of_a_release_before_alembic_upgrades_in_place(database, tmp_path, version):
    url, setting = _legacy(version, database, tmp_path)
    engine = make_engine(url)
    tables = set(inspect(engine).get_table_names())
    before = _counts(engine, sorted(tables - {"meta"}))
    with engine.connect() as conn:
        key = conn.execute(select(meta.c.value).where(meta.c.key == "secret_key")).scalar()
    engine.dispose()
    assert before["deliveries"] == 7 and before["subscribers"] == (3 if version == 1 else 4)  # make_legacy_db.py
    result = _cli(tmp_path, setting, "db", "current")
    rev = migrate.LEGACY[version]
    assert result.returncode == 3 and f"database: {rev}" in result.stdout, result.stdout + result.stderr
    engine = open_db(url)
    try:
        assert migrate.status(engine)["current"] == migrate.head()
        assert _counts(engine, before) == before  # nothing dropped
        with engine.connect() as conn:
            assert conn.execute(select(meta.c.value).where(meta.c.key == "secret_key")).scalar() == key  # links stay valid
            assert conn.execute(select(meta.c.value).where(meta.c.key == "schema_version")).scalar() == str(SCHEMA_VERSION)
            assert conn.execute(select(func.count()).select_from(deliveries).where(deliveries.c.claimed_by.is_(None))).scalar() == 7
            _check_steps(conn)
    finally:
        engine.dispose()
    again = _cli(tmp_path, setting, "db", "upgrade")
    assert again.returncode == 0 and "already at" in again.stdout


def _check_steps(conn) -> None:
    """What each revision added is there, filled as its step filled it, whatever the starting version."""
    d, s = deliveries, subscribers
    sent = conn.execute(select(d.c.sent_at, d.c.finished_at, d.c.bounced).where(d.c.state == "sent")).one()
    assert sent.finished_at == sent.sent_at and sent.bounced is False  # 0005 backfilled (or v5 wrote it)
    assert stats.totals(conn.engine, stats.DELIVERY) == {("email", "sent"): 1}
    assert stats.totals(conn.engine, stats.SUBSCRIBER)[("", "signup")] >= 3
    assert conn.execute(select(items.c.furniture).order_by(items.c.id)).scalars().all() in (
        [[], []], [["lire la suite"], []])  # 0003: '[]' for items stored before it
    pace = conn.execute(select(s.c.max_per_day, s.c.quiet_start, s.c.timezone).where(s.c.email == "bob@example.com")).one()
    assert tuple(pace) in ((None, None, None), (3, "22:00", "America/Montreal"))  # 0004: NULL = none
    assert inspect(conn).has_table("desk_log") and inspect(conn).has_table("signup_requests")
    assert "ix_subscribers_filters" in {i["name"] for i in inspect(conn).get_indexes("subscribers")}
    assert conn.execute(text("SELECT count(*) FROM instances")).scalar() == 0


@pytest.mark.parametrize("version", [VERSIONS[0], VERSIONS[-1]])
def test_db_upgrade_command_on_a_release_before_alembic(tmp_path, version):
    shutil.copy(DATA / f"subscribers-v{version}.db", tmp_path / "old.db")
    result = _cli(tmp_path, "old.db", "db", "upgrade")
    assert result.returncode == 0 and f"upgraded: {migrate.LEGACY[version]} → {migrate.head()}" in result.stdout, result.stderr
    current = _cli(tmp_path, "old.db", "db", "current")
    assert current.returncode == 0 and "up to date" in current.stdout


def test_processes_starting_together_upgrade_once(database, tmp_path):
    """Four `flashbot db upgrade` at the same moment on an old database: the lock lets one upgrade,
    the others find it done; the data is upgraded exactly once."""
    url, setting = _legacy(VERSIONS[0], database, tmp_path)
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[bot]\ndatabase = "{setting}"\n')
    procs = [subprocess.Popen([sys.executable, "-m", "bot", "--config", str(cfg), "db", "upgrade"], cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, outs
    said = sorted("upgraded" if "upgraded:" in out else "already" if "already at" in out else out for out, _ in outs)
    assert said == ["already"] * 3 + ["upgraded"]
    engine = make_engine(url)
    try:
        assert migrate.status(engine)["current"] == migrate.head()
        assert stats.totals(engine, stats.DELIVERY) == {("email", "sent"): 1}  # 0005's backfill ran once
    finally:
        engine.dispose()


def test_every_numbered_schema_has_its_file_and_revision():
    """LEGACY covers 1..n with no gap, each maps to its own revision in order, and head is after them."""
    assert VERSIONS == list(range(1, len(VERSIONS) + 1))
    assert [migrate.LEGACY[v] for v in VERSIONS] == [f"{v:04d}" for v in VERSIONS]
    assert all((DATA / f"subscribers-v{v}.db").exists() for v in VERSIONS)
    assert SCHEMA_VERSION == len(list(migrate.scripts().walk_revisions())) > VERSIONS[-1]


@pytest.mark.parametrize("how", ["alembic", "legacy"])
def test_a_newer_schema_is_refused_with_a_clear_message(database, tmp_path, how):
    url = _url(database, tmp_path)
    engine = open_db(url)
    with engine.begin() as conn:
        if how == "alembic":  # made by a later release
            conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
        else:  # a pre-Alembic build with more numbered steps than this release knows
            conn.execute(text("DROP TABLE alembic_version"))
            newer = str(max(migrate.LEGACY) + 1)
            conn.execute(meta.update().where(meta.c.key == "schema_version").values(value=newer))
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
