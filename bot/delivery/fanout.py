"""Queueing: one outbox row per recipient and channel for each alert, update or approved item.

Telegram: one row per chat whose filters (language, topics, sources, categories) match the item, or
per chat an editor chose for a hand-written alert. Email: one row per instant subscriber whose topics
match; a subscriber's daily cap or quiet hours (bot.delivery.quiet) fold the alert instead, into
their next digest or a summary mail (bot.store.limits).
"""
from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import Engine

from bot.config import Config
from bot.delivery import quiet
from bot.models import ALERTED, AlertState, DeliveryState, Event, EventKind
from bot.store import limits, outbox
from bot.store.db import utcnow
from bot.store.items import set_alert_state
from bot.topics import ItemTopics, normalize

log = logging.getLogger(__name__)


def queue_events(engine: Engine, cfg: Config, events: Iterable[Event], now: datetime | None = None) -> int:
    """Rows for `flash` (the alert) and `update` (corrections) events; held and other events wait. Rows created."""
    total = 0
    for ev in events:
        if ev.kind == EventKind.FLASH:
            total += queue_item(engine, cfg, ev.item_id, now)
        elif ev.kind == EventKind.UPDATE:
            total += queue_update(engine, cfg, ev.item_id, now)
    return total


def queue_item(engine: Engine, cfg: Config, item_id: int, now: datetime | None = None) -> int:
    """Queue an item's alert (also used when an operator approves a held item); idempotent. Rows created.

    One transaction: the Telegram rows first (lowest ids, so they are claimed first), the subscribers
    without topics or limits by a single INSERT…SELECT, then the others streamed in batches and checked
    in Python. The item becomes `queued` in that same transaction: a crash before commit leaves it
    `detected`/`approved` with no rows, and the start-up (or housekeeping) queues it again.
    """
    now = now or utcnow()
    with engine.begin() as conn:
        item = outbox.load_item(conn, item_id)
        if item is None or item["alert_state"] in (AlertState.CANCELLED, AlertState.HELD):
            return 0
        targets = item.get("targets") or {}
        created = 0
        if cfg.telegram is not None:
            chats = telegram_chats(cfg, item, targets.get("telegram"))
            created += outbox.insert_rows(conn, [_row(item_id, "telegram", c, None, 0, "alert", now) for c in chats])
        if cfg.email is not None and targets.get("email", True):
            created += _email_rows(conn, cfg, item, now)
        set_alert_state(conn, item_id, AlertState.QUEUED)
    log.info("queued item %s: %s deliveries", item_id, created)
    return created


def telegram_chats(cfg: Config, item: dict, chosen: list[str] | None = None) -> list[str]:
    """The chats an alert goes to: the ones an editor chose, else every channel whose filters match."""
    if chosen is not None:
        return [t.chat for t in cfg.telegram.targets() if t.chat in chosen]
    facets = ItemTopics(item)
    lang = (item.get("language") or "").lower().replace("_", "-").split("-")[0]
    chats = []
    for t in cfg.telegram.targets():
        if t.language and lang and lang != t.language:
            continue  # a channel in another language
        if t.sources and item.get("source_name") not in t.sources:
            continue
        if t.categories and not {normalize(c) for c in t.categories} & facets.categories:
            continue
        if t.topics and not facets.matches(t.topics):
            continue
        chats.append(t.chat)
    return chats


def _email_rows(conn, cfg: Config, item: dict, now: datetime) -> int:
    """Alert mails to instant subscribers; over a cap or in quiet hours the alert is folded instead."""
    cap = cfg.delivery.max_alerts_per_day
    created = 0 if cap else outbox.instant_audience_sql(conn, item["id"], 0, "alert", now)
    facets = ItemTopics(item)
    digests = cfg.digest.enabled
    for batch in limits.gated_subscribers(conn, cfg.delivery.batch_size, everyone=cap > 0):
        wanted = [s for s in batch if facets.matches(s["topics"])]
        times = limits.alert_times(conn, [s["id"] for s in wanted], now)
        rows, folds = [], []
        for sub in wanted:
            rule = quiet.Limits.of(sub, cap, cfg.bot.timezone)
            start = rule.day_start(now)
            held = quiet.gate(now, rule, sum(1 for t in times.get(sub["id"], ()) if t >= start))
            if held is None:
                rows.append(_row(item["id"], "email", str(sub["id"]), sub["id"], 0, "alert", now))
            else:  # their digest carries it, else a summary mail when alerts may reach them again
                folds.append((sub["id"], held.reason, None if digests and sub["mode"] == "both" else held.due))
        created += outbox.insert_rows(conn, rows) + limits.fold(conn, item["id"], folds, now)
    return created


def queue_update(engine: Engine, cfg: Config, item_id: int, now: datetime | None = None) -> int:
    """Correction rows (revision = the item's revision) for every recipient of the original alert; a
    correction mail falling inside a subscriber's quiet hours waits for their end."""
    now = now or utcnow()
    with engine.begin() as conn:
        item = outbox.load_item(conn, item_id)
        if item is None or item["alert_state"] not in ALERTED or not item["revision"]:
            return 0  # never alerted (held, cancelled, not flash): nothing to correct
        created = outbox.update_audience_sql(conn, item_id, item["revision"], now)
        waits = []
        for row in limits.quiet_correction_rows(conn, item_id, item["revision"]):
            rule = quiet.Limits.of(row, 0, cfg.bot.timezone)
            if rule.quiet(now):
                waits.append((row["id"], rule.quiet_end(now)))
        limits.defer(conn, waits)
    log.info("queued update r%s of item %s: %s deliveries", item["revision"], item_id, created)
    return created


def _row(item_id: int, channel: str, recipient: str, subscriber_id: int | None, revision: int, kind: str, now) -> dict:
    return {"item_id": item_id, "channel": channel, "recipient": recipient, "subscriber_id": subscriber_id,
            "revision": revision, "kind": kind, "state": DeliveryState.PENDING, "attempts": 0, "created_at": now,
            "next_attempt_at": now}
