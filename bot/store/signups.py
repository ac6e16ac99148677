"""Web sign-ups (signup_requests): each sign-up keeps its own choices, which only its own link confirms."""
from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from bot.models import SubscriberEvent
from bot.store import stats
from bot.store.db import utcnow
from bot.store.schema import signup_requests, subscribers

MAX_REQUESTS = 10  # kept per subscriber; older ones are dropped (at most a few mails a day go out anyway)
_REQ = signup_requests.c


def signup(engine: Engine, email: str, mode: str, language: str, topics: list[str],
           now: datetime | None = None) -> tuple[dict, str]:
    """Record a web sign-up; return (row, outcome) with outcome new|pending|unsubscribed|active|suppressed.

    For new/pending/unsubscribed, the submitted choices go into a sign-up request whose nonce is
    row["confirm_nonce"] (its language: row["confirm_language"]); the subscriber row itself is left as it was, so a link mailed for an
    earlier sign-up still confirms exactly what that sign-up chose. Active and suppressed
    subscribers are not touched at all.
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
                          origin="web", token_nonce=secrets.token_hex(8), created_at=now)
            sid = conn.execute(insert(subscribers).values(**values)).inserted_primary_key[0]
            stats.bump(conn, stats.SUBSCRIBER, [(now, "", SubscriberEvent.SIGNUP)])  # the subscribers chart
            row, outcome = {**values, "id": sid, "bounces": 0}, "new"
        else:
            row, outcome = dict(row), row["status"]
            if outcome not in ("pending", "unsubscribed"):
                return row, outcome
        # The mail for this sign-up goes out in the language chosen in it.
        row.update(confirm_nonce=_request(conn, row["id"], mode, language, topics, now), confirm_language=language)
        return row, outcome


def _request(conn: Connection, subscriber_id: int, mode: str, language: str, topics: list[str],
             now: datetime) -> str:
    nonce = secrets.token_hex(12)
    conn.execute(insert(signup_requests).values(subscriber_id=subscriber_id, nonce=nonce, mode=mode,
                                                language=language, topics=topics, created_at=now))
    keep = select(_REQ.id).where(_REQ.subscriber_id == subscriber_id).order_by(_REQ.id.desc()).limit(MAX_REQUESTS)
    conn.execute(delete(signup_requests).where(_REQ.subscriber_id == subscriber_id,
                                               _REQ.id.not_in(keep.scalar_subquery())))
    return nonce


def confirm(engine: Engine, subscriber_id: int, nonce: str, now: datetime | None = None) -> str | None:
    """Activate with the choices of the sign-up the link was made for: 'confirmed', 'already' or None (stale)."""
    now = now or utcnow()
    with engine.begin() as conn:
        row = conn.execute(select(subscribers.c.status, subscribers.c.token_nonce)
                           .where(subscribers.c.id == subscriber_id)).first()
        if row is None or row.status in ("deleted", "suppressed"):
            return None
        req = find(conn, subscriber_id, nonce)
        if req is None and nonce != row.token_nonce:
            return None
        if row.status == "active":
            return "already"
        if req is not None and req["used_at"] is not None:
            return None  # confirmed once already, and unsubscribed since: this old link is spent
        if req is None and row.status != "pending":
            return None
        values = dict(status="active", confirmed_at=now, unsubscribed_at=None, status_reason=None)
        if req is not None:
            values.update(mode=req["mode"], language=req["language"], topics=req["topics"])
        # A link mailed before sign-up requests existed names the row's own nonce: the row's choices.
        conn.execute(update(subscribers).where(subscribers.c.id == subscriber_id).values(**values))
        stats.bump(conn, stats.SUBSCRIBER, [(now, "", SubscriberEvent.CONFIRM)])
        # Every other link of this subscriber is spent too (it answers "already" while active).
        conn.execute(update(signup_requests).where(_REQ.subscriber_id == subscriber_id, _REQ.used_at.is_(None))
                     .values(used_at=now))
        return "confirmed"


def find(conn: Connection, subscriber_id: int, nonce: str) -> dict | None:
    """The sign-up request a confirmation link names, or None."""
    req = conn.execute(select(signup_requests).where(_REQ.subscriber_id == subscriber_id, _REQ.nonce == nonce)
                       ).mappings().first()
    return dict(req) if req else None


def pending_choices(engine: Engine, subscriber_id: int, nonce: str) -> dict | None:
    """The choices a confirmation link would activate (None when the link names no request)."""
    with engine.connect() as conn:
        return find(conn, subscriber_id, nonce)


def forget(conn: Connection, subscriber_id: int) -> None:
    """Drop a subscriber's sign-up requests (unsubscription, erasure): their links confirm nothing any more."""
    conn.execute(delete(signup_requests).where(_REQ.subscriber_id == subscriber_id))


def requests_of(engine: Engine, subscriber_id: int) -> list[dict]:
    """A subscriber's sign-up requests, oldest first (for the data export)."""
    with engine.connect() as conn:
        rows = conn.execute(select(_REQ.mode, _REQ.language, _REQ.topics, _REQ.created_at, _REQ.used_at)
                            .where(_REQ.subscriber_id == subscriber_id).order_by(_REQ.id)).mappings().all()
    return [dict(r) for r in rows]


def prune(engine: Engine, older_than: timedelta, now: datetime | None = None) -> int:
    """Forget sign-up requests older than every confirmation link can be; return rows removed."""
    cutoff = (now or utcnow()) - older_than
    with engine.begin() as conn:
        return conn.execute(delete(signup_requests).where(_REQ.created_at < cutoff)).rowcount
