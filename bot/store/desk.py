"""Hand-written alerts (the newsroom desk): their source row, storing and correcting them as items,
and the desk_log table of who sent or corrected each one, when, and from where.

A hand-written alert is an item like any other: it is stored under the desk's own source (never
polled) by the same code that stores a feed's items (bot.store.items.store_in), so approval,
cross-source dedupe and corrections behave exactly as for feeds. The log row is written in the same
transaction as the item: an alert is never on its way without its author recorded.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, Engine, func, insert, select
from sqlalchemy.engine import RowMapping

from bot.config import Config
from bot.models import Event, Item
from bot.store import delivery_log
from bot.store.db import retry_locked, serialize, utcnow
from bot.store.items import DESK_ORIGIN, ITEMS_LOCK, find_duplicate, store_in
from bot.store.schema import desk_log, items, sources

DESK_NAME = "desk"
DESK_REASON = "hand-written alerts (the desk's own source, never polled)"


def desk_source(conn: Connection) -> RowMapping:
    """The desk's source row, created on first use (paused: nothing ever polls it)."""
    row = conn.execute(select(sources).where(sources.c.origin == DESK_ORIGIN)).mappings().first()
    if row is not None:
        return row
    taken = conn.execute(select(sources.c.id).where(sources.c.name == DESK_NAME)).first()
    name = DESK_NAME if taken is None else f"{DESK_NAME} (hand-written)"
    conn.execute(insert(sources).values(name=name, url="desk:", interval=86400, origin=DESK_ORIGIN, paused=True,
                                        pause_reason=DESK_REASON, baselined=True, created_at=utcnow()))
    return conn.execute(select(sources).where(sources.c.origin == DESK_ORIGIN)).mappings().one()


def _log(conn: Connection, item_id: int, action: str, editor: str, via: str, now: datetime) -> None:
    revision = conn.execute(select(items.c.revision).where(items.c.id == item_id)).scalar_one()
    conn.execute(insert(desk_log).values(item_id=item_id, action=action, revision=revision, editor=editor[:200],
                                         via=via, at=now))


def store_alert(engine: Engine, cfg: Config, item: Item, targets: dict, editor: str, via: str,
                now: datetime) -> tuple[Event | None, int]:
    """Store a new hand-written alert: (its Event: flash, held or duplicate; item id). The same key sent
    again (a double click on one preview) stores nothing: (None, the first one's id)."""
    def run() -> tuple[Event | None, int]:
        with engine.begin() as conn:
            serialize(conn, ITEMS_LOCK)  # the same draft sent twice at once (two replicas) stores one item
            source = desk_source(conn)
            known = conn.execute(select(items.c.id).where(items.c.source_id == source["id"], items.c.key == item.key)).scalar()
            if known is not None:
                return None, known
            (event,) = store_in(conn, cfg, source, [item], now)
            conn.execute(items.update().where(items.c.id == event.item_id).values(targets=targets))
            _log(conn, event.item_id, "sent", editor, via, now)
            return event, event.item_id
    return retry_locked(run)


def similar(engine: Engine, cfg: Config, ntitle: str, link: str | None, now: datetime) -> dict | None:
    """A recent alert (from any source, the desk included) telling the same story, to warn the editor."""
    with engine.connect() as conn:
        row = find_duplicate(conn, cfg, -1, ntitle, now, link)
    return dict(row) if row else None


def store_edit(engine: Engine, cfg: Config, item_id: int, item: Item, editor: str, via: str,
               now: datetime) -> Event | None:
    """Store a new version of hand-written alert `item_id`: an `update` event (a correction) once it was
    alerted, None when nothing changed or it never went out. LookupError when it is not hand-written."""
    def run() -> Event | None:
        with engine.begin() as conn:
            serialize(conn, ITEMS_LOCK)
            source = desk_source(conn)
            key = conn.execute(select(items.c.key).where(items.c.id == item_id, items.c.source_id == source["id"])).scalar()
            if key is None:
                raise LookupError(f"item {item_id} is not a hand-written alert")
            item.key = key
            events = store_in(conn, cfg, source, [item], now)
            _log(conn, item_id, "edited", editor, via, now)
            return events[0] if events else None
    return retry_locked(run)


def get(engine: Engine, item_id: int) -> dict | None:
    """One hand-written alert with its log (oldest first) and the feed items attached to it."""
    with engine.connect() as conn:
        row = conn.execute(select(items).join(sources, sources.c.id == items.c.source_id)
                           .where(items.c.id == item_id, sources.c.origin == DESK_ORIGIN)).mappings().first()
        if row is None:
            return None
        log = conn.execute(select(desk_log).where(desk_log.c.item_id == item_id).order_by(desk_log.c.id)).mappings()
        attached = conn.execute(
            select(items.c.id, items.c.title, items.c.link, items.c.detected_at, sources.c.name.label("source_name"))
            .join(sources, sources.c.id == items.c.source_id).where(items.c.duplicate_of == item_id)
            .order_by(items.c.id)).mappings()
        out = {**dict(row), "log": [dict(r) for r in log], "attached": [dict(r) for r in attached]}
        out["deliveries"] = delivery_counts(conn, item_id)
    return out


def delivery_counts(conn: Connection, item_id: int) -> list[dict]:
    """Rows of one item per channel, kind, state and — for broadcast channels (Telegram) — chat (from the
    delivery summary: the same after compaction)."""
    out: dict[tuple, dict] = {}
    for r in delivery_log.item_counts(conn, item_id):
        kind = "update" if r["revision"] else "alert"
        key = (r["channel"], r["chat"], kind, r["state"])
        out.setdefault(key, {"channel": r["channel"], "chat": r["chat"], "kind": kind, "state": r["state"], "n": 0})["n"] += r["n"]
    return [out[k] for k in sorted(out)]


def recent(engine: Engine, limit: int = 50) -> list[dict]:
    """The newest hand-written alerts with who sent them and who last corrected them."""
    first = select(func.min(desk_log.c.id)).where(desk_log.c.item_id == items.c.id).scalar_subquery()
    last = select(func.max(desk_log.c.id)).where(desk_log.c.item_id == items.c.id).scalar_subquery()
    sent, edited = desk_log.alias("sent"), desk_log.alias("edited")
    q = (select(items.c.id, items.c.title, items.c.headline, items.c.link, items.c.alert_state, items.c.revision,
                items.c.detected_at, items.c.duplicate_of, items.c.first_telegram_at, items.c.first_email_at,
                sent.c.editor.label("sent_by"), sent.c.at.label("sent_at"), sent.c.via,
                edited.c.editor.label("edited_by"), edited.c.at.label("edited_at"), edited.c.action.label("last_action"))
         .join(sources, sources.c.id == items.c.source_id)
         .outerjoin(sent, sent.c.id == first).outerjoin(edited, edited.c.id == last)
         .where(sources.c.origin == DESK_ORIGIN).order_by(items.c.id.desc()).limit(limit))
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(q).mappings()]
