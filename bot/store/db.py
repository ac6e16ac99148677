"""Engine creation and schema migrations (create_all on a new database, numbered steps after)."""
from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timezone

from sqlalchemy import Connection, Engine, String, Text, create_engine, event, inspect, select
from sqlalchemy.exc import OperationalError

from bot.store import schema
from bot.store.schema import SCHEMA_VERSION, meta, metadata


def _v2(conn: Connection) -> None:
    """The delivery log's summary tables (filled from the rows there are), bounce outcome columns,
    and the indexes of the failures pages, held alerts, digest items and subscriber counts."""
    from bot.store import summary

    have = {c["name"] for c in inspect(conn).get_columns("deliveries")}
    # The same columns as the bounce processing's step: whichever step runs first adds them.
    for name, type_ in (("outcome", String(16)), ("outcome_at", schema.UTCDateTime()), ("diagnostic", Text())):
        if name not in have:
            conn.exec_driver_sql(f"ALTER TABLE deliveries ADD COLUMN {name} {type_.compile(dialect=conn.dialect)}")
    for table in (schema.delivery_groups, schema.delivery_counts, schema.delivery_folds, schema.subscriber_counts):
        table.create(conn, checkfirst=True)
    conn.exec_driver_sql("DROP INDEX IF EXISTS ix_subscribers_status")  # (status) is the new index's prefix
    for index in (*schema.items.indexes, *schema.deliveries.indexes, *schema.digest_items.indexes, *schema.subscribers.indexes):
        index.create(conn, checkfirst=True)
    summary.rebuild(conn)


# Numbered migrations: MIGRATIONS[n] upgrades a database from version n-1 to n. A new database is
# created from the current metadata and stamped with SCHEMA_VERSION (the Alembic "create_all then
# stamp head" pattern), so these steps only run on databases created by an older release.
MIGRATIONS: dict[int, Callable[[Connection], None]] = {2: _v2}


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(timezone.utc)


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    # Freed pages can be handed back to the file system (compaction does, bot/store/compaction.py).
    # Only a new file takes it here (before WAL writes its first page); an older file needs one
    # VACUUM (`flashbot compact --vacuum`), until which SQLite reuses the free pages instead.
    cur.execute("PRAGMA auto_vacuum=INCREMENTAL")
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
