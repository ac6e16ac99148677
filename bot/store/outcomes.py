"""What a bounce, complaint or mailto unsubscribe does: the delivery's outcome and the subscriber's status.

Every function here runs inside the caller's transaction (the same one that marks the received mail
processed), so an effect and "processed" are committed together or not at all: a crash in between
makes the mail be processed again, and the outcome's one-way order makes it count once. Statements
are built once (module constants with bind parameters): the processor runs them thousands of times
a second, and SQLAlchemy then reuses their compiled form.
"""
from __future__ import annotations

import secrets
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, bindparam, func, or_, select, update

from bot.models import DUE_STATES, OUTCOME_RANK, BounceKind, DeliveryOutcome, DeliveryState, InboundState, SubscriberEvent
from bot.store import signups, stats, summary
from bot.store.schema import bounce_mails, deliveries, subscribers
from bot.store.schema_summary import delivery_counts, delivery_groups, subscriber_counts

D, S, B = deliveries.c, subscribers.c, bounce_mails.c
G, C, SC = delivery_groups.c, delivery_counts.c, subscriber_counts.c
OUTCOME = {BounceKind.HARD: DeliveryOutcome.BOUNCED, BounceKind.SOFT: DeliveryOutcome.SOFT_BOUNCED,
           BounceKind.COMPLAINT: DeliveryOutcome.COMPLAINED}
_SUBSCRIBER_COLUMNS = (S.id, S.email, S.status, S.token_nonce)

_DELIVERY = (select(D.id, D.subscriber_id, D.state, D.outcome, D.channel, D.item_id, D.digest_id, D.revision, D.bounced,
                    S.email, S.status, S.token_nonce)
             .select_from(deliveries.outerjoin(subscribers, S.id == D.subscriber_id)).where(D.id == bindparam("id")))
_SUBSCRIBER_BY_ID = select(*_SUBSCRIBER_COLUMNS).where(S.id == bindparam("id"))
_SUBSCRIBER_BY_EMAIL = select(*_SUBSCRIBER_COLUMNS).where(S.email == bindparam("email"))
_BY_MESSAGE_ID = select(D.id).where(D.subscriber_id == bindparam("sid"), D.channel == "email",
                                    D.external_id == bindparam("mid")).limit(1)
_LATEST_SENT = (select(D.id).where(D.subscriber_id == bindparam("sid"), D.channel == "email", D.state == DeliveryState.SENT)
                .order_by(D.sent_at.desc(), D.id.desc()).limit(1))
_STATUS = select(S.status).where(S.id == bindparam("sid"))
_SUPPRESS = (update(subscribers).where(S.id == bindparam("sid"), S.status == "active")
             .values(status="suppressed", status_reason=bindparam("reason")))
_UNSUBSCRIBE = (update(subscribers).where(S.id == bindparam("sid"), S.status.in_(["active", "pending"]))
                .values(status="unsubscribed", unsubscribed_at=bindparam("at"), status_reason=bindparam("reason"),
                        token_nonce=bindparam("nonce")))
_SET_OUTCOME = (update(deliveries).where(D.id == bindparam("did"), or_(D.outcome.is_(None), D.outcome.in_(bindparam("lower", expanding=True))))
                .values(outcome=bindparam("new_outcome"), outcome_at=bindparam("at"), diagnostic=bindparam("diag")))
_HARD = (update(subscribers).where(S.id == bindparam("sid"))
         .values(bounces=S.bounces + 1, last_error=bindparam("error")).returning(S.bounces))
_SOFT_ON_ROWS = select(func.count()).select_from(deliveries).where(
    D.subscriber_id == bindparam("sid"), D.outcome == DeliveryOutcome.SOFT_BOUNCED, D.outcome_at >= bindparam("since"))
_SOFT_LOOSE = select(func.count()).select_from(bounce_mails).where(and_(
    B.subscriber_id == bindparam("sid"), B.delivery_id.is_(None), B.kind == BounceKind.SOFT,
    B.state == InboundState.PROCESSED, B.processed_at >= bindparam("since")))


@dataclass
class Limits:
    """The thresholds: delivery.bounce_limit, bounces.soft_limit, bounces.soft_window_days."""

    hard: int
    soft: int
    soft_window_days: float


def delivery(conn, delivery_id: int) -> dict | None:
    """An email delivery row with its subscriber's address, status and nonce."""
    row = conn.execute(_DELIVERY, {"id": delivery_id}).mappings().first()
    return dict(row) if row else None


