"""Claims on the outbox: a worker takes due rows under a lease, renews it while it sends, and rows
whose lease ran out (their worker died) go back to the queue for the others.

Claiming is one UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED LIMIT n) RETURNING: on
PostgreSQL concurrent workers skip each other's rows instead of waiting; on SQLite the statement
takes the write lock at once. Either way no row is ever claimed twice. A claimed row is `sending`,
names its worker in `claimed_by`, and its `next_attempt_at` is when the lease expires (the same
indexed column that orders due rows, so finding expired leases costs one index range).
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import Engine, func, select, true, update

from bot.models import DUE_STATES, ClaimedRow, DeliveryState
from bot.store import summary
from bot.store.db import utcnow
from bot.store.schema import deliveries, subscribers

D, S = deliveries.c, subscribers.c
CHANNEL = "flashbot_outbox"  # NOTIFY channel: rows became due
LEASE_SECONDS = 60.0
_RETURNED = [D.id, D.item_id, D.digest_id, D.channel, D.recipient, D.subscriber_id, D.revision, D.kind, D.attempts]


def claim(engine: Engine, limit: int, now: datetime | None = None, channels: Iterable[str] = ("email", "telegram"),
          owner: str | None = None, lease: float = LEASE_SECONDS) -> list[ClaimedRow]:
    """Atomically move up to `limit` due rows to 'sending' under `owner`'s lease; return them with
    subscriber data. Fresh rows go before retries."""
    now = now or utcnow()
    channels = sorted(channels)
    claimed: list[ClaimedRow] = []
    moves: Counter = Counter()
    if not channels:
        return claimed
    with engine.begin() as conn:
        for state in DUE_STATES:
            want = limit - len(claimed)
            if want <= 0:
                break
            due = select(D.id).where(D.state == state, D.next_attempt_at <= now, D.channel.in_(channels))
            due = due.order_by(D.next_attempt_at).limit(want)
            if conn.dialect.name == "postgresql":
                due = due.with_for_update(skip_locked=True)
            stmt = (update(deliveries).where(D.id.in_(due.scalar_subquery()))
                    .values(state=DeliveryState.SENDING, claimed_by=owner, next_attempt_at=now + timedelta(seconds=lease))
                    .returning(*_RETURNED))
            if conn.dialect.name == "postgresql":
                got = _with_subscribers(conn, stmt)  # one round trip: claim and subscriber data
            else:
                got = [dict(r) for r in conn.execute(stmt).mappings()]
                _attach_subscribers(conn, got)
            moves.update((summary.key_of(r), summary.part_of(state), summary.part_of(DeliveryState.SENDING)) for r in got)
            claimed.extend(got)
        summary.moved(conn, moves)  # the delivery summary's counts, in the same transaction
    claimed.sort(key=lambda r: r["id"])
    return claimed


_SUB = (S.id, S.email, S.status, S.language, S.token_nonce)


def _with_subscribers(conn, stmt) -> list[ClaimedRow]:
    """PostgreSQL: the claiming UPDATE as a CTE joined to the subscribers it names."""
    c = stmt.cte("claimed")
    q = (select(*(c.c[col.name] for col in _RETURNED), *(s.label(f"s_{s.name}") for s in _SUB))
         .select_from(c.outerjoin(subscribers, S.id == c.c.subscriber_id)))
    rows = []
    for r in conn.execute(q).mappings():
        row = {col.name: r[col.name] for col in _RETURNED}
        row["subscriber"] = {s.name: r[f"s_{s.name}"] for s in _SUB} if r["s_id"] is not None else None
        rows.append(row)
    return rows


def _attach_subscribers(conn, rows: list[ClaimedRow]) -> None:
    ids = sorted({r["subscriber_id"] for r in rows if r["subscriber_id"] is not None})
    found: dict[int, dict] = {}
    for i in range(0, len(ids), 900):
        q = select(S.id, S.email, S.status, S.language, S.token_nonce).where(S.id.in_(ids[i:i + 900]))
        found.update({r.id: dict(r._mapping) for r in conn.execute(q)})
    for r in rows:
        r["subscriber"] = found.get(r["subscriber_id"])


def renew(engine: Engine, owner: str, lease: float = LEASE_SECONDS, now: datetime | None = None) -> int:
    """Extend the lease of every row `owner` is still sending; returns how many it holds."""
    until = (now or utcnow()) + timedelta(seconds=lease)
    with engine.begin() as conn:
        return conn.execute(update(deliveries).where(D.state == DeliveryState.SENDING, D.claimed_by == owner)
                            .values(next_attempt_at=until)).rowcount or 0


def recover(engine: Engine, now: datetime | None = None, expired_only: bool = False) -> int:
    """Rows left 'sending' by a dead worker become due retries (the only possible duplicates).

    At the start of the single SQLite instance every 'sending' row is a leftover; in a cluster only
    rows whose lease expired are (their worker stopped renewing it)."""
    now = now or utcnow()
    where = D.next_attempt_at < now if expired_only else true()
    with engine.begin() as conn:
        n = summary.move(conn, where, [DeliveryState.SENDING], state=DeliveryState.RETRY, attempts=D.attempts + 1,
                         next_attempt_at=now, last_error="interrupted while sending (process stopped); sent again")
        if n:
            notify(conn)
        return n


def next_due(engine: Engine, channels: Iterable[str] = ("email", "telegram")) -> datetime | None:
    """When the earliest pending/retry row of these channels falls due (None when nothing waits)."""
    q = select(func.min(D.next_attempt_at)).where(D.state.in_(DUE_STATES), D.channel.in_(sorted(channels)))
    with engine.connect() as conn:
        return conn.execute(q).scalar()


def notify(conn) -> None:
    """Inside a transaction that made rows due: on PostgreSQL, wake every listening worker at commit."""
    if conn.dialect.name == "postgresql":
        conn.execute(select(func.pg_notify(CHANNEL, "")))
