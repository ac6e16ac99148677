"""What a bounce, complaint or mailto unsubscribe does: the delivery's outcome and the subscriber's status.

Every function here runs inside the caller's transaction (the same one that marks the received mail
processed), so an effect and "processed" are committed together or not at all: a crash in between
makes the mail be processed again, and the outcome's one-way order makes it count once.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, func, or_, select, update

from bot.models import DUE_STATES, OUTCOME_RANK, BounceKind, DeliveryOutcome, DeliveryState, InboundState
from bot.store.bounces import bump
from bot.store.schema import bounce_mails, deliveries, subscribers

D, S, B = deliveries.c, subscribers.c, bounce_mails.c
OUTCOME = {BounceKind.HARD: DeliveryOutcome.BOUNCED, BounceKind.SOFT: DeliveryOutcome.SOFT_BOUNCED,
           BounceKind.COMPLAINT: DeliveryOutcome.COMPLAINED}


@dataclass
class Limits:
    """The thresholds: delivery.bounce_limit, bounces.soft_limit, bounces.soft_window_days."""

    hard: int
    soft: int
    soft_window_days: float


def delivery(conn, delivery_id: int) -> dict | None:
    """An email delivery row with its subscriber's address, status and nonce."""
    q = (select(D.id, D.subscriber_id, D.state, D.outcome, D.channel, S.email, S.status, S.token_nonce)
         .select_from(deliveries.outerjoin(subscribers, S.id == D.subscriber_id)).where(D.id == delivery_id))
    row = conn.execute(q).mappings().first()
    return dict(row) if row else None


def subscriber(conn, subscriber_id: int | None = None, email: str | None = None) -> dict | None:
    """A subscriber by id or address: id, email, status, token_nonce."""
    where = S.id == subscriber_id if subscriber_id is not None else S.email == (email or "").lower()
    row = conn.execute(select(S.id, S.email, S.status, S.token_nonce).where(where)).mappings().first()
    return dict(row) if row else None


def find_delivery(conn, subscriber_id: int, message_id: str | None) -> dict | None:
    """The subscriber's email delivery with this Message-ID, else (no Message-ID given) its latest sent one."""
    q = select(D.id).where(D.subscriber_id == subscriber_id, D.channel == "email")
    if message_id:
        q = q.where(D.external_id == message_id.strip())
    else:
        q = q.where(D.state == DeliveryState.SENT).order_by(D.sent_at.desc(), D.id.desc())
    found = conn.execute(q.limit(1)).scalar()
    return delivery(conn, found) if found is not None else None


def _cancel_due(conn, subscriber_id: int, why: str) -> None:
    conn.execute(update(deliveries).where(D.subscriber_id == subscriber_id, D.state.in_(DUE_STATES))
                 .values(state=DeliveryState.CANCELLED, last_error=why, next_attempt_at=None))


def suppress(conn, subscriber_id: int, reason: str, counter: str) -> bool:
    """Active → suppressed with the reason; queued mail cancelled. False if it was not active."""
    res = conn.execute(update(subscribers).where(S.id == subscriber_id, S.status == "active")
                       .values(status="suppressed", status_reason=reason[:500]))
    if res.rowcount != 1:
        return False
    _cancel_due(conn, subscriber_id, "subscriber suppressed after bounces")
    bump(conn, f"suppressed:{counter}")
    return True


def unsubscribe(conn, subscriber_id: int, reason: str, counter: str, now: datetime) -> bool:
    """Active or pending → unsubscribed at once with the reason; nonce rotated (old links die), queue cancelled."""
    import secrets

    res = conn.execute(update(subscribers).where(S.id == subscriber_id, S.status.in_(["active", "pending"]))
                       .values(status="unsubscribed", unsubscribed_at=now, status_reason=reason[:500],
                               token_nonce=secrets.token_hex(8)))
    if res.rowcount != 1:
        return False
    _cancel_due(conn, subscriber_id, "subscriber left")
    bump(conn, f"unsubscribed:{counter}")
    return True


def record(conn, kind: BounceKind, sub_id: int, dlv: dict | None, status: str | None, diagnostic: str | None,
           how: str, limits: Limits, now: datetime) -> str:
    """Apply a hard/soft bounce or a complaint; returns the note saying what it did."""
    if dlv is not None:
        outcome = OUTCOME[kind]
        lower = [o for o, rank in OUTCOME_RANK.items() if o is not None and rank < OUTCOME_RANK[outcome]]
        res = conn.execute(update(deliveries).where(D.id == dlv["id"], or_(D.outcome.is_(None), D.outcome.in_(lower)))
                           .values(outcome=outcome, outcome_at=now, diagnostic=(diagnostic or status or how)[:1000]))
        if res.rowcount != 1:
            return f"already counted: delivery {dlv['id']} is already {dlv['outcome'] or outcome}"
    what = f"{status or ''} {diagnostic or ''}".strip()[:300] or how
    if kind == BounceKind.COMPLAINT:
        done = unsubscribe(conn, sub_id, f"spam complaint ({how}): {what}", "complaint", now)
        return "complaint: unsubscribed" if done else "complaint recorded (subscriber was not active)"
    if kind == BounceKind.HARD:
        if dlv is not None and dlv["state"] == DeliveryState.FAILED:
            return "hard bounce recorded (already counted when the server refused it)"
        conn.execute(update(subscribers).where(S.id == sub_id).values(bounces=S.bounces + 1, last_error=what))
        n = conn.execute(select(S.bounces).where(S.id == sub_id)).scalar_one()
        if n >= limits.hard and suppress(conn, sub_id, f"{n} hard bounce(s); last: {what}", "hard"):
            return f"hard bounce {n}/{limits.hard}: suppressed"
        return f"hard bounce {n}/{limits.hard}"
    n = soft_count(conn, sub_id, now - timedelta(days=limits.soft_window_days)) + (0 if dlv is not None else 1)
    if n >= limits.soft and suppress(conn, sub_id, f"{n} soft bounces within {limits.soft_window_days:g} days; last: {what}", "soft"):
        return f"soft bounce {n}/{limits.soft}: suppressed"
    return f"soft bounce {n}/{limits.soft} within {limits.soft_window_days:g} days"


def soft_count(conn, sub_id: int, since: datetime) -> int:
    """Soft bounces of a subscriber since `since`: deliveries marked soft-bounced, plus provider events
    that named no delivery (each such event is one stored row)."""
    on_rows = conn.execute(select(func.count()).select_from(deliveries).where(
        D.subscriber_id == sub_id, D.outcome == DeliveryOutcome.SOFT_BOUNCED, D.outcome_at >= since)).scalar_one()
    loose = conn.execute(select(func.count()).select_from(bounce_mails).where(and_(
        B.subscriber_id == sub_id, B.delivery_id.is_(None), B.kind == BounceKind.SOFT,
        B.state == InboundState.PROCESSED, B.processed_at >= since))).scalar_one()
    return on_rows + loose
