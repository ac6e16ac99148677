"""Queueing: one outbox row per recipient and channel for each alert, update or approved item."""
from __future__ import annotations

import logging
from collections.abc import Iterable

from sqlalchemy import Engine

from bot.config import Config
from bot.models import ALERTED, AlertState, DeliveryState, Event, EventKind
from bot.store import outbox
from bot.store.db import utcnow
from bot.store.items import set_alert_state
from bot.topics import ItemTopics

log = logging.getLogger(__name__)


def queue_events(engine: Engine, cfg: Config, events: Iterable[Event]) -> int:
    """Rows for `flash` (the alert) and `update` (corrections) events; held and other events wait. Rows created."""
    total = 0
    for ev in events:
        if ev.kind == EventKind.FLASH:
            total += queue_item(engine, cfg, ev.item_id)
        elif ev.kind == EventKind.UPDATE:
            total += queue_update(engine, cfg, ev.item_id)
    return total


def queue_item(engine: Engine, cfg: Config, item_id: int) -> int:
    """Queue an item's alert (also used when an operator approves a held item); idempotent. Rows created.

    One transaction: the Telegram row first (lowest id, so it is claimed first), the subscribers without
    topics by a single INSERT…SELECT, then the subscribers with topics streamed in batches and matched
    in Python. The item becomes `queued` in that same transaction: a crash before commit leaves it
    `detected`/`approved` with no rows, and the start-up (or housekeeping) queues it again.
    """
    now = utcnow()
    with engine.begin() as conn:
        item = outbox.load_item(conn, item_id)
        if item is None or item["alert_state"] in (AlertState.CANCELLED, AlertState.HELD):
            return 0
        created = 0
        if cfg.telegram is not None:
            created += outbox.insert_rows(conn, [_row(item_id, "telegram", cfg.telegram.channel, None, 0, "alert", now)])
        if cfg.email is not None:
            created += outbox.instant_audience_sql(conn, item_id, 0, "alert", now)
            facets = ItemTopics(item)
            for batch in outbox.topic_subscribers(conn, cfg.delivery.batch_size):
                rows = [_row(item_id, "email", str(sid), sid, 0, "alert", now) for sid, topics in batch if facets.matches(topics)]
                created += outbox.insert_rows(conn, rows)
        set_alert_state(conn, item_id, AlertState.QUEUED)
        outbox.notify(conn)  # PostgreSQL: every listening worker wakes when this commits
    log.info("queued item %s: %s deliveries", item_id, created)
    return created


def queue_update(engine: Engine, cfg: Config, item_id: int) -> int:
    """Correction rows (revision = the item's revision) for every recipient of the original alert."""
    now = utcnow()
    with engine.begin() as conn:
        item = outbox.load_item(conn, item_id)
        if item is None or item["alert_state"] not in ALERTED or not item["revision"]:
            return 0  # never alerted (held, cancelled, not flash): nothing to correct
        created = outbox.update_audience_sql(conn, item_id, item["revision"], now)
        outbox.notify(conn)
    log.info("queued update r%s of item %s: %s deliveries", item["revision"], item_id, created)
    return created


def _row(item_id: int, channel: str, recipient: str, subscriber_id: int | None, revision: int, kind: str, now) -> dict:
    return {"item_id": item_id, "channel": channel, "recipient": recipient, "subscriber_id": subscriber_id,
            "revision": revision, "kind": kind, "state": DeliveryState.PENDING, "attempts": 0, "created_at": now,
            "next_attempt_at": now}
