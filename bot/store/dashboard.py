"""Read models behind the /admin dashboard and `flashbot stats` (the writes live with their tables).

Every listing is one bounded query (LIMIT, grouped counts), never a query per row.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from statistics import median

from sqlalchemy import Engine, func, select, true, update

from bot.models import UNFINISHED_STATES, AlertState
from bot.store import delivery_log
from bot.store.db import utcnow
from bot.store.schema import items, meta, sources


def delivery_counts(engine: Engine, since: datetime | None = None) -> dict[str, dict[str, int]]:
    """{channel: {state: n}} of the alerts and digests queued since `since` (all when None), from the summary."""
    return delivery_log.by_channel(engine, since)


def broadcast_counts(engine: Engine, since: datetime | None = None) -> dict[tuple[str, str], dict[str, int]]:
    """{(channel, chat): {state: n}} of the rows addressed to a chat, not a subscriber (Telegram)."""
    out: dict[tuple[str, str], dict[str, int]] = {}
    with engine.connect() as conn:
        for _item, _rev, ch, chat, st, n in delivery_log.chat_rows(conn, since):
            states = out.setdefault((ch, chat), {})
            states[st] = states.get(st, 0) + n
    return out


def recent_items(engine: Engine, limit: int = 50) -> list[dict]:
    """The newest items with their source name and per-state delivery counts (from the summary)."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(items.c.id, items.c.title, items.c.headline, items.c.label, items.c.link, items.c.is_flash,
                   items.c.alert_state, items.c.revision, items.c.published_at, items.c.detected_at,
                   items.c.first_telegram_at, items.c.first_email_at, sources.c.name.label("source_name"))
            .select_from(items.join(sources, sources.c.id == items.c.source_id))
            .order_by(items.c.detected_at.desc(), items.c.id.desc()).limit(limit)).mappings().all()
        result = [dict(r) for r in rows]
    per_item = delivery_log.by_item(engine, [r["id"] for r in result])
    for r in result:
        r["counts"] = per_item.get(r["id"], {})
        r["running"] = any(r["counts"].get(s) for s in UNFINISHED_STATES)
    return result


def _seconds(a: datetime | None, b: datetime | None) -> float | None:
    return (b - a).total_seconds() if a and b else None


def latency(engine: Engine, since: datetime | None = None, limit: int = 1000) -> dict[str, dict]:
    """Latency of the first delivery per channel, from publication and from detection (seconds)."""
    since = since or utcnow() - timedelta(days=1)
    with engine.connect() as conn:
        rows = conn.execute(select(items.c.published_at, items.c.detected_at, items.c.first_telegram_at,
                                   items.c.first_email_at)
                            .where(items.c.is_flash.is_(True), items.c.detected_at >= since)
                            .order_by(items.c.detected_at.desc()).limit(limit)).all()
    out: dict[str, dict] = {}
    for channel, idx in (("telegram", 2), ("email", 3)):
        for origin, o_idx in (("published", 0), ("detected", 1)):
            vals = sorted(v for r in rows if (v := _seconds(r[o_idx], r[idx])) is not None)
            out.setdefault(channel, {})[origin] = (
                {"n": len(vals), "median": median(vals), "max": vals[-1]} if vals else {"n": 0})
    return out


def latency_samples(engine: Engine, since: datetime | None = None, limit: int = 5000) -> dict[str, list[float]]:
    """Detection→first-delivery seconds per channel for flash items detected since `since`."""
    since = since or utcnow() - timedelta(days=1)
    with engine.connect() as conn:
        rows = conn.execute(select(items.c.detected_at, items.c.first_telegram_at, items.c.first_email_at)
                            .where(items.c.detected_at >= since, items.c.is_flash.is_(True))
                            .order_by(items.c.detected_at.desc()).limit(limit)).all()
    return {"telegram": [v for r in rows if (v := _seconds(r[0], r[1])) is not None],
            "email": [v for r in rows if (v := _seconds(r[0], r[2])) is not None]}


def item_counts(engine: Engine) -> dict[bool, int]:
    """{is_flash: n} over stored items."""
    with engine.connect() as conn:
        return {bool(f): n for f, n in conn.execute(select(items.c.is_flash, func.count()).group_by(items.c.is_flash))}


def source_list(engine: Engine) -> list[dict]:
    """Every source with its polling state, by name."""
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(
            select(sources.c.id, sources.c.name, sources.c.url, sources.c.paused, sources.c.pause_reason,
                   sources.c.last_status, sources.c.last_error, sources.c.consecutive_failures,
                   sources.c.last_polled_at, sources.c.last_success_at, sources.c.next_poll_at,
                   sources.c.websub_state).where(sources.c.origin != "desk").order_by(sources.c.name)).mappings()]


