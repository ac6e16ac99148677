"""Read models of the outbox for operators: the live fan-out progress per alert, the CLI's bar total,
the ids `deliveries --retry-failed` requeues.

The progress reads the delivery summary (bot/store/summary.py), never the log: the same numbers while
a million rows go out and after compaction has folded them, at the cost of a few rows per alert.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, timedelta

from sqlalchemy import Engine, func, select

from bot.models import DUE_STATES, UNFINISHED_STATES, DeliveryState
from bot.store import summary
from bot.store.db import utcnow
from bot.store.schema import deliveries, digests, items, sources
from bot.store.schema_summary import delivery_counts, delivery_groups
from bot.store.summary import BOUNCED

D, G, C = deliveries.c, delivery_groups.c, delivery_counts.c
LIVE_HOURS = 6  # the overview shows the alerts and digest runs of the last hours (and any still running)
RATE_WINDOW = 30  # seconds: throughput is measured over the last half-minute while a fan-out runs
_PARTS = ("sent", "failed", "bounced", "folded", "pending", "cancelled")


def _part(state: str, bounced: bool) -> str:
    if state in UNFINISHED_STATES:
        return "pending"
    if state == DeliveryState.FAILED:
        return "bounced" if bounced else "failed"
    if state == DeliveryState.FOLDED:  # held back by the subscriber's cap or quiet hours, for a summary or digest
        return "folded"
    return "sent" if state == DeliveryState.SENT else "cancelled"


def _pick(fn, a, b):
    """fn(a, b) ignoring None."""
    return b if a is None else a if b is None else fn(a, b)


def _group(row: dict, now: datetime) -> dict:
    """Add total, running, rate (rows/s) and eta (seconds) to one (channel, revision) count."""
    row["total"] = sum(row[p] for p in _PARTS)
    done = row["sent"] + row["failed"] + row["bounced"]
    row["running"] = row["pending"] > 0
    started, last = row["started_at"], row["last_at"]
    if row["running"]:
        window = min(RATE_WINDOW, max((now - started).total_seconds(), 0.0)) if started else 0.0
        row["rate"] = row["recent"] / window if window >= 1 else None
        row["eta"] = row["pending"] / row["rate"] if row["rate"] else None
    else:
        span = (last - started).total_seconds() if started and last else 0.0
        row["rate"] = done / span if span >= 0.001 and done else None
        row["eta"] = None
    row["duration"] = ((last or now) - started).total_seconds() if started else None
    return row


def _counts(conn, key, ids: list[int], now: datetime) -> dict[int, list[dict]]:
    """{id: [per (revision, channel) progress]} of these items (key=G.item_id) or digests, from the summary."""
    if not ids:
        return {}
    q = (select(key, G.revision, G.channel, G.created_at, G.finished_at, G.recent, C.state, C.outcome, C.n)
         .join(delivery_counts, C.group_id == G.id).where(key.in_(ids)))
    since = int((now - timedelta(seconds=RATE_WINDOW)).timestamp())
    groups: dict[tuple, dict] = {}
    for owner, rev, channel, started, last, recent, state, outcome, n in conn.execute(q):
        g = groups.get((owner, rev, channel))
        if g is None:
            g = groups[(owner, rev, channel)] = {
                "revision": rev, "channel": channel, "started_at": started, "last_at": last,
                "recent": sum(v for k, v in (recent or {}).items() if int(k) >= since), **{p: 0 for p in _PARTS}}
        g[_part(state, outcome == BOUNCED)] += n
    out: dict[int, list[dict]] = {}
    for (owner, _rev, _ch), g in sorted(groups.items()):
        out.setdefault(owner, []).append(_group(g, now))
    return out


def _latency(item: dict) -> dict[str, dict]:
    """Seconds from publication and from detection to the first send per channel (and the last email)."""
    out = {}
    for channel, first in (("telegram", item["first_telegram_at"]), ("email", item["first_email_at"])):
        if first is not None:
            out[channel] = {o: (first - item[f"{o}_at"]).total_seconds() if item[f"{o}_at"] else None
                            for o in ("published", "detected")}
    if item["last_email_at"] is not None and item["detected_at"] is not None:
        out.setdefault("email", {})["last"] = (item["last_email_at"] - item["detected_at"]).total_seconds()
    return out


def fanouts(engine: Engine, now: datetime, hours: float = LIVE_HOURS, limit: int = 12,
            settled: Mapping[tuple[str, int], list[dict]] | None = None) -> list[dict]:
    """Alerts and digest runs of the last `hours` (and any with unsent rows), newest first, each with its
    progress per channel and revision: sent / failed / bounced / folded / pending / cancelled of total,
    throughput over the last RATE_WINDOW seconds and the time left while it runs.

    `settled` holds the groups of entries already read as finished ({(kind, id): groups}): an entry
    with no unsent row left cannot change, so it is not counted again (its rows may be many)."""
    settled = settled or {}
    since = now - timedelta(hours=hours)
    with engine.connect() as conn:
        busy = summary.unfinished_subjects(conn)
        busy_items = {s for s in busy if s > 0}
        busy_digests = {-s for s in busy if s < 0}
        alert_rows = conn.execute(
            select(items.c.id, items.c.title, items.c.headline, items.c.label, items.c.link, items.c.alert_state, items.c.revision,
                   items.c.published_at, items.c.detected_at, items.c.first_telegram_at, items.c.first_email_at,
                   items.c.last_email_at, sources.c.name.label("source_name"))
            .select_from(items.join(sources, sources.c.id == items.c.source_id))
            .where(items.c.is_flash.is_(True), items.c.alert_state != "none",
                   (items.c.detected_at >= since) | items.c.id.in_(busy_items))
            .order_by(items.c.detected_at.desc()).limit(limit)).mappings().all()
        digest_rows = conn.execute(select(digests.c.id, digests.c.run_key, digests.c.created_at).where(
            (digests.c.created_at >= since) | digests.c.id.in_(busy_digests))
            .order_by(digests.c.created_at.desc()).limit(limit)).mappings().all()
        per_item = {r["id"]: settled[("alert", r["id"])] for r in alert_rows
                    if ("alert", r["id"]) in settled and r["id"] not in busy_items}
        per_digest = {r["id"]: settled[("digest", r["id"])] for r in digest_rows
                      if ("digest", r["id"]) in settled and r["id"] not in busy_digests}
        per_item |= _counts(conn, G.item_id, [r["id"] for r in alert_rows if r["id"] not in per_item], now)
        per_digest |= _counts(conn, G.digest_id, [r["id"] for r in digest_rows if r["id"] not in per_digest], now)
    out = [{"kind": "alert", **r, "at": r["detected_at"], "groups": per_item.get(r["id"], []), "latency": _latency(r)}
           for r in alert_rows]
    out += [{"kind": "digest", **r, "at": r["created_at"], "groups": per_digest.get(r["id"], [])}
            for r in digest_rows if per_digest.get(r["id"])]
    for entry in out:
        entry["running"] = any(g["running"] for g in entry["groups"])
    out.sort(key=lambda e: e["at"] or now, reverse=True)
    return out[:limit]


def count_due(engine: Engine, channels: Iterable[str], now: datetime | None = None) -> int:
    """Rows of these channels waiting to be sent and due by `now` (the CLI's bar total)."""
    q = select(func.count()).select_from(deliveries).where(
        D.state.in_(DUE_STATES), D.channel.in_(sorted(channels)), D.next_attempt_at <= (now or utcnow()))
    with engine.connect() as conn:
        return conn.execute(q).scalar_one()


def failed_ids(engine: Engine, item_id: int | None = None, chunk: int = 1000) -> Iterator[list[int]]:
    """Ids of failed rows (of one item, or all) in keyset chunks: `deliveries --retry-failed`."""
    last = 0
    while True:
        q = select(D.id).where(D.state == DeliveryState.FAILED, D.id > last).order_by(D.id).limit(chunk)
        if item_id is not None:
            q = q.where(D.item_id == item_id)
        with engine.connect() as conn:
            ids = [r[0] for r in conn.execute(q)]
        if not ids:
            return
        yield ids
        last = ids[-1]