def subscriber(conn, subscriber_id: int | None = None, email: str | None = None) -> dict | None:
    """A subscriber by id or address: id, email, status, token_nonce."""
    if subscriber_id is not None:
        row = conn.execute(_SUBSCRIBER_BY_ID, {"id": subscriber_id}).mappings().first()
    else:
        row = conn.execute(_SUBSCRIBER_BY_EMAIL, {"email": (email or "").lower()}).mappings().first()
    return dict(row) if row else None


def find_delivery(conn, subscriber_id: int, message_id: str | None) -> dict | None:
    """The subscriber's email delivery with this Message-ID, else (no Message-ID given) its latest sent one."""
    if message_id:
        found = conn.execute(_BY_MESSAGE_ID, {"sid": subscriber_id, "mid": message_id.strip()}).scalar()
    else:
        found = conn.execute(_LATEST_SENT, {"sid": subscriber_id}).scalar()
    return delivery(conn, found) if found is not None else None


def matches(dlv: dict | None, ref) -> bool:
    """Whether a live row is the message a return path names (`ref`: a bot.tokens.BounceRef): same subscriber
    and group. A row compacted away may have left its id to another (SQLite reuses the highest id)."""
    return dlv is not None and (ref.subscriber_id is None or (
        dlv["subscriber_id"] == ref.subscriber_id and dlv["channel"] == "email" and dlv["item_id"] == ref.item_id
        and dlv["digest_id"] == ref.digest_id and (dlv["revision"] or 0) == ref.revision))


def revive(conn, ref) -> dict | None:
    """The row of a message a return path names whose row compaction deleted (`ref`: a BounceRef carrying
    its subscriber and group): its live row if one was brought back before, else the row brought back —
    sent, its group's compacted count and the subscriber's counter giving it back, so no number
    changes. None when nothing of it is left (its alert pruned, nothing compacted, the subscriber erased)."""
    key, sid = (ref.item_id, ref.digest_id, "email", ref.revision), ref.subscriber_id
    same = [D.item_id == ref.item_id, D.revision == ref.revision] if ref.item_id is not None else [D.digest_id == ref.digest_id]
    if ref.item_id is not None or ref.digest_id is not None:  # summary mails have no unique key
        found = conn.execute(select(D.id).where(*same, D.channel == "email", D.recipient == str(sid))).scalar()
        if found is not None:
            return delivery(conn, found)
    group = conn.execute(select(G.id, G.created_at).join(delivery_counts, C.group_id == G.id).where(
        G.subject == summary.subject(ref.item_id, ref.digest_id), G.channel == "email", G.revision == ref.revision,
        C.state == DeliveryState.SENT, C.outcome == "", C.compacted > 0)).first()
    person = subscriber(conn, sid)
    if group is None or person is None or not person["email"]:
        return None
    taken = conn.execute(select(D.id).where(D.id == ref.delivery_id)).scalar() is not None
    kind = "summary" if key[:2] == (None, None) else "digest" if ref.digest_id is not None else "update" if ref.revision else "alert"
    row = conn.execute(deliveries.insert().values(
        **({} if taken else {"id": ref.delivery_id}), item_id=ref.item_id, digest_id=ref.digest_id, channel="email",
        recipient=str(sid), subscriber_id=sid, revision=ref.revision, kind=kind, state=DeliveryState.SENT, attempts=1,
        created_at=group.created_at)).inserted_primary_key[0]
    summary.add(conn, {}, {(group.id, summary.part_of(DeliveryState.SENT)): -1})  # counted live again, not twice
    conn.execute(update(subscriber_counts).where(SC.subscriber_id == sid, SC.state == DeliveryState.SENT, SC.n > 0)
                 .values(n=SC.n - 1))
    return delivery(conn, row)


def _cancel_due(conn, subscriber_id: int, why: str, now: datetime) -> None:
    # Queued mail never goes out after this; the delivery summary follows the rows (bot/store/summary.py).
    summary.move(conn, D.subscriber_id == subscriber_id, DUE_STATES, state=DeliveryState.CANCELLED, last_error=why,
                 next_attempt_at=None, finished_at=now)


def suppress(conn, subscriber_id: int, reason: str, counter: str, now: datetime, tally: Counter) -> bool:
    """Active → suppressed with the reason; queued mail cancelled. False if it was not active."""
    if conn.execute(_SUPPRESS, {"sid": subscriber_id, "reason": reason[:500]}).rowcount != 1:
        return False
    _cancel_due(conn, subscriber_id, "subscriber suppressed after bounces", now)
    tally[f"suppressed:{counter}"] += 1
    return True


