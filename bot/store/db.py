"""Engine creation for SQLite (the embedded default) and PostgreSQL (psycopg 3); shared helpers.

Schema changes are no longer numbered steps here: each is one Alembic revision file in
bot/store/migrations/versions/ (bot/store/migrate.py runs them; docs/development.md says how)."""
from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timezone

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

PG_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg")
# Connections to PostgreSQL ask the server to notice a vanished client (a machine that died without
# closing its sockets) within about 20 s: its advisory locks, including the scheduler's, are freed.
PG_KEEPALIVE = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5, "keepalives_count": 2}
PG_SERVER_KEEPALIVE = "-c tcp_keepalives_idle=10 -c tcp_keepalives_interval=5 -c tcp_keepalives_count=2"


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(timezone.utc)


def normalize_url(url: str) -> str:
    """postgresql://, postgres:// and postgresql+psycopg:// all mean psycopg 3; other URLs unchanged."""
    scheme, sep, rest = url.partition("://")
    if sep and scheme.lower() in PG_SCHEMES:
        return f"postgresql+psycopg://{rest}"
    return url


def is_postgres(engine_or_url) -> bool:
    """Whether an engine (or URL) is PostgreSQL."""
    if isinstance(engine_or_url, str):
        return normalize_url(engine_or_url).startswith("postgresql+psycopg://")
    return engine_or_url.dialect.name == "postgresql"


def display_url(url: str) -> str:
    """The URL with its password masked, for messages and logs."""
    try:
        return make_url(normalize_url(url)).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a malformed URL is shown without anything after the scheme
        return url.partition("://")[0] + "://…" if "://" in url else url


def libpq_url(engine: Engine) -> str:
    """A plain libpq connection string for the engine (for psycopg connections outside the pool)."""
    return engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


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


def _scrub(value):
    return value.replace("\x00", "\ufffd") if isinstance(value, str) and "\x00" in value else value


def _no_nul(conn, cursor, statement, parameters, context, executemany):
    """PostgreSQL text cannot hold NUL: a feed, an SMTP reply or a form carrying one gets U+FFFD
    instead of an error that would stop its whole transaction (SQLite stores it as is)."""
    if isinstance(parameters, dict):
        if any(isinstance(v, str) and "\x00" in v for v in parameters.values()):
            parameters = {k: _scrub(v) for k, v in parameters.items()}
    elif isinstance(parameters, (list, tuple)) and parameters and isinstance(parameters[0], dict):
        if any(isinstance(v, str) and "\x00" in v for p in parameters for v in p.values()):
            parameters = [{k: _scrub(v) for k, v in p.items()} for p in parameters]
    return statement, parameters


def make_engine(url: str) -> Engine:
    """An engine for the URL: SQLite tuned for WAL and concurrent processes, or PostgreSQL via psycopg 3."""
    url = normalize_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    # pre_ping: a connection broken by a server restart is replaced before use, not handed out.
    engine = create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10, pool_recycle=3600,
                           connect_args={**PG_KEEPALIVE, "options": PG_SERVER_KEEPALIVE})
    event.listen(engine, "before_cursor_execute", _no_nul, retval=True)
    return engine


def serialize(conn: Connection, name: str) -> None:
    """One transaction at a time, across processes and machines, for `name` (until this one ends).

    For check-then-write transactions (is this item known? then store it): PostgreSQL takes a
    transaction advisory lock on the name; SQLite takes its single write lock now (an UPDATE that
    changes nothing), so the reads that follow already see every other process's commits."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:name))"), {"name": name})
    else:
        conn.execute(text("UPDATE meta SET value = value WHERE 1 = 0"))


def insert_count(conn: Connection, stmt, rows: list[dict], key) -> int:
    """Run an INSERT (… ON CONFLICT DO NOTHING) for many rows; how many it inserted. psycopg's
    executemany gives no total, so on PostgreSQL the inserted rows' `key` column is returned and counted."""
    if conn.dialect.name == "postgresql":
        return len(conn.execute(stmt.returning(key), rows).all())
    return conn.execute(stmt, rows).rowcount or 0


def retry_locked(fn: Callable[[], object], attempts: int = 10, delay: float = 0.2):
    """Run fn, retrying while SQLite reports 'database is locked' (another writer holds it)."""
    for i in range(attempts):
        try:
            return fn()
        except OperationalError as exc:
            if "locked" not in str(exc).lower() or i == attempts - 1:
                raise
            time.sleep(delay * (i + 1))
