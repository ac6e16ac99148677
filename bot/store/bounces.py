"""The bounce_mails table: every received bounce mail or provider event, stored before it is processed."""
from __future__ import annotations

import hashlib
from collections import Counter
from datetime import datetime, timedelta

from sqlalchemy import Engine, Integer, Text, bindparam, cast, delete, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from bot.models import BounceKind, DeliveryOutcome, DeliveryState, InboundState
from bot.store.db import utcnow
from bot.store.schema import bounce_mails, deliveries, meta, subscribers

B, D = bounce_mails.c, deliveries.c
_COUNTER = "counter:"  # monotonic Prometheus counters live in `meta` (they survive restarts and pruning)
LIST_COLUMNS = [B.id, B.source, B.received_at, B.state, B.kind, B.delivery_id, B.subscriber_id, B.recipient,
                B.status, B.diagnostic, B.note, B.size, B.envelope_to, B.processed_at]


def _insert(conn, table):
    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)


def dedupe_key(source: str, raw: bytes, event_id: str | None = None, envelope_to: str | None = None) -> str:
    """The same mail (byte for byte, to the same envelope recipients) or the same provider event id is stored once."""
    basis = f"{source}:{event_id}".encode() if event_id else f"mail:{envelope_to or ''}\n".encode() + raw
    return hashlib.sha256(basis).hexdigest()


def store(engine: Engine, rows: list[dict], now: datetime | None = None) -> list[tuple[int, bool]]:
    """Insert received mails/events in ONE transaction; (id, newly stored) per row, in order.

    Each row: source, raw, envelope_to, envelope_from, and optionally event_id. A row already
    stored (same dedupe key, also twice in `rows`) is not stored again; its existing id is returned.
    One multi-row INSERT … ON CONFLICT DO NOTHING RETURNING for the batch: it says which rows are new.
    """
    now = now or utcnow()
    keys = [dedupe_key(r["source"], r["raw"], r.get("event_id"), r.get("envelope_to")) for r in rows]
    fresh: dict[str, dict] = {}
    for k, r in zip(keys, rows):
        fresh.setdefault(k, r)  # the first row of each key
    values = [{"source": r["source"], "dedupe": k, "envelope_to": r.get("envelope_to"), "envelope_from": r.get("envelope_from"),
               "raw": r["raw"], "size": len(r["raw"]), "received_at": now, "state": InboundState.NEW, "attempts": 0}
              for k, r in fresh.items()]
    with engine.begin() as conn:
        stmt = _insert(conn, bounce_mails).on_conflict_do_nothing().returning(B.dedupe, B.id)
        inserted = dict(conn.execute(stmt, values).all()) if values else {}
        known = inserted | _ids_of(conn, [k for k in fresh if k not in inserted])
        received = Counter(fresh[k]["source"] for k in inserted)
        bump_many(conn, {f"received:{source}": n for source, n in received.items()})
    out: list[tuple[int, bool]] = []
    for k in keys:
        out.append((known[k], k in inserted))
        inserted.pop(k, None)  # a second row with the same key in this batch is a copy
    return out


def _ids_of(conn, keys: list[str]) -> dict[str, int]:
    """{dedupe key: id} of rows already stored."""
    if not keys:
        return {}
    return dict(conn.execute(select(B.dedupe, B.id).where(B.dedupe.in_(keys))).all())


_BUMPS: dict[str, object] = {}  # the upsert, built once per dialect


def bump(conn, name: str, n: int = 1) -> None:
    """Add n to a counter kept in `meta` (created at n): one upsert."""
    stmt = _BUMPS.get(conn.dialect.name)
    if stmt is None:
        ins = _insert(conn, meta).values(key=bindparam("k"), value=cast(bindparam("n", type_=Integer), Text))
        stmt = _BUMPS[conn.dialect.name] = ins.on_conflict_do_update(
            index_elements=[meta.c.key], set_={"value": cast(cast(meta.c.value, Integer) + bindparam("n", type_=Integer), Text)})
    conn.execute(stmt, {"k": _COUNTER + name, "n": n})


def bump_many(conn, counts: dict[str, int]) -> None:
    """bump() for several counters (a batch's tally, written once per transaction)."""
    for name, n in sorted(counts.items()):
        if n:
            bump(conn, name, n)


def counters(engine: Engine) -> dict[str, int]:
    """{name: value} of every bounce counter."""
    with engine.connect() as conn:
        rows = conn.execute(select(meta.c.key, meta.c.value).where(meta.c.key.like(_COUNTER + "%"))).all()
    return {k.removeprefix(_COUNTER): int(v) for k, v in rows}


_PENDING = (select(B.id, B.source, B.raw, B.envelope_to, B.attempts).where(B.state == InboundState.NEW)
            .order_by(B.id).limit(bindparam("limit")))
_PENDING_OF = _PENDING.where(B.id.in_(bindparam("ids", expanding=True)))


def pending(engine: Engine, limit: int, ids: list[int] | None = None) -> list[dict]:
    """Stored rows still `new` (oldest first), or those of `ids` that are still new."""
    stmt, params = (_PENDING, {"limit": limit}) if ids is None else (_PENDING_OF, {"limit": limit, "ids": list(ids)})
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(stmt, params).mappings()]


def any_pending(engine: Engine) -> bool:
    """Whether a stored row waits for processing (one indexed lookup)."""
    with engine.connect() as conn:
        return conn.execute(select(B.id).where(B.state == InboundState.NEW).limit(1)).first() is not None


