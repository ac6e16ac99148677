"""WebSub subscription state, kept on the `sources` row (hub, topic, secret, state, lease)."""
from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from sqlalchemy import Engine, and_, or_, select, update

from bot.store.schema import sources

# While a subscription request waits for the hub's verification, websub_lease_until holds the
# moment after which it is considered lost and sent again.
PENDING_TIMEOUT = timedelta(minutes=5)


def get_source(engine: Engine, source_id: int) -> dict | None:
    """The source row, or None."""
    with engine.connect() as conn:
        row = conn.execute(select(sources).where(sources.c.id == source_id)).first()
    return dict(row._mapping) if row else None


def note_hub(engine: Engine, source_id: int, hub_url: str, topic_url: str) -> bool:
    """Remember the hub a feed declares; True when it is new or changed (a subscription is needed)."""
    with engine.begin() as conn:
        row = conn.execute(select(sources.c.hub_url, sources.c.topic_url).where(sources.c.id == source_id)).first()
        if row is None or (row.hub_url, row.topic_url) == (hub_url, topic_url):
            return False
        # A new subscription gets a new secret callback URL.
        conn.execute(update(sources).where(sources.c.id == source_id).values(
            hub_url=hub_url, topic_url=topic_url, websub_state=None, websub_lease_until=None,
            websub_callback=new_callback()))
        return True


def new_callback() -> str:
    """A fresh unguessable callback path segment (192 random bits)."""
    return secrets.token_urlsafe(24)


def start(engine: Engine, source_id: int, secret: str, state: str, now: datetime, callback: str) -> None:
    """A (un)subscription request is being sent: store its secrets and wait for verification."""
    with engine.begin() as conn:
        conn.execute(update(sources).where(sources.c.id == source_id).values(
            websub_secret=secret, websub_callback=callback, websub_state=state,
            websub_lease_until=now + PENDING_TIMEOUT))


def verified(engine: Engine, source_id: int, state: str, lease_until: datetime | None,
             expected: str | None = None) -> bool:
    """The hub verified our intent (state 'active' or 'unsubscribed'); with `expected`, only from that state."""
    q = update(sources).where(sources.c.id == source_id)
    if expected is not None:
        q = q.where(sources.c.websub_state == expected)  # two racing verifications: one wins
    with engine.begin() as conn:
        return conn.execute(q.values(websub_state=state, websub_lease_until=lease_until)).rowcount == 1


def denied(engine: Engine, source_id: int, reason: str | None, states: tuple[str, ...] = ("pending", "active")) -> bool:
    """The hub refused (or revoked) the subscription; polling goes on at the normal interval.

    Only from `states`: a subscription we never asked for, or are leaving, cannot be "denied"."""
    with engine.begin() as conn:
        res = conn.execute(update(sources).where(sources.c.id == source_id, sources.c.websub_state.in_(states))
                           .values(websub_state="denied", websub_lease_until=None,
                                   last_error=f"WebSub hub denied: {reason or 'no reason'}"))
    return res.rowcount == 1


def failed(engine: Engine, source_id: int, now: datetime, retry_in: timedelta) -> None:
    """The hub could not be reached; try again after `retry_in`."""
    with engine.begin() as conn:
        conn.execute(update(sources).where(sources.c.id == source_id).values(
            websub_state="error", websub_lease_until=now + retry_in))


def needing_subscription(engine: Engine, now: datetime, margin: timedelta) -> list[dict]:
    """Sources with a hub that need a (re)subscription: never subscribed, lease ending, request lost."""
    c = sources.c
    due = or_(
        c.websub_state.is_(None),
        and_(c.websub_state == "active", c.websub_lease_until.is_not(None), c.websub_lease_until <= now + margin),
        # A request the hub never verified, or a hub that failed: retried once its wait is over.
        and_(c.websub_state.in_(("pending", "unsubscribing", "error")), c.websub_lease_until.is_not(None),
             c.websub_lease_until <= now),
        and_(c.websub_state == "active", c.websub_lease_until.is_(None)),
    )
    q = select(sources).where(c.hub_url.is_not(None), c.topic_url.is_not(None), c.paused.is_(False), due)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(q)]