"""Operator reads of the delivery log: counts per alert (from the summary, never a count of the log),
the failures lists (small partial indexes) and the per-alert view (/admin/items/{id})."""
from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import Engine, func, select

from bot.models import DeliveryState
from bot.store.schema import deliveries, items, sources, subscribers
from bot.store.schema_summary import delivery_counts, delivery_groups
from bot.store.summary import LATENCY_BOUNDS

D, G, C, S = deliveries.c, delivery_groups.c, delivery_counts.c, subscribers.c
RETRYABLE = (DeliveryState.FAILED, DeliveryState.RETRY)
PERCENTILES = (50, 90, 99)


def chat_rows(conn, since: datetime | None = None, item_id: int | None = None) -> list:
    """(item_id, revision, channel, chat, state, n) of the rows addressed to a chat, not a subscriber (one per
    alert, correction and Telegram chat, never compacted before retention), through the subscriber index."""
    # Every filter but subscriber_id goes through coalesce(): without statistics SQLite's planner would
    # take a unique index led by item_id or digest_id, reading every recipient row of an alert (or of
    # the whole log) to find the few rows without a subscriber.
    where = [D.subscriber_id.is_(None), func.coalesce(D.digest_id, 0) == 0, func.coalesce(D.item_id, 0) != 0]
    if since is not None:
        where.append(D.created_at >= since)
    if item_id is not None:
        where.append(func.coalesce(D.item_id, 0) == item_id)
    q = (select(D.item_id, D.revision, D.channel, D.recipient, D.state, func.count())
         .where(*where).group_by(D.item_id, D.revision, D.channel, D.recipient, D.state))
    return conn.execute(q).all()


def counts(engine: Engine, since: datetime | None = None, item_id: int | None = None) -> list[dict]:
    """Rows per (item or digest, channel, state): item_id, digest_id, title, channel, state, count.

    `since` keeps the alerts, corrections and digest runs queued since then. A broadcast channel's rows
    are counted per chat, "telegram @chat"."""
    q = (select(G.item_id, G.digest_id, items.c.title, G.channel, C.state, func.sum(C.n).label("count"))
         .select_from(delivery_groups.join(delivery_counts, C.group_id == G.id).outerjoin(items, items.c.id == G.item_id))
         .where(C.n > 0).group_by(G.item_id, G.digest_id, items.c.title, G.channel, C.state))
    if since is not None:
        q = q.where(G.created_at >= since)
    if item_id is not None:
        q = q.where(G.item_id == item_id)
    with engine.connect() as conn:
        rows = {(r["item_id"], r["digest_id"], r["channel"], r["state"]): dict(r) for r in conn.execute(q).mappings()}
        for item, _rev, channel, chat, state, n in chat_rows(conn, since, item_id):  # corrections of a post add up per chat
            whole = rows.get((item, None, channel, state))
            if whole is not None:
                whole["count"] -= n
                label = f"{channel} {chat}"
                rows.setdefault((item, None, label, state), {**whole, "channel": label, "count": 0})["count"] += n
    out = [r for r in rows.values() if r["count"] > 0]
    return sorted(out, key=lambda r: (-(r["item_id"] or 0), -(r["digest_id"] or 0), r["channel"], r["state"]))


def item_counts(conn, item_id: int) -> list[dict]:
    """One item's deliveries per channel, chat (broadcast channels), revision and state: channel, chat,
    revision, state, n (from the summary; the chats' split from their own rows)."""
    q = (select(G.channel, G.revision, C.state, func.sum(C.n)).join(delivery_counts, C.group_id == G.id)
         .where(G.item_id == item_id, C.n > 0).group_by(G.channel, G.revision, C.state))
    rows = {(channel, "", rev, state): {"channel": channel, "chat": "", "revision": rev, "state": state, "n": int(n)}
            for channel, rev, state, n in conn.execute(q)}
    for _item, rev, channel, chat, state, n in chat_rows(conn, item_id=item_id):
        whole = rows.get((channel, "", rev, state))
        if whole is not None:
            whole["n"] -= n
            rows[(channel, chat, rev, state)] = {**whole, "chat": chat, "n": n}
    return [r for _, r in sorted(rows.items()) if r["n"] > 0]


def by_channel(engine: Engine, since: datetime | None = None) -> dict[str, dict[str, int]]:
    """{channel: {state: n}} of the groups queued since `since` (all when None)."""
    q = (select(G.channel, C.state, func.sum(C.n)).join(delivery_counts, C.group_id == G.id)
         .where(C.n > 0).group_by(G.channel, C.state))
    if since is not None:
        q = q.where(G.created_at >= since)
    out: dict[str, dict[str, int]] = {}
    with engine.connect() as conn:
        for channel, state, n in conn.execute(q):
            out.setdefault(channel, {})[state] = int(n)
    return out


def outcomes(engine: Engine, item_id: int | None = None) -> dict[tuple, dict[str, int]]:
    """{(item_id, digest_id, channel): {outcome: n}}: refused addresses (`bounced` failures) and what came
    back after the hand-off (bounced, soft-bounced, complained), from the summary."""
    q = (select(G.item_id, G.digest_id, G.channel, C.state, C.outcome, func.sum(C.n)).join(delivery_counts, C.group_id == G.id)
         .where(C.outcome != "", C.n > 0).group_by(G.item_id, G.digest_id, G.channel, C.state, C.outcome))
    if item_id is not None:
        q = q.where(G.item_id == item_id)
    out: dict[tuple, dict[str, int]] = {}
    with engine.connect() as conn:
        for item, digest, channel, state, outcome, n in conn.execute(q):
            name = "refused" if state == DeliveryState.FAILED else outcome
            per = out.setdefault((item, digest, channel), {})
            per[name] = per.get(name, 0) + int(n)
    return out