def source_categories(engine: Engine) -> list[str]:
    """Distinct source categories, offered as topics on the sign-up and preferences pages."""
    with engine.connect() as conn:
        return [c for (c,) in conn.execute(select(sources.c.category).distinct()
                                           .where(sources.c.category.is_not(None)).order_by(sources.c.category)) if c]


def failing_sources(engine: Engine) -> list[dict]:
    """Sources that are paused or whose last poll failed."""
    return [s for s in source_list(engine) if s["paused"] or s["consecutive_failures"] or s["last_error"]]


def held_items(engine: Engine, limit: int = 100) -> list[dict]:
    """Flash items waiting for an editor's approval."""
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(
            select(items.c.id, items.c.title, items.c.label, items.c.link, items.c.detected_at,
                   sources.c.name.label("source_name"))
            .select_from(items.join(sources, sources.c.id == items.c.source_id))
            .where(items.c.alert_state == AlertState.HELD).order_by(items.c.detected_at).limit(limit)).mappings()]


def alert_latencies(engine: Engine, since: datetime, limit: int = 2000) -> list[dict]:
    """Flash items detected since `since` that were sent, with their publication, detection and first sends."""
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(
            select(items.c.id, items.c.title, items.c.published_at, items.c.detected_at, items.c.first_telegram_at,
                   items.c.first_email_at)
            .where(items.c.is_flash.is_(True), items.c.detected_at >= since,
                   (items.c.first_telegram_at.is_not(None)) | (items.c.first_email_at.is_not(None)))
            .order_by(items.c.detected_at.desc()).limit(limit)).mappings()]


def health_sources(engine: Engine, limit: int = 12) -> list[dict]:
    """The sources the overview's health chart shows: failing and paused ones first, then by name."""
    trouble = (sources.c.consecutive_failures > 0) | sources.c.paused.is_(True)
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(
            select(sources.c.id, sources.c.name, sources.c.paused, sources.c.consecutive_failures)
            .order_by(trouble.desc(), sources.c.name).limit(limit)).mappings()]


# Alert latency histogram (Prometheus): buckets in seconds, cumulative; items pruned by housekeeping
# are folded into a meta row first, so the counts only ever grow (a true Prometheus counter).
ALERT_BUCKETS = (0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200)
PRUNED_LATENCY_KEY = "latency_pruned"


def _latencies(conn, where) -> Iterator[tuple[str, str, float]]:
    """(channel, origin, seconds) of the first send of each flash item matching `where`."""
    q = select(items.c.published_at, items.c.detected_at, items.c.first_telegram_at, items.c.first_email_at).where(
        items.c.is_flash.is_(True), items.c.first_telegram_at.is_not(None) | items.c.first_email_at.is_not(None), where)
    for published, detected, telegram, email in conn.execute(q):
        for channel, first in (("telegram", telegram), ("email", email)):
            for origin, start in (("published", published), ("detected", detected)):
                if first is not None and start is not None:
                    yield channel, origin, max((first - start).total_seconds(), 0.0)


def _histogram(rows: Iterator[tuple[str, str, float]], into: dict) -> dict:
    for channel, origin, v in rows:
        h = into.setdefault(f"{channel}|{origin}", {"buckets": [0] * len(ALERT_BUCKETS), "sum": 0.0, "count": 0})
        h["buckets"] = [n + (v <= b) for n, b in zip(h["buckets"], ALERT_BUCKETS)]
        h["sum"] += v
        h["count"] += 1
    return into


def _pruned(conn) -> dict:
    value = conn.execute(select(meta.c.value).where(meta.c.key == PRUNED_LATENCY_KEY)).scalar()
    return json.loads(value) if value else {}


def alert_latency_histogram(engine: Engine) -> dict[tuple[str, str], dict]:
    """{(channel, origin): {"buckets": cumulative counts per ALERT_BUCKETS, "sum", "count"}} over every
    alert ever sent (stored items plus those housekeeping pruned)."""
    with engine.connect() as conn:
        hist = _histogram(_latencies(conn, true()), _pruned(conn))
    return {tuple(k.split("|", 1)): v for k, v in hist.items()}


def fold_latencies(conn, where) -> None:
    """Before items matching `where` are deleted: add their latencies to the pruned totals (same transaction)."""
    hist = _histogram(_latencies(conn, where), _pruned(conn))
    value = json.dumps(hist, sort_keys=True)
    if conn.execute(update(meta).where(meta.c.key == PRUNED_LATENCY_KEY).values(value=value)).rowcount == 0:
        conn.execute(meta.insert().values(key=PRUNED_LATENCY_KEY, value=value))
