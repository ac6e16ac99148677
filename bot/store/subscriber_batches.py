"""Subscribers by the thousand (`subscribers import` and `export`): one compiled insert per batch with
plain tuples, and keyset chunks of plain tuples out; per-row work kept to what differs per row."""
from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence

from sqlalchemy import Engine, String, cast, select

from bot.models import SubscriberEvent
from bot.store import stats
from bot.store.db import insert_count, utcnow
from bot.store.limits import LIMIT_COLUMNS
from bot.store.schema import subscribers


def insert_active(engine: Engine, records: Sequence[dict], origin: str = "import") -> int:
    """Insert active subscribers in one executemany, skipping known addresses; return rows inserted.

    Imports call this with thousands of rows at a time, so the statement is compiled once and each
    row is a plain tuple: the values shared by the batch (status, origin, times) are converted for the
    database once, not per row (SQLAlchemy's per-row parameter processing cost more than the insert)."""
    if not records:
        return 0
    now = utcnow()
    nonces = secrets.token_bytes(8 * len(records)).hex()
    rows = [dict(email=r["email"], mode=r.get("mode") or "both", language=r.get("language") or "fr",
                 topics=r.get("topics") or [], token_nonce=nonces[16 * i:16 * i + 16],
                 **{k: r.get(k) for k in LIMIT_COLUMNS}) for i, r in enumerate(records)]
    shared = dict(status="active", origin=origin, bounces=0, created_at=now, confirmed_at=now)
    stmt = _insert_ignore(engine)
    with engine.begin() as conn:
        added = _insert(conn, stmt, rows, shared)
        # The subscribers chart counts them, in the same transaction as the rows.
        stats.bump(conn, stats.SUBSCRIBER, [(now, "", SubscriberEvent.SIGNUP), (now, "", SubscriberEvent.CONFIRM)], n=added)
    return added


def _insert(conn, stmt, rows: list[dict], shared: dict) -> int:
    """Execute the insert with plain tuples, the shared values converted once; rows inserted."""
    compiled = stmt.compile(dialect=conn.dialect, column_keys=[*rows[0], *shared])
    if not compiled.positional:  # e.g. PostgreSQL's named parameters: the plain executemany
        return insert_count(conn, stmt, [{**r, **shared} for r in rows], subscribers.c.id)
    convert = {c.key: c.type.dialect_impl(conn.dialect).bind_processor(conn.dialect) for c in subscribers.c}
    fixed = {k: convert[k](v) if convert[k] else v for k, v in shared.items()}
    order = [compiled.binds[name].key for name in compiled.positiontup]
    per_row = [k for k in order if k not in fixed]
    funcs = {k: _memo(convert[k]) for k in per_row if convert[k]}
    params = [tuple(fixed[k] if k in fixed else (funcs[k](r[k]) if k in funcs else r[k]) for k in order) for r in rows]
    # executemany's rowcount is the rows inserted (ON CONFLICT DO NOTHING counts none for known ones);
    # no COUNT(*) of the whole table around it, which cost more than the insert at a million rows.
    return conn.exec_driver_sql(str(compiled), params).rowcount


def _memo(convert):
    """A converter that converts each distinct value object once (imports share topic lists between rows)."""
    seen: dict[int, tuple] = {}

    def run(value):
        hit = seen.get(id(value))
        if hit is None or hit[0] is not value:
            hit = seen[id(value)] = (value, convert(value))
        return hit[1]
    return run


def _insert_ignore(engine: Engine):
    # ON CONFLICT DO NOTHING keeps imports idempotent and never revives an unsubscribed address.
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    return dialect_insert(subscribers).on_conflict_do_nothing(index_elements=["email"])


EXPORTED = ("email", "status", "mode", "language", "topics", "origin", "created_at", "confirmed_at", *LIMIT_COLUMNS)


def export_rows(engine: Engine, status: str | None = None, chunk: int = 10000) -> Iterable[tuple]:
    """(email, status, mode, language, topics as JSON text, origin, created_at, confirmed_at, max_per_day,
    quiet_start, quiet_end, timezone) of every subscriber with an address, in id order: keyset chunks,
    plain tuples (flat memory, ~µs per row)."""
    cols = [subscribers.c.id, *(cast(subscribers.c[c], String) if c == "topics" else subscribers.c[c] for c in EXPORTED)]
    last = 0
    while True:
        conds = [subscribers.c.id > last, subscribers.c.email.is_not(None)] + ([subscribers.c.status == status] if status else [])
        with engine.connect() as conn:
            rows = conn.execute(select(*cols).where(*conds).order_by(subscribers.c.id).limit(chunk)).all()
        if not rows:
            return
        for r in rows:
            yield tuple(r)[1:]
        last = rows[-1][0]