def by_item(engine: Engine, ids: Iterable[int]) -> dict[int, dict[str, int]]:
    """{item id: {state: n}} over all channels and revisions."""
    ids = sorted(set(ids))
    out: dict[int, dict[str, int]] = {}
    if not ids:
        return out
    q = (select(G.item_id, C.state, func.sum(C.n)).join(delivery_counts, C.group_id == G.id)
         .where(G.item_id.in_(ids), C.n > 0).group_by(G.item_id, C.state))
    with engine.connect() as conn:
        for item_id, state, n in conn.execute(q):
            out.setdefault(item_id, {})[state] = int(n)
    return out


def failures(engine: Engine, limit: int = 50, offset: int = 0, item_id: int | None = None,
             states: Iterable[str] = RETRYABLE) -> list[dict]:
    """Latest rows in `states` (newest first) with their errors, item title and recipient address (never a token)."""
    ids: list[int] = []
    with engine.connect() as conn:
        for state in states:  # one state per query: failed rows come from their own small index
            q = select(D.id).where(D.state == str(state)).order_by(D.id.desc()).limit(limit + offset)
            if item_id is not None:
                q = q.where(D.item_id == item_id)
            ids.extend(conn.execute(q).scalars())
        ids = sorted(ids, reverse=True)[offset:offset + limit]
        if not ids:
            return []
        q = (select(D.id, D.item_id, D.digest_id, D.channel, D.kind, D.state, D.attempts, D.last_error,
                    D.next_attempt_at, D.created_at, items.c.title, S.email,
                    func.coalesce(S.email, D.recipient).label("recipient"))
             .select_from(deliveries.outerjoin(subscribers, S.id == D.subscriber_id).outerjoin(items, items.c.id == D.item_id))
             .where(D.id.in_(ids)).order_by(D.id.desc()))
        return [dict(r) for r in conn.execute(q).mappings()]


def live_in_states(engine: Engine, states: Iterable[str], item_id: int | None = None) -> int:
    """How many rows are in `states` now (compacted ones excluded): the failures page's total."""
    q = (select(func.coalesce(func.sum(C.n - C.compacted), 0)).join(delivery_groups, G.id == C.group_id)
         .where(C.state.in_([str(s) for s in states])))
    if item_id is not None:
        q = q.where(G.item_id == item_id)
    with engine.connect() as conn:
        return int(conn.execute(q).scalar_one())


def percentile(hist: dict[str, int] | None, p: float) -> float | None:
    """The upper bound (seconds; inf past the last bound) of the bucket holding the p-th percentile."""
    if not hist:
        return None
    total = sum(hist.values())
    seen = 0
    for bound in (*map(str, LATENCY_BOUNDS), "inf"):
        seen += hist.get(bound, 0)
        if seen * 100 >= p * total:
            return float(bound)
    return float("inf")


def alert(engine: Engine, item_id: int) -> dict | None:
    """The per-alert view: the item and, per channel and revision, its counts, sends and latency."""
    with engine.connect() as conn:
        item = conn.execute(
            select(items.c.id, items.c.title, items.c.link, items.c.label, items.c.is_flash, items.c.alert_state,
                   items.c.revision, items.c.published_at, items.c.detected_at, items.c.first_telegram_at,
                   items.c.first_email_at, items.c.last_email_at, sources.c.name.label("source_name"))
            .select_from(items.join(sources, sources.c.id == items.c.source_id)).where(items.c.id == item_id)).mappings().first()
        if item is None:
            return None
        groups = [dict(r) for r in conn.execute(
            select(G.id, G.channel, G.revision, G.created_at, G.first_at, G.last_at, G.latency, G.compacted_at)
            .where(G.item_id == item_id).order_by(G.channel, G.revision)).mappings()]
        per, after = {}, {}
        if groups:
            for gid, state, outcome, n, compacted in conn.execute(
                    select(C.group_id, C.state, C.outcome, C.n, C.compacted).where(C.group_id.in_([g["id"] for g in groups]))):
                was = per.setdefault(gid, {}).get(state, (0, 0))
                per[gid][state] = (was[0] + n, was[1] + compacted)
                if outcome and n:
                    after.setdefault(gid, {})[outcome if state == DeliveryState.SENT else "refused"] = n
    for g in groups:
        states = per.get(g["id"], {})
        g["counts"] = {s: n for s, (n, _) in states.items() if n}
        g["total"] = sum(n for n, _ in states.values())
        g["compacted"] = sum(f for _, f in states.values())
        g["outcomes"] = after.get(g["id"], {})
        g["percentiles"] = {p: percentile(g["latency"], p) for p in PERCENTILES}
        g["first_s"] = (g["first_at"] - g["created_at"]).total_seconds() if g["first_at"] and g["created_at"] else None
        g["last_s"] = (g["last_at"] - g["created_at"]).total_seconds() if g["last_at"] and g["created_at"] else None
    return {**dict(item), "groups": groups}