def unsubscribe(conn, subscriber_id: int, reason: str, counter: str, now: datetime, tally: Counter) -> bool:
    """Active or pending → unsubscribed at once with the reason; nonce rotated and sign-up requests
    dropped (old links die), queue cancelled."""
    was = conn.execute(_STATUS, {"sid": subscriber_id}).scalar()
    res = conn.execute(_UNSUBSCRIBE, {"sid": subscriber_id, "at": now, "reason": reason[:500], "nonce": secrets.token_hex(8)})
    if res.rowcount != 1:
        return False
    _cancel_due(conn, subscriber_id, "subscriber left", now)
    signups.forget(conn, subscriber_id)  # a confirmation link mailed before must not subscribe them again
    tally[f"unsubscribed:{counter}"] += 1
    if was == "active":  # the subscribers chart counts departures of active subscribers (bot.store.subscribers)
        tally[f"{_EVENT}{SubscriberEvent.UNSUBSCRIBE}"] += 1
    return True


_EVENT, _BOUNCE = "event:", "bounce:"  # tally keys written to the stats table, not to the counters


def count(conn, tally: Counter, now: datetime) -> None:
    """Move a batch's stats out of `tally` into the stats table (same transaction): the subscribers chart's
    suppressions and departures, and the bounces per kind the bounces page charts per day."""
    events = {k: tally.pop(k) for k in [k for k in tally if k.startswith(_EVENT)]}
    bounces = {k: tally.pop(k) for k in [k for k in tally if k.startswith(_BOUNCE)]}
    events[f"{_EVENT}{SubscriberEvent.SUPPRESS}"] = sum(n for k, n in tally.items() if k.startswith("suppressed:"))
    bucket = stats.bucket_of(now)
    stats.add(conn, stats.SUBSCRIBER, {(bucket, "", k.removeprefix(_EVENT)): n for k, n in events.items()})
    stats.add(conn, stats.BOUNCE, {(bucket, "", k.removeprefix(_BOUNCE)): n for k, n in bounces.items()})


def record(conn, kind: BounceKind, sub_id: int, dlv: dict | None, status: str | None, diagnostic: str | None,
           how: str, limits: Limits, now: datetime, tally: Counter) -> str:
    """Apply a hard/soft bounce or a complaint; returns the note saying what it did (counters go to `tally`)."""
    if dlv is not None:
        outcome = OUTCOME[kind]
        lower = [o for o, rank in OUTCOME_RANK.items() if o is not None and rank < OUTCOME_RANK[outcome]]
        res = conn.execute(_SET_OUTCOME, {"did": dlv["id"], "lower": lower, "new_outcome": outcome, "at": now,
                                          "diag": (diagnostic or status or how)[:1000]})
        if res.rowcount != 1:
            return f"already counted: delivery {dlv['id']} is already {dlv['outcome'] or outcome}"
        # Its alert's counts per outcome follow (bot/store/summary.py: the same before and after compaction).
        summary.moved(conn, {(summary.key_of(dlv), summary.part_of(dlv["state"], dlv["bounced"], dlv["outcome"]),
                              summary.part_of(dlv["state"], dlv["bounced"], outcome)): 1})
    tally[f"{_BOUNCE}{kind}"] += 1
    what = f"{status or ''} {diagnostic or ''}".strip()[:300] or how
    if kind == BounceKind.COMPLAINT:
        done = unsubscribe(conn, sub_id, f"spam complaint ({how}): {what}", "complaint", now, tally)
        return "complaint: unsubscribed" if done else "complaint recorded (subscriber was not active)"
    if kind == BounceKind.HARD:
        if dlv is not None and dlv["state"] == DeliveryState.FAILED:
            return "hard bounce recorded (already counted when the server refused it)"
        n = conn.execute(_HARD, {"sid": sub_id, "error": what}).scalar_one()
        if n >= limits.hard and suppress(conn, sub_id, f"{n} hard bounce(s); last: {what}", "hard", now, tally):
            return f"hard bounce {n}/{limits.hard}: suppressed"
        return f"hard bounce {n}/{limits.hard}"
    n = soft_count(conn, sub_id, now - timedelta(days=limits.soft_window_days)) + (0 if dlv is not None else 1)
    if n >= limits.soft and suppress(conn, sub_id, f"{n} soft bounces within {limits.soft_window_days:g} days; last: {what}",
                                     "soft", now, tally):
        return f"soft bounce {n}/{limits.soft}: suppressed"
    return f"soft bounce {n}/{limits.soft} within {limits.soft_window_days:g} days"


def soft_count(conn, sub_id: int, since: datetime) -> int:
    """Soft bounces of a subscriber since `since`: deliveries marked soft-bounced, plus provider events
    that named no delivery (each such event is one stored row)."""
    params = {"sid": sub_id, "since": since}
    return conn.execute(_SOFT_ON_ROWS, params).scalar_one() + conn.execute(_SOFT_LOOSE, params).scalar_one()
