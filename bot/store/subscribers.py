"""Subscribers: sign-up, confirmation, unsubscription, preferences, erasure and operator changes."""
from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import Engine, and_, func, insert, select, true, update
from sqlalchemy.exc import IntegrityError

from bot.addresses import InvalidAddress, normalize_email, normalize_topics  # noqa: F401 - re-exported
from bot.store import summary
from bot.store.db import utcnow
from bot.store.schema import deliveries, items, subscriber_counts, subscribers

MODES = ("instant", "digest", "both")
LANGUAGES = ("fr", "en")
STATUSES = ("pending", "active", "unsubscribed", "suppressed", "deleted")


def new_nonce() -> str:
    """A fresh token nonce; storing it revokes every link made with the previous one."""
    return secrets.token_hex(8)


def _one(engine: Engine, where) -> dict | None:
    with engine.connect() as conn:
        row = conn.execute(select(subscribers).where(where)).mappings().first()
    return dict(row) if row else None


def get(engine: Engine, subscriber_id: int) -> dict | None:
    """The subscriber row as a dict, or None."""
    return _one(engine, subscribers.c.id == subscriber_id)


def by_email(engine: Engine, email: str) -> dict | None:
    """The subscriber with this (normalized) address, or None."""
    return _one(engine, subscribers.c.email == email.strip().lower())


def signup(engine: Engine, email: str, mode: str, language: str, topics: list[str],
           now: datetime | None = None) -> tuple[dict, str]:
    """Record a web sign-up; return (row, outcome) with outcome new|pending|unsubscribed|active|suppressed.

    Only new/pending/unsubscribed rows get the submitted preferences (they still need the
    confirmation click); an active or suppressed subscriber is left exactly as it was.
    """
    now = now or utcnow()
    try:
        return _signup(engine, email, mode, language, topics, now)
    except IntegrityError:
        # Two sign-ups of one new address at the same moment: the other one inserted it first,
        # so this one now finds the row (a pending sign-up, not a crash).
        return _signup(engine, email, mode, language, topics, now)


def _signup(engine: Engine, email: str, mode: str, language: str, topics: list[str],
            now: datetime) -> tuple[dict, str]:
    with engine.begin() as conn:
        row = conn.execute(select(subscribers).where(subscribers.c.email == email)).mappings().first()
        if row is None:
            values = dict(email=email, status="pending", mode=mode, language=language, topics=topics,
                          origin="web", token_nonce=new_nonce(), created_at=now)
            sid = conn.execute(insert(subscribers).values(**values)).inserted_primary_key[0]
            return {**values, "id": sid, "bounces": 0}, "new"
        row = dict(row)
        if row["status"] in ("pending", "unsubscribed"):
            conn.execute(update(subscribers).where(subscribers.c.id == row["id"])
                         .values(mode=mode, language=language, topics=topics))
            row.update(mode=mode, language=language, topics=topics)
        return row, row["status"]


def confirm(engine: Engine, subscriber_id: int, nonce: str, now: datetime | None = None) -> str | None:
    """Activate a pending/unsubscribed subscriber: 'confirmed', 'already' (active), or None (stale)."""
    now = now or utcnow()
    with engine.begin() as conn:
        row = conn.execute(select(subscribers.c.status, subscribers.c.token_nonce)
                           .where(subscribers.c.id == subscriber_id)).first()
        if row is None or row.token_nonce != nonce or row.status in ("deleted", "suppressed"):
            return None
        if row.status == "active":
            return "already"
        conn.execute(update(subscribers).where(subscribers.c.id == subscriber_id)
                     .values(status="active", confirmed_at=now, unsubscribed_at=None))
        return "confirmed"


def _cancel_deliveries(conn, subscriber_id: int) -> int:
    # Queued and retrying messages must never go out after an unsubscription.
    return summary.move(conn, deliveries.c.subscriber_id == subscriber_id, ("pending", "retry"),
                        state="cancelled", last_error="subscriber left", next_attempt_at=None)