def failed_attempt(engine: Engine, ids: list[int], error: str, give_up_after: int = 5) -> None:
    """Count a processing attempt that crashed; after `give_up_after` the row is kept as unparsed."""
    with engine.begin() as conn:
        conn.execute(update(bounce_mails).where(B.id.in_(ids), B.state == InboundState.NEW)
                     .values(attempts=B.attempts + 1, note=error[:500]))
        conn.execute(update(bounce_mails).where(B.id.in_(ids), B.state == InboundState.NEW, B.attempts >= give_up_after)
                     .values(state=InboundState.UNPARSED, processed_at=utcnow()))


FINISH_COLUMNS = ("state", "kind", "processed_at", "status", "diagnostic", "recipient", "note", "subscriber_id", "delivery_id")
_CLAIM = (update(bounce_mails).where(B.id.in_(bindparam("ids", expanding=True)), B.state == InboundState.NEW)
          .values(attempts=B.attempts).returning(B.id))
_FINISH = update(bounce_mails).where(B.id == bindparam("row_id"))


def claim(conn, ids: list[int]) -> set[int]:
    """Those of `ids` still new, locked for this transaction (SQLite's write lock, PostgreSQL's row locks):
    another processor waits, then finds them done; an effect is never applied twice."""
    return set(conn.execute(_CLAIM, {"ids": list(ids)}).scalars()) if ids else set()


def finish(conn, row_id: int, values: dict) -> None:
    """Mark a claimed row processed (state, kind, attribution, note)."""
    conn.execute(_FINISH, {"row_id": row_id, **{c: values.get(c) for c in FINISH_COLUMNS}})


def requeue(engine: Engine, ids: list[int] | None = None, unparsed: bool = False) -> int:
    """Put rows back to `new` so the processor reads them again: given ids (not processed ones) or every unparsed."""
    again = [InboundState.UNPARSED, InboundState.REJECTED, InboundState.IGNORED]
    where = [B.state.in_(again)]
    if ids is not None:
        where.append(B.id.in_(ids))
    elif unparsed:
        where = [B.state == InboundState.UNPARSED]
    else:
        return 0
    with engine.begin() as conn:
        return conn.execute(update(bounce_mails).where(*where).values(
            state=InboundState.NEW, attempts=0, processed_at=None)).rowcount or 0


def get(engine: Engine, row_id: int) -> dict | None:
    """One row with its raw bytes and the subscriber's address."""
    q = (select(bounce_mails, subscribers.c.email).select_from(
        bounce_mails.outerjoin(subscribers, subscribers.c.id == B.subscriber_id)).where(B.id == row_id))
    with engine.connect() as conn:
        row = conn.execute(q).mappings().first()
    return dict(row) if row else None


def listing(engine: Engine, states=None, kinds=None, limit: int = 50, offset: int = 0) -> list[dict]:
    """Newest rows first (without raw), filtered by state and kind, with the subscriber's address."""
    q = (select(*LIST_COLUMNS, subscribers.c.email)
         .select_from(bounce_mails.outerjoin(subscribers, subscribers.c.id == B.subscriber_id)))
    if states:
        q = q.where(B.state.in_(list(states)))
    if kinds:
        q = q.where(B.kind.in_(list(kinds)))
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(q.order_by(B.id.desc()).limit(max(1, min(limit, 1000))).offset(offset)).mappings()]


def state_counts(engine: Engine) -> dict[tuple[str, str | None], int]:
    """{(state, kind): n} over stored rows."""
    with engine.connect() as conn:
        return {(s, k): n for s, k, n in conn.execute(select(B.state, B.kind, func.count()).group_by(B.state, B.kind))}


def daily_rates(engine: Engine, days: int = 14, now: datetime | None = None) -> list[dict]:
    """Per day (UTC) of the last `days`: emails sent, and of those, bounced/soft-bounced/complained."""
    now = now or utcnow()
    since = (now - timedelta(days=days - 1)).replace(hour=0, minute=0, second=0, microsecond=0)
    day = func.substr(cast(D.sent_at, Text), 1, 10)
    q = (select(day.label("day"), func.count().label("sent"),
                *[func.sum(cast(D.outcome == o.value, Integer)).label(o.name.lower()) for o in DeliveryOutcome])
         .where(D.channel == "email", D.state == DeliveryState.SENT, D.sent_at >= since).group_by(day))
    with engine.connect() as conn:
        found = {r["day"]: dict(r) for r in conn.execute(q).mappings()}
    out = []
    for i in range(days):
        key = (since + timedelta(days=i)).date().isoformat()
        r = found.get(key, {"sent": 0})
        bounced = (r.get("bounced") or 0)
        out.append({"day": key, "sent": r["sent"], "bounced": bounced, "soft": r.get("soft_bounced") or 0,
                    "complained": r.get("complained") or 0,
                    "rate": (bounced / r["sent"]) if r["sent"] else None})
    return out


def prune(conn, cutoff: datetime) -> int:
    """Delete finished rows received before the cutoff (never one still waiting to be processed)."""
    return conn.execute(delete(bounce_mails).where(B.received_at < cutoff, B.state != InboundState.NEW)).rowcount or 0


def last_for_subscriber(engine: Engine, subscriber_id: int) -> dict | None:
    """The latest bounce or complaint that named this subscriber (time, kind, status, diagnostic, delivery)."""
    q = (select(B.id, B.received_at, B.kind, B.status, B.diagnostic, B.delivery_id, B.state)
         .where(B.subscriber_id == subscriber_id, or_(B.kind.in_([BounceKind.HARD, BounceKind.SOFT, BounceKind.COMPLAINT])))
         .order_by(B.id.desc()).limit(1))
    with engine.connect() as conn:
        row = conn.execute(q).mappings().first()
    return dict(row) if row else None
