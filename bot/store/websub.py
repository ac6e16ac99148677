"""WebSub subscription state, kept on the `sources` row (hub, topic, secret, state, lease)."""
from __future__ import annotations

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
        conn.execute(update(sources).where(sources.c.id == source_id).values(
            hub_url=hub_url, topic_url=topic_url, websub_state=None, websub_lease_until=None))
        return True


def start(engine: Engine, source_id: int, secret: str, state: str, now: datetime) -> None:
    """A (un)subscription request is being sent: store its secret and wait for verification."""
    with engine.begin() as conn:
        conn.execute(update(sources).where(sources.c.id == source_id).values(
            websub_secret=secret, websub_state=state, websub_lease_until=now + PENDING_TIMEOUT))


def verified(engine: Engine, source_id: int, state: str, lease_until: datetime | None) -> None:
    """The hub verified our intent (state 'active' or 'unsubscribed')."""
    with engine.begin() as conn:
        conn.execute(update(sources).where(sources.c.id == source_id).values(
            websub_state=state, websub_lease_until=lease_until))


def denied(engine: Engine, source_id: int, reason: str | None) -> None:
    """The hub refused the subscription; polling goes on at the normal interval."""
    with engine.begin() as conn:
        conn.execute(update(sources).where(sources.c.id == source_id).values(
            websub_state="denied", websub_lease_until=None, last_error=f"WebSub hub denied: {reason or 'no reason'}"))


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