def unsubscribe(engine: Engine, subscriber_id: int, nonce: str | None = None,
                now: datetime | None = None) -> str | None:
    """Unsubscribe at once, rotate the nonce and cancel queued deliveries: 'unsubscribed', 'already' or None.

    With a nonce (a link), a stale nonce on an already unsubscribed row answers 'already'.
    """
    now = now or utcnow()
    with engine.begin() as conn:
        row = conn.execute(select(subscribers.c.status, subscribers.c.token_nonce)
                           .where(subscribers.c.id == subscriber_id)).first()
        if row is None or row.status == "deleted":
            return None
        if row.status == "unsubscribed":
            _cancel_deliveries(conn, subscriber_id)
            return "already"
        if nonce is not None and row.token_nonce != nonce:
            return None
        conn.execute(update(subscribers).where(subscribers.c.id == subscriber_id)
                     .values(status="unsubscribed", unsubscribed_at=now, token_nonce=new_nonce()))
        _cancel_deliveries(conn, subscriber_id)
        return "unsubscribed"


def update_preferences(engine: Engine, subscriber_id: int, mode: str, language: str, topics: list[str]) -> bool:
    """Store new preferences; False if the subscriber is gone."""
    if mode not in MODES or language not in LANGUAGES:
        raise ValueError("unknown mode or language")
    with engine.begin() as conn:
        res = conn.execute(update(subscribers)
                           .where(subscribers.c.id == subscriber_id, subscribers.c.status != "deleted")
                           .values(mode=mode, language=language, topics=normalize_topics(topics)))
    return res.rowcount == 1


def erase(engine: Engine, subscriber_id: int, now: datetime | None = None) -> bool:
    """Erase personal data (address, topics, errors) but keep anonymous delivery rows for counts."""
    now = now or utcnow()
    with engine.begin() as conn:
        res = conn.execute(update(subscribers)
                           .where(subscribers.c.id == subscriber_id, subscribers.c.status != "deleted")
                           .values(email=None, status="deleted", topics=[], last_error=None,
                                   token_nonce=new_nonce(), unsubscribed_at=now))
        if res.rowcount != 1:
            return False
        _cancel_deliveries(conn, subscriber_id)
        # Error texts may quote the address; the recipient column is made anonymous but unique.
        conn.execute(update(deliveries).where(deliveries.c.subscriber_id == subscriber_id)
                     .values(recipient=f"deleted:{subscriber_id}", last_error=None))
    return True


def export_data(engine: Engine, subscriber_id: int) -> dict | None:
    """Everything stored about one subscriber, JSON-ready."""
    row = get(engine, subscriber_id)
    if row is None:
        return None
    with engine.connect() as conn:
        rows = conn.execute(
            select(deliveries.c.id, deliveries.c.channel, deliveries.c.kind, deliveries.c.state,
                   deliveries.c.attempts, deliveries.c.created_at, deliveries.c.sent_at,
                   deliveries.c.item_id, items.c.title)
            .select_from(deliveries.outerjoin(items, items.c.id == deliveries.c.item_id))
            .where(deliveries.c.subscriber_id == subscriber_id).order_by(deliveries.c.id)).mappings().all()
        compacted = dict(conn.execute(select(subscriber_counts.c.state, subscriber_counts.c.n)
                                      .where(subscriber_counts.c.subscriber_id == subscriber_id, subscriber_counts.c.n > 0)).all())
    row.pop("token_nonce", None)
    # Deliveries older than `delivery.detail_days` are compacted: only their number per state is kept.
    return {"subscriber": _jsonable(row), "deliveries": [_jsonable(dict(r)) for r in rows],
            "compacted_deliveries": compacted}


def _jsonable(d: dict) -> dict:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in d.items()}


def add(engine: Engine, emails: Sequence[str], mode: str = "both", language: str = "fr",
        topics: list[str] | None = None, origin: str = "operator") -> dict[str, str]:
    """Operator-added addresses (already normalized), active at once: {email: 'added'|'exists'}."""
    now = utcnow()
    result: dict[str, str] = {}
    with engine.begin() as conn:
        for email in emails:
            exists = conn.execute(select(subscribers.c.id).where(subscribers.c.email == email)).first()
            if exists:
                result[email] = "exists"
                continue
            conn.execute(insert(subscribers).values(
                email=email, status="active", mode=mode, language=language, topics=topics or [],
                origin=origin, token_nonce=new_nonce(), created_at=now, confirmed_at=now))
            result[email] = "added"
    return result


