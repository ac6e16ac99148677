"""The outbox: every database side effect of delivery (queue, claim, record, recover, report)."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timezone

from sqlalchemy import Engine, String, and_, bindparam, case, cast, func, literal, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite

from bot.models import DUE_STATES, FINAL_STATES, AlertState, ClaimedRow, DeliveryState, Outcome, SendOutcome, SubscriberEvent
from bot.store import stats, summary, summary_rebuild
# Claiming, leases and recovery live in bot/store/claims.py; re-exported for existing callers.
from bot.store.claims import claim, next_due, notify, recover  # noqa: F401
from bot.store.db import insert_count, utcnow
from bot.store.items import set_alert_state
from bot.store.limits import limited
from bot.store.schema import UTCDateTime, deliveries, digest_items, items, sources, subscribers
from bot.store.schema_summary import delivery_groups

D, S = deliveries.c, subscribers.c
RETRYABLE = (DeliveryState.FAILED, DeliveryState.RETRY)  # what an operator may send again
INSTANT_MODES = ("instant", "both")
_COLS = ["item_id", "channel", "recipient", "subscriber_id", "revision", "kind", "state", "attempts", "created_at", "next_attempt_at"]


def _insert(engine_or_conn):
    """The dialect's INSERT supporting ON CONFLICT DO NOTHING (SQLite and PostgreSQL)."""
    name = engine_or_conn.dialect.name
    return (postgresql.insert if name == "postgresql" else sqlite.insert)(deliveries)


def _inserted(conn, stmt) -> int:
    """Run an INSERT…SELECT and return the rows it inserted (PostgreSQL counts them in the server)."""
    if conn.dialect.name == "postgresql":
        return conn.execute(select(func.count()).select_from(stmt.returning(D.id).cte("inserted"))).scalar_one()
    return conn.execute(stmt).rowcount or 0


def _no_topics():
    # JSON '[]' (or NULL): such subscribers want everything, so the database can select them alone.
    return or_(S.topics.is_(None), cast(S.topics, String).in_(["[]", "null", ""]))


def instant_audience_sql(conn, item_id: int, revision: int, kind: str, now: datetime) -> int:
    """INSERT…SELECT one email row per active instant/both subscriber without topics or limits; rows inserted."""
    src = select(
        literal(item_id), literal("email"), cast(S.id, String), S.id, literal(revision), literal(kind),
        literal(DeliveryState.PENDING.value), literal(0), literal(now, UTCDateTime()), literal(now, UTCDateTime()),
    ).where(S.status == "active", S.mode.in_(INSTANT_MODES), _no_topics(), ~limited()).order_by(S.id)
    n = _inserted(conn, _insert(conn).from_select(_COLS, src).on_conflict_do_nothing())
    summary.queued(conn, (item_id, None, "email", revision), n, now)
    return n


