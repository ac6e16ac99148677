"""Engine creation and schema migrations (create_all on a new database, numbered steps after)."""
from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timezone

from sqlalchemy import Connection, Engine, create_engine, event, select, text
from sqlalchemy.exc import OperationalError

from bot.store.schema import SCHEMA_VERSION, bounce_mails, deliveries, meta, metadata, subscribers

# Numbered migrations: MIGRATIONS[n] upgrades a database from version n-1 to n. A new database is
# created from the current metadata and stamped with SCHEMA_VERSION (the Alembic "create_all then
# stamp head" pattern), so these steps only run on databases created by an older release.
MIGRATIONS: dict[int, Callable[[Connection], None]] = {}


def _add_columns(conn: Connection, table, names: list[str]) -> None:
    """ALTER TABLE … ADD COLUMN for columns of the current metadata (nullable, no default)."""
    for name in names:
        col = table.c[name]
        conn.execute(text(f"ALTER TABLE {table.name} ADD COLUMN {name} {col.type.compile(conn.dialect)}"))


def _v2_bounces(conn: Connection) -> None:
    """v2: delivery outcomes after hand-off, the subscriber's status reason, the bounce_mails table."""
    _add_columns(conn, deliveries, ["outcome", "outcome_at", "diagnostic"])
    _add_columns(conn, subscribers, ["status_reason"])
    bounce_mails.create(conn)


MIGRATIONS[2] = _v2_bounces


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(timezone.utc)


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL survives a process crash intact
    cur.execute("PRAGMA busy_timeout=30000")  # wait for another writer instead of failing
    cur.close()


def make_engine(url: str) -> Engine:
    """An engine for the URL, with SQLite tuned for WAL and concurrent processes."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        engine = create_engine(url, pool_pre_ping=True)
    return engine


def schema_version(conn: Connection) -> int | None:
    """The stamped version, or None for an empty database."""
    if not conn.dialect.has_table(conn, "meta"):
        return None
    row = conn.execute(select(meta.c.value).where(meta.c.key == "schema_version")).first()
    return int(row[0]) if row else None


def migrate(engine: Engine) -> int:
    """Bring the database to SCHEMA_VERSION; return the version it is at."""
    with engine.begin() as conn:
        current = schema_version(conn)
        if current is None:
            metadata.create_all(conn)
            conn.execute(meta.insert().values(key="schema_version", value=str(SCHEMA_VERSION)))
            return SCHEMA_VERSION
        if current > SCHEMA_VERSION:
            raise RuntimeError(f"database schema v{current} is newer than this Flashbot (v{SCHEMA_VERSION})")
        for version in range(current + 1, SCHEMA_VERSION + 1):
            MIGRATIONS[version](conn)
            conn.execute(meta.update().where(meta.c.key == "schema_version").values(value=str(version)))
        return SCHEMA_VERSION


def open_db(url: str) -> Engine:
    """Create the engine and migrate: the database is created on first use."""
    engine = make_engine(url)
    migrate(engine)
    return engine



def retry_locked(fn: Callable[[], object], attempts: int = 10, delay: float = 0.2):
    """Run fn, retrying while SQLite reports 'database is locked' (another writer holds it)."""
    for i in range(attempts):
        try:
            return fn()
        except OperationalError as exc:
            if "locked" not in str(exc).lower() or i == attempts - 1:
                raise
            time.sleep(delay * (i + 1))
