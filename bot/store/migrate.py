"""Schema migrations with Alembic, for SQLite and PostgreSQL: upgrade under a lock, stamp a database
made before Alembic, refuse one newer than this release. Revisions: bot/store/migrations/versions/."""
from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from functools import lru_cache
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, func, inspect, select

from bot.store import schema_cluster, schema_summary  # noqa: F401 - their tables join the metadata
from bot.store.db import make_engine
from bot.store.schema import meta, metadata

SCRIPTS = Path(__file__).resolve().parent / "migrations"
# meta.schema_version written by a release before Alembic (its numbered MIGRATIONS steps in
# bot/store/db.py) → the revision that is that schema: step n became revision 000n.
LEGACY = {1: "0001", 2: "0002", 3: "0003", 4: "0004", 5: "0005", 6: "0006", 7: "0007"}
MIGRATE_LOCK = 0x466C6173680001  # pg_advisory_lock key held while upgrading ("Flash" + 1)
log = logging.getLogger(__name__)
logging.getLogger("alembic").setLevel(logging.WARNING)  # its per-command INFO lines say nothing to operators


class SchemaError(RuntimeError):
    """The database cannot be used by this release (newer schema, unknown revision)."""


@lru_cache(maxsize=1)
def scripts() -> ScriptDirectory:
    """The revision scripts shipped in the package."""
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(SCRIPTS))
    return ScriptDirectory.from_config(cfg)


def head() -> str:
    """The newest revision this release knows."""
    return scripts().get_current_head()


def _number(revision: str) -> int:
    """How many revisions lead to `revision` (baseline = 1): written as meta.schema_version."""
    return sum(1 for _ in scripts().iterate_revisions(revision, "base"))


def current(conn: Connection) -> str | None:
    """The database's revision: Alembic's stamp, else the one a pre-Alembic release left, else None (empty)."""
    # The old version is read first: an upgrade running in another process stamps Alembic's revision
    # no later than it rewrites meta.schema_version, so a new number is never seen without its stamp.
    version = _legacy_version(conn)
    rev = MigrationContext.configure(conn).get_current_revision()
    if rev is not None or version is None:
        return rev
    if version not in LEGACY:
        raise SchemaError(f"database schema v{version} is newer than this Flashbot (schema v{_number(head())}); "
                          "run the Flashbot release that made it, or a newer one")
    return LEGACY[version]


def _legacy_version(conn: Connection) -> int | None:
    """meta.schema_version (written by every release, before Alembic and since), or None."""
    if not inspect(conn).has_table("meta"):
        return None
    row = conn.execute(select(meta.c.value).where(meta.c.key == "schema_version")).first()
    return None if row is None else int(row[0])


def _check_known(rev: str) -> None:
    try:
        scripts().get_revision(rev)
    except Exception:  # noqa: BLE001 - alembic raises several kinds for an unknown id
        raise SchemaError(f"database schema is at revision {rev}, newer than this Flashbot (which knows up to "
                          f"{head()}): upgrade Flashbot, or point [bot] database at another database") from None


def status(engine: Engine) -> dict:
    """{'current', 'head', 'pending': [revision ids]} (`flashbot db current`); SchemaError when too new."""
    with engine.connect() as conn:
        rev = current(conn)
    if rev is not None:
        _check_known(rev)
    todo = [s.revision for s in scripts().iterate_revisions(head(), rev or "base")]
    return {"current": rev, "head": head(), "pending": list(reversed([r for r in todo if r != rev]))}


@contextlib.contextmanager
def _upgrade_lock(engine: Engine, conn: Connection):
    """One upgrader at a time: a PostgreSQL advisory lock, or a flock next to the SQLite file."""
    if engine.dialect.name == "postgresql":
        conn.execute(select(func.pg_advisory_lock(MIGRATE_LOCK)))
        conn.commit()
        try:
            yield
        finally:
            conn.rollback()
            conn.execute(select(func.pg_advisory_unlock(MIGRATE_LOCK)))
            conn.commit()
        return
    path = engine.url.database
    if not path or path == ":memory:":
        yield
        return
    fd = os.open(f"{path}.migrate.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing drops the flock


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Bring the database to head; returns (revision before, revision after). Never drops data.

    A new database gets the current tables and is stamped at head; an older one runs the pending
    revisions; a newer one raises SchemaError. Cheap when already at head (one SELECT, no lock)."""
    with engine.connect() as conn:
        before = current(conn)
    if before is not None:
        _check_known(before)
        if before == head() and _stamped(engine):
            return before, before
    with engine.connect() as conn, _upgrade_lock(engine, conn):
        before = current(conn)  # again, under the lock: another process may have just upgraded
        if before is not None:
            _check_known(before)
        conn.commit()
        cfg = AlembicConfig()
        cfg.set_main_option("script_location", str(SCRIPTS))
        cfg.attributes["connection"] = conn
        if before is None:
            metadata.create_all(conn)  # a new database: today's tables at once, then stamped
            command.stamp(cfg, "head")
        else:
            if MigrationContext.configure(conn).get_current_revision() is None:
                command.stamp(cfg, before)  # made before Alembic: record what it is first
            command.upgrade(cfg, "head")
        _write_version(conn)
        conn.commit()
    log.info("database schema upgraded from %s to %s", before or "empty", head())
    return before, head()


def _stamped(engine: Engine) -> bool:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision() is not None


def _write_version(conn: Connection) -> None:
    """meta.schema_version = the revision count: an older release reading it refuses a newer schema."""
    value = str(_number(head()))
    if conn.execute(select(meta.c.key).where(meta.c.key == "schema_version")).first():
        conn.execute(meta.update().where(meta.c.key == "schema_version").values(value=value))
    else:
        conn.execute(meta.insert().values(key="schema_version", value=value))


def open_db(url: str) -> Engine:
    """Create the engine and upgrade: the database is created on first use."""
    engine = make_engine(url)
    try:
        upgrade(engine)
    except BaseException:
        engine.dispose()
        raise
    return engine