def insert_rows(conn, rows: list[dict]) -> int:
    """Insert delivery rows, skipping ones that already exist (the unique key makes queueing idempotent).

    One statement per group and state, so the summary counts exactly the rows each one inserted."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        full = {"item_id": None, "digest_id": None, "revision": 0, "state": DeliveryState.PENDING, **r}
        groups[(summary.key_of(full), str(full["state"]))].append(full)
    total = 0
    for (key, state), batch in groups.items():
        n = insert_count(conn, _insert(conn).on_conflict_do_nothing(), batch, D.id)
        summary.queued(conn, key, n, max(r.get("created_at") or utcnow() for r in batch), state)
        total += n
    return total


def update_audience_sql(conn, item_id: int, revision: int, now: datetime) -> int:
    """Correction rows for everyone (every channel) whose original alert is not cancelled/failed.

    Recipients whose original row was compacted (older than `delivery.detail_days`) get none: a
    Telegram post (its row is never compacted) is still edited."""
    orig = deliveries.alias("orig")
    active_or_channel = or_(orig.c.subscriber_id.is_(None), S.status == "active")
    channels = conn.execute(select(delivery_groups.c.channel).where(
        delivery_groups.c.item_id == item_id, delivery_groups.c.revision == 0).order_by(delivery_groups.c.channel)).scalars().all()
    total = 0
    for channel in channels:  # one statement per channel: the summary counts each group's rows
        src = (
            select(literal(item_id), orig.c.channel, orig.c.recipient, orig.c.subscriber_id, literal(revision),
                   literal("update"), literal(DeliveryState.PENDING.value), literal(0), literal(now, UTCDateTime()), literal(now, UTCDateTime()))
            .select_from(orig.outerjoin(subscribers, S.id == orig.c.subscriber_id))
            .where(orig.c.item_id == item_id, orig.c.channel == channel, orig.c.revision == 0,
                   orig.c.state.not_in([DeliveryState.CANCELLED, DeliveryState.FAILED, DeliveryState.FOLDED]),
                   active_or_channel)
            .order_by(orig.c.id)
        )
        n = _inserted(conn, _insert(conn).from_select(_COLS, src).on_conflict_do_nothing())
        summary.queued(conn, (item_id, None, channel, revision), n, now)
        total += n
    return total


def load_item(conn, item_id: int) -> dict | None:
    """The item row as a dict, plus source_name, source_category and source_origin (renderer and topics)."""
    row = conn.execute(
        select(items, sources.c.name.label("source_name"), sources.c.category.label("source_category"),
               sources.c.origin.label("source_origin"))
        .select_from(items.join(sources, sources.c.id == items.c.source_id)).where(items.c.id == item_id)
    ).mappings().first()
    return dict(row) if row else None


# -- recording ----------------------------------------------------------------------------------------

def batch_context(engine: Engine, rows: list[ClaimedRow]) -> dict:
    """What composing a claimed batch needs, in one connection: items, originals of updates, digest items.

    Returns {"items": {item_id: item}, "originals": {(item_id, channel, recipient): (state, external_id)},
    "digests": {delivery_id: [item, ...]}} (digest and summary rows).
    """
    ctx: dict = {"items": {}, "originals": {}, "digests": {}}
    with engine.connect() as conn:
        for item_id in sorted({r["item_id"] for r in rows if r["item_id"] is not None}):
            ctx["items"][item_id] = load_item(conn, item_id)
        updates: dict[tuple[int, str], list[str]] = defaultdict(list)
        for r in rows:
            if r["kind"] == "update" and r["item_id"] is not None:
                updates[(r["item_id"], r["channel"])].append(r["recipient"])
        for (item_id, channel), recipients in updates.items():
            for i in range(0, len(recipients), 900):
                q = select(D.recipient, D.state, D.external_id).where(
                    D.item_id == item_id, D.channel == channel, D.revision == 0, D.recipient.in_(recipients[i:i + 900]))
                for o in conn.execute(q):
                    ctx["originals"][(item_id, channel, o.recipient)] = (o.state, o.external_id)
        ctx["digests"] = _digest_items(conn, [r["id"] for r in rows if r["kind"] in ("digest", "summary")])
    return ctx


def _digest_items(conn, delivery_ids: list[int]) -> dict[int, list[dict]]:
    """{delivery_id: its items in id order}; each distinct item is loaded once for the whole batch."""
    lists: dict[int, list[int]] = {d: [] for d in delivery_ids}
    for i in range(0, len(delivery_ids), 900):
        q = (select(digest_items.c.delivery_id, digest_items.c.item_id)
             .where(digest_items.c.delivery_id.in_(delivery_ids[i:i + 900])).order_by(digest_items.c.item_id))
        for d, item_id in conn.execute(q).all():  # fetched at once: cheaper per row than iterating the cursor
            lists[d].append(item_id)
    wanted = sorted({i for ids in lists.values() for i in ids})
    found: dict[int, dict] = {}
    for i in range(0, len(wanted), 900):
        q = (select(items, sources.c.name.label("source_name"), sources.c.category.label("source_category"),
                    sources.c.origin.label("source_origin"))
             .select_from(items.join(sources, sources.c.id == items.c.source_id)).where(items.c.id.in_(wanted[i:i + 900])))
        found.update({r["id"]: dict(r) for r in conn.execute(q).mappings()})
    return {d: [found[i] for i in ids if i in found] for d, ids in lists.items()}


_SET = update(deliveries).where(D.id == bindparam("_id"), D.state == DeliveryState.SENDING).values(
    state=bindparam("_state"), attempts=D.attempts + bindparam("_inc"),
    next_attempt_at=bindparam("_next", type_=UTCDateTime()), sent_at=bindparam("_sent", type_=UTCDateTime()),
    finished_at=bindparam("_fin", type_=UTCDateTime()), bounced=bindparam("_bounced"),
    external_id=func.coalesce(bindparam("_ext", type_=String()), D.external_id),
    # An earlier attempt's error stays visible on a row that is merely released or later sent.
    last_error=func.coalesce(bindparam("_error", type_=String()), D.last_error),
)


# PostgreSQL: the same writes as _SET in one statement of nine array parameters, whatever the batch.
_SET_PG = text(
    "UPDATE deliveries SET state = v.state, attempts = deliveries.attempts + v.inc, next_attempt_at = v.next, "
    "sent_at = v.sent, finished_at = v.fin, bounced = v.bounced, "
    "external_id = coalesce(v.ext, deliveries.external_id), last_error = coalesce(v.error, deliveries.last_error) "
    "FROM unnest(CAST(:ids AS integer[]), CAST(:states AS varchar[]), CAST(:incs AS integer[]), "
    "CAST(:nexts AS timestamp[]), CAST(:sents AS timestamp[]), CAST(:fins AS timestamp[]), "
    "CAST(:bounced AS boolean[]), CAST(:exts AS text[]), CAST(:errors AS text[])) "
    "AS v(id, state, inc, next, sent, fin, bounced, ext, error) WHERE deliveries.id = v.id AND deliveries.state = 'sending'")


def _naive(when: datetime | None) -> datetime | None:
    return when.astimezone(timezone.utc).replace(tzinfo=None) if when is not None else None


def _set_from_arrays(params: list[dict]) -> dict:
    return {"ids": [p["_id"] for p in params], "states": [str(p["_state"]) for p in params],
            "incs": [p["_inc"] for p in params], "nexts": [_naive(p["_next"]) for p in params],
            "sents": [_naive(p["_sent"]) for p in params], "fins": [_naive(p["_fin"]) for p in params],
            "bounced": [p["_bounced"] for p in params], "exts": [p["_ext"] for p in params],
            "errors": [p["_error"] for p in params]}


def record(engine: Engine, results: list[Outcome], bounce_limit: int, now: datetime | None = None) -> list[int]:
    """Write a batch of outcomes in one transaction; returns subscriber ids suppressed by this batch.

    Each result: id, state, inc (attempts to add), error, next, sent, ext, its group (item_id, digest_id,
    channel, revision: the summary and the latency trail) and optionally bounce_subscriber (a hard
    bounce to count). Only rows still `sending` (claimed) change. Final rows get finished_at (their
    sent time, else `now`), and sends, failures and bounces are counted in the stats table.
    """
    if not results:
        return []
    now = now or utcnow()
    params = [{"_id": r["id"], "_state": r["state"], "_inc": r.get("inc", 0), "_error": r.get("error"),
               "_next": r.get("next"), "_sent": r.get("sent"), "_ext": r.get("ext"),
               "_fin": (r.get("sent") or now) if r["state"] in FINAL_STATES else None,
               "_bounced": bool(r.get("bounce_subscriber"))} for r in results]
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":  # one statement, one round trip, for the batch
            changed = conn.execute(_SET_PG, _set_from_arrays(params)).rowcount
        else:
            changed = conn.execute(_SET, params).rowcount
        keys = summary.keys_of(conn, [r["id"] for r in results])
        if changed == len(results) == len(keys):
            summary.recorded(conn, results, keys, [p["_fin"] for p in params])
        else:  # one of them was not `sending` (another process changed it meanwhile): recount their groups
            summary_rebuild.rebuild(conn, {summary.subject(k[0], k[1]) for k in keys.values()})
        stats.bump(conn, stats.DELIVERY, ((p["_fin"], r["channel"], _outcome(r)) for p, r in zip(params, results)
                                          if r["state"] in (DeliveryState.SENT, DeliveryState.FAILED)))
        _latency(conn, [r for r in results if r["state"] == DeliveryState.SENT and r.get("item_id")])
        bounced = [r for r in results if r.get("bounce_subscriber")]
        return _bounces(conn, bounced, bounce_limit, now) if bounced else []


def _outcome(r: Outcome) -> SendOutcome:
    if r["state"] == DeliveryState.SENT:
        return SendOutcome.SENT
    return SendOutcome.BOUNCED if r.get("bounce_subscriber") else SendOutcome.FAILED


def _latency(conn, sent: list[dict]) -> None:
    per: dict[tuple[int, str], list[datetime]] = defaultdict(list)
    for r in sent:
        per[(r["item_id"], r["channel"])].append(r["sent"])
    for (item_id, channel), times in sorted(per.items()):  # items locked in id order by every worker
        first, last = min(times), max(times)
        if channel == "telegram":
            values = {"first_telegram_at": func.coalesce(items.c.first_telegram_at, literal(first, UTCDateTime()))}
        else:
            later = case((or_(items.c.last_email_at.is_(None), items.c.last_email_at < literal(last, UTCDateTime())),
                          literal(last, UTCDateTime())), else_=items.c.last_email_at)
            values = {"first_email_at": func.coalesce(items.c.first_email_at, literal(first, UTCDateTime())), "last_email_at": later}
        conn.execute(update(items).where(items.c.id == item_id).values(**values))


def _bounces(conn, bounced: list[dict], limit: int, now: datetime) -> list[int]:
    for r in bounced:
        conn.execute(update(subscribers).where(S.id == r["bounce_subscriber"]).values(bounces=S.bounces + 1, last_error=r.get("error")))
    ids = sorted({r["bounce_subscriber"] for r in bounced})
    over = [row[0] for row in conn.execute(select(S.id).where(S.id.in_(ids), S.bounces >= limit, S.status == "active"))]
    if over:
        conn.execute(update(subscribers).where(S.id.in_(over)).values(status="suppressed"))
        stats.bump(conn, stats.SUBSCRIBER, [(now, "", SubscriberEvent.SUPPRESS)], n=len(over))
        summary.move(conn, D.subscriber_id.in_(over), DUE_STATES, state=DeliveryState.CANCELLED, finished_at=now,
                     last_error="subscriber suppressed after hard bounces")
    return over


# -- operator helpers ------------------------------------------------------------------------------

def cancel_item(engine: Engine, item_id: int) -> int:
    """Stop an alert: the item is marked cancelled and its unsent rows cancelled; returns rows cancelled."""
    with engine.begin() as conn:
        set_alert_state(conn, item_id, AlertState.CANCELLED)
        return summary.move(conn, D.item_id == item_id, DUE_STATES, state=DeliveryState.CANCELLED, finished_at=utcnow(),
                            last_error="alert cancelled by an operator")


def retry_deliveries(engine: Engine, ids: Iterable[int]) -> int:
    """Put failed (or waiting retry) rows back in the queue now, attempts reset; returns rows requeued.

    Cancelled rows stay cancelled (they were stopped for a reason), and a message to someone who has
    since left is never revived. The CLI and the dashboard both call this one rule.
    """
    ids = list(ids)
    if not ids:
        return 0
    left = select(S.id).where(S.status != "active")
    with engine.begin() as conn:
        n = summary.move(conn, and_(D.id.in_(ids), or_(D.subscriber_id.is_(None), ~D.subscriber_id.in_(left))),
                         RETRYABLE, state=DeliveryState.PENDING, attempts=0, next_attempt_at=utcnow(), finished_at=None,
                         bounced=False)
        notify(conn)
        return n