def insert_many(engine: Engine, records: Sequence[dict], origin: str = "import") -> int:
    """Insert active subscribers in one executemany, skipping known addresses; return rows inserted."""
    from bot.store.subscriber_batches import insert_active

    return insert_active(engine, records, origin)


def remove(engine: Engine, email: str, erase_data: bool = False) -> str | None:
    """Operator removal: unsubscribe (or erase); None when the address is unknown."""
    row = by_email(engine, email)
    if row is None:
        return None
    if erase_data:
        erase(engine, row["id"])
        return "erased"
    return unsubscribe(engine, row["id"])


def reactivate(engine: Engine, email: str) -> str | None:
    """Make an unsubscribed/suppressed/pending address active again (bounces reset); None if unknown."""
    with engine.begin() as conn:
        row = conn.execute(select(subscribers.c.id, subscribers.c.status)
                           .where(subscribers.c.email == email)).first()
        if row is None:
            return None
        if row.status == "active":
            return "already"
        conn.execute(update(subscribers).where(subscribers.c.id == row.id)
                     .values(status="active", bounces=0, last_error=None, unsubscribed_at=None,
                             confirmed_at=utcnow()))
        return "reactivated"


def _filters(status: str | None, mode: str | None, search: str | None) -> list:
    conds = []
    if status:
        conds.append(subscribers.c.status == status)
    if mode:
        conds.append(subscribers.c.mode == mode)
    if search:
        # Bound parameter + escaped wildcards: search text is data, never SQL or a pattern.
        pattern = "%" + search.strip().lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        conds.append(subscribers.c.email.like(pattern, escape="\\"))
    return conds


def list_page(engine: Engine, status: str | None = None, mode: str | None = None, search: str | None = None,
              limit: int = 50, offset: int = 0) -> tuple[list[dict], int]:
    """One page of subscribers (newest first) and the total matching the filters."""
    conds = _filters(status, mode, search)
    where = and_(true(), *conds)
    with engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(subscribers).where(where)).scalar_one()
        rows = conn.execute(select(subscribers).where(where).order_by(subscribers.c.id.desc())
                            .limit(max(1, min(limit, 1000))).offset(max(0, offset))).mappings().all()
    return [dict(r) for r in rows], total


def iter_all(engine: Engine, status: str | None = None, chunk: int = 5000) -> Iterable[dict]:
    """Every subscriber with an address, in id order, fetched in keyset chunks (bounded memory)."""
    last = 0
    while True:
        conds = [subscribers.c.id > last, subscribers.c.email.is_not(None)] + _filters(status, None, None)
        with engine.connect() as conn:
            rows = conn.execute(select(subscribers).where(*conds).order_by(subscribers.c.id)
                                .limit(chunk)).mappings().all()
        if not rows:
            return
        yield from (dict(r) for r in rows)
        last = rows[-1]["id"]


def counts(engine: Engine) -> dict[str, dict[str, int]]:
    """{status: {mode: n}} over all subscribers."""
    out: dict[str, dict[str, int]] = {}
    with engine.connect() as conn:
        for status, mode, n in conn.execute(select(subscribers.c.status, subscribers.c.mode, func.count())
                                            .group_by(subscribers.c.status, subscribers.c.mode)):
            out.setdefault(status, {})[mode] = n
    return out


def delivery_counts(engine: Engine, subscriber_id: int) -> dict[str, int]:
    """{state: n} of one subscriber's deliveries: the rows there are plus the compacted ones."""
    with engine.connect() as conn:
        rows = conn.execute(select(deliveries.c.state, func.count()).where(deliveries.c.subscriber_id == subscriber_id)
                            .group_by(deliveries.c.state)).all()
        folded = conn.execute(select(subscriber_counts.c.state, subscriber_counts.c.n)
                              .where(subscriber_counts.c.subscriber_id == subscriber_id)).all()
    out: dict[str, int] = {}
    for state, n in (*rows, *folded):
        out[state] = out.get(state, 0) + n
    return {s: n for s, n in out.items() if n}
