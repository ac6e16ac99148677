"""Engine creation and schema migrations (create_all on a new database, numbered steps after)."""
from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timezone

from sqlalchemy import Column, Connection, Engine, Table, create_engine, event, inspect, select, text, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.schema import CreateColumn

from bot.store import schema, schema_summary  # the summary's tables join the metadata here
from bot.store.schema import (SCHEMA_VERSION, admin_sessions, desk_log, items, meta, metadata, signup_requests,
                              subscribers)


def _v2_web_hardening(conn: Connection) -> None:
    """Secret WebSub callback URLs, sign-up requests, server-side admin sessions."""
    conn.execute(text("ALTER TABLE sources ADD COLUMN websub_callback VARCHAR(64)"))
    # Subscriptions made at the old guessable callback URL (and states a forged request could set)
    # start over: the next renewal tick subscribes again at a secret URL.
    conn.execute(text("UPDATE sources SET websub_state = NULL, websub_lease_until = NULL WHERE hub_url IS NOT NULL"))
    signup_requests.create(conn, checkfirst=True)
    admin_sessions.create(conn, checkfirst=True)


def _add_column(conn: Connection, table: Table, column: Column) -> None:
    """ALTER TABLE … ADD COLUMN with the column as the current metadata declares it (default and NOT NULL
    included), unless the database has it already."""
    if column.name not in {c["name"] for c in inspect(conn).get_columns(table.name)}:
        conn.execute(text(f"ALTER TABLE {table.name} ADD COLUMN {CreateColumn(column).compile(dialect=conn.dialect)}"))


def _v3_items_furniture(conn: Connection) -> None:
    """Blocks a feed repeats across its items (bot.render.html.furniture); older items have none."""
    conn.execute(text("ALTER TABLE items ADD COLUMN furniture JSON NOT NULL DEFAULT '[]'"))


def add_columns(conn: Connection, table, names: list[str]) -> None:
    """ALTER TABLE … ADD COLUMN for columns of `table` (as schema.py declares them) the database lacks."""
    have = {c["name"] for c in inspect(conn).get_columns(table.name)}
    for name in names:
        if name not in have:
            ctype = table.c[name].type.compile(dialect=conn.dialect)
            conn.execute(text(f'ALTER TABLE {table.name} ADD COLUMN "{name}" {ctype}'))


def _v4_desk_images_limits(conn: Connection) -> None:
    """Issue #14: lead images, hand-written alerts (targets, desk_log), subscribers' caps and quiet hours."""
    add_columns(conn, items, ["image_url", "image_alt", "targets"])
    add_columns(conn, subscribers, ["max_per_day", "quiet_start", "quiet_end", "timezone"])
    desk_log.create(conn, checkfirst=True)


def _v5_operator_view(conn: Connection) -> None:
    """The operator's view (issue 15): poll history ring, stats buckets, delivery finish time and bounce
    flag, an index of the list filters; counts of past deliveries and subscribers go into the buckets."""
    from bot.store import stats

    _add_column(conn, schema.sources, schema.sources.c.poll_count)
    _add_column(conn, schema.deliveries, schema.deliveries.c.finished_at)
    _add_column(conn, schema.deliveries, schema.deliveries.c.bounced)
    schema.poll_history.create(conn, checkfirst=True)
    schema.stats.create(conn, checkfirst=True)
    conn.execute(text("DROP INDEX IF EXISTS ix_subscribers_status"))
    next(i for i in schema.subscribers.indexes if i.name == "ix_subscribers_filters").create(conn, checkfirst=True)
    d = schema.deliveries
    conn.execute(update(d).where(d.c.state == "sent").values(finished_at=d.c.sent_at))
    stats.backfill(conn)


def _v6_bounces(conn: Connection) -> None:
    """Bounces after the hand-off (issue 12): each delivery's outcome with its time and diagnostic, the
    subscriber's status reason, the bounce_mails table."""
    add_columns(conn, schema.deliveries, ["outcome", "outcome_at", "diagnostic"])
    add_columns(conn, subscribers, ["status_reason"])
    schema.bounce_mails.create(conn, checkfirst=True)


def _v7_delivery_summary(conn: Connection) -> None:
    """Issue 17: the delivery log's summary tables (filled from the rows there are), and the indexes of
    the failures pages, held alerts, digest items and summary mails."""
    from bot.store import summary_rebuild

    for table in (schema_summary.delivery_groups, schema_summary.delivery_counts, schema_summary.subscriber_counts):
        table.create(conn, checkfirst=True)
    for index in (*schema.items.indexes, *schema.deliveries.indexes, *schema.digest_items.indexes):
        index.create(conn, checkfirst=True)
    summary_rebuild.rebuild(conn)


# Numbered migrations: MIGRATIONS[n] upgrades a database from version n-1 to n. A new database is
# created from the current metadata and stamped with SCHEMA_VERSION (the Alembic "create_all then
# stamp head" pattern), so these steps only run on databases created by an older release.
MIGRATIONS: dict[int, Callable[[Connection], None]] = {2: _v2_web_hardening, 3: _v3_items_furniture,
                                                        4: _v4_desk_images_limits, 5: _v5_operator_view,
                                                        6: _v6_bounces, 7: _v7_delivery_summary}


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
