"""Subscribers: sign-up, confirmation, unsubscription, preferences, erasure and operator changes."""
from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Engine, delete, func, insert, or_, select, update

from bot.addresses import InvalidAddress, normalize_email, normalize_topics  # noqa: F401 - re-exported
from bot.i18n import available
from bot.models import SubscriberEvent
from bot.store import signups, stats, summary
from bot.store.db import utcnow
from bot.store.schema import bounce_mails, deliveries, items, subscribers
from bot.store.schema_summary import subscriber_counts
from bot.store.signups import confirm, signup  # noqa: F401 - re-exported: sign-up lives with its requests

MODES = ("instant", "digest", "both")
LANGUAGES = available()  # the compiled catalogs in bot/locale; adding one needs a restart
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


def _event(conn, now: datetime, event: SubscriberEvent, n: int = 1) -> None:
    """Count a list change in the stats table (the subscribers chart), in the caller's transaction."""
    stats.bump(conn, stats.SUBSCRIBER, [(now, "", event)], n=n)


def _cancel_deliveries(conn, subscriber_id: int) -> int:
    # Queued and retrying messages must never go out after an unsubscription.
    return summary.move(conn, deliveries.c.subscriber_id == subscriber_id, ("pending", "retry"),
                        state="cancelled", last_error="subscriber left", next_attempt_at=None, finished_at=utcnow())


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
        if row.status == "active":
            _event(conn, now, SubscriberEvent.UNSUBSCRIBE)
        _cancel_deliveries(conn, subscriber_id)
        signups.forget(conn, subscriber_id)  # confirmation links mailed before no longer re-subscribe
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
    """Erase personal data (address, topics, errors, received bounces) but keep anonymous delivery rows for counts."""
    now = now or utcnow()
    with engine.begin() as conn:
        was, email = conn.execute(select(subscribers.c.status, subscribers.c.email)
                                  .where(subscribers.c.id == subscriber_id)).first() or (None, None)
        res = conn.execute(update(subscribers)
                           .where(subscribers.c.id == subscriber_id, subscribers.c.status != "deleted")
                           .values(email=None, status="deleted", topics=[], last_error=None, status_reason=None,
                                   token_nonce=new_nonce(), unsubscribed_at=now))
        if res.rowcount != 1:
            return False
        if was == "active":
            _event(conn, now, SubscriberEvent.UNSUBSCRIBE)
        _cancel_deliveries(conn, subscriber_id)
        signups.forget(conn, subscriber_id)  # their topics are personal data too
        # Error texts may quote the address; the recipient column is made anonymous but unique.
        conn.execute(update(deliveries).where(deliveries.c.subscriber_id == subscriber_id)
                     .values(recipient=f"deleted:{subscriber_id}", last_error=None, diagnostic=None))
        # Bounce mails quote the address (and often the message): they go, those tied to no row included.
        conn.execute(delete(bounce_mails).where(or_(bounce_mails.c.subscriber_id == subscriber_id,
                                                    bounce_mails.c.recipient == email)))
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
                   deliveries.c.outcome, deliveries.c.outcome_at, deliveries.c.diagnostic,
                   deliveries.c.item_id, items.c.title)
            .select_from(deliveries.outerjoin(items, items.c.id == deliveries.c.item_id))
            .where(deliveries.c.subscriber_id == subscriber_id).order_by(deliveries.c.id)).mappings().all()
        compacted = dict(conn.execute(select(subscriber_counts.c.state, subscriber_counts.c.n)
                                      .where(subscriber_counts.c.subscriber_id == subscriber_id, subscriber_counts.c.n > 0)).all())
    row.pop("token_nonce", None)
    # Deliveries older than `delivery.detail_days` are compacted: only their number per state is kept.
    return {"subscriber": _jsonable(row), "deliveries": [_jsonable(dict(r)) for r in rows],
            "compacted_deliveries": compacted,
            "signups": [_jsonable(r) for r in signups.requests_of(engine, subscriber_id)]}


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
        added = sum(1 for v in result.values() if v == "added")
        _event(conn, now, SubscriberEvent.SIGNUP, added)
        _event(conn, now, SubscriberEvent.CONFIRM, added)
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
        now = utcnow()
        conn.execute(update(subscribers).where(subscribers.c.id == row.id)
                     .values(status="active", bounces=0, last_error=None, status_reason=None, unsubscribed_at=None,
                             confirmed_at=now))
        _event(conn, now, SubscriberEvent.CONFIRM)
        return "reactivated"


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
