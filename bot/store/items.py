"""Items table: store a poll's items and decide what each one means (flash, update, duplicate, ...).

An item is alerted at most once ever: its alert_state leaves `none` once (to `detected`, or to
`held` when approval is required); it becomes `queued` only in the transaction that creates its
delivery rows (bot.delivery.fanout). Later edits of an alerted item become `update` events with a
bumped revision. The same story from another source within the dedupe window is stored as a
`duplicate` of the first one, which records the second source in `also_sources`.
"""
from __future__ import annotations

import difflib
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, and_, insert, select, update
from sqlalchemy.engine import RowMapping

from bot.config import Config
from bot.text import norm_title
from bot.models import ALERTED, AlertState, Event, EventKind, Item
from bot.store.db import retry_locked, utcnow
from bot.store.schema import items, sources

_CHUNK = 400  # keys per IN (...) query, under SQLite's variable limit


def _values(item: Item) -> dict:
    return {
        "title": item.title, "headline": item.headline or item.title, "label": item.label, "link": item.link,
        "summary_html": item.summary_html, "content_html": item.content_html, "categories": list(item.categories),
        "author": item.author, "language": item.language, "published_at": item.published_at,
        "updated_at": item.updated_at, "content_hash": item.content_hash,
        "norm_title": norm_title(item.headline or item.title), "furniture": list(item.furniture),
    }


def _existing(conn: Connection, source_id: int, keys: list[str]) -> dict[str, RowMapping]:
    found: dict[str, RowMapping] = {}
    for i in range(0, len(keys), _CHUNK):
        q = select(items).where(and_(items.c.source_id == source_id, items.c.key.in_(keys[i:i + _CHUNK])))
        found.update({r["key"]: r for r in conn.execute(q).mappings()})
    return found


def find_duplicate(conn: Connection, cfg: Config, source_id: int, ntitle: str, now: datetime) -> RowMapping | None:
    """An alerted/held flash item from another source within the window with a similar title."""
    if not ntitle or cfg.flash.dedupe_window_hours <= 0:
        return None
    since = now - timedelta(hours=cfg.flash.dedupe_window_hours)
    q = select(items).where(and_(
        items.c.source_id != source_id, items.c.is_flash.is_(True), items.c.duplicate_of.is_(None),
        items.c.alert_state.in_((*ALERTED, AlertState.HELD)), items.c.detected_at >= since,
    )).order_by(items.c.detected_at)
    best, best_ratio = None, 0.0
    for row in conn.execute(q).mappings():
        m = difflib.SequenceMatcher(None, ntitle, row["norm_title"], autojunk=False)
        if m.real_quick_ratio() < cfg.flash.similarity or m.quick_ratio() < cfg.flash.similarity:
            continue
        ratio = m.ratio()
        if ratio >= cfg.flash.similarity and ratio > best_ratio:
            best, best_ratio = row, ratio
    return best


def _alert(conn: Connection, cfg: Config, source: RowMapping, item_id: int, item: Item, now: datetime) -> Event:
    """Turn a stored flash item into an alert, a held alert, or a duplicate of an earlier one."""
    ev = lambda kind: Event(item_id, kind, source["name"], item.headline or item.title, True)  # noqa: E731
    dup = find_duplicate(conn, cfg, source["id"], norm_title(item.headline or item.title), now)
    if dup is not None:
        also = list(dup["also_sources"] or [])
        if source["name"] not in also:
            also.append(source["name"])
        conn.execute(update(items).where(items.c.id == dup["id"]).values(also_sources=also))
        conn.execute(update(items).where(items.c.id == item_id).values(duplicate_of=dup["id"]))
        return ev(EventKind.DUPLICATE)
    state = AlertState.HELD if cfg.flash.require_approval else AlertState.DETECTED
    conn.execute(update(items).where(items.c.id == item_id).values(alert_state=state, detected_at=now))
    return ev(EventKind.HELD if state == AlertState.HELD else EventKind.FLASH)


def _insert_new(conn: Connection, source: RowMapping, new: list[Item], baseline: bool, now: datetime) -> dict[str, int]:
    """Insert a poll's new items (unique keys) with one multi-row INSERT; {key: id}."""
    if not new:
        return {}
    rows = [{"source_id": source["id"], "key": it.key, "is_flash": it.is_flash, "baseline": baseline,
             "detected_at": now, "alert_state": AlertState.NONE, "also_sources": [], "revision": 0, **_values(it)}
            for it in new]
    # One statement for all rows: building a literal INSERT per item was a measurable cost. RETURNING
    # order is unspecified in SQLite, so ids are matched by key (unique within a source).
    res = conn.execute(insert(items).returning(items.c.key, items.c.id), rows)
    return {key: item_id for key, item_id in res}


def _store_one(conn: Connection, cfg: Config, source: RowMapping, item: Item, old: RowMapping | None,
               baseline: bool, now: datetime, new_id: int | None) -> Event | None:
    if old is None:  # inserted just before by _insert_new
        headline = item.headline or item.title
        if baseline:
            return Event(new_id, EventKind.BASELINE, source["name"], headline, item.is_flash)
        if item.is_flash:
            return _alert(conn, cfg, source, new_id, item, now)
        return Event(new_id, EventKind.NEW, source["name"], headline, False)
    vals = _values(item)
    if old["content_hash"] == item.content_hash and old["is_flash"] == (item.is_flash or old["alert_state"] != AlertState.NONE):
        return None
    if old["alert_state"] in ALERTED:
        # An alerted item stays flash even if an edit drops its label: the edit is a correction.
        vals.update(is_flash=True, revision=old["revision"] + 1)
        conn.execute(update(items).where(items.c.id == old["id"]).values(**vals))
        return Event(old["id"], EventKind.UPDATE, source["name"], vals["headline"], True)
    vals["is_flash"] = item.is_flash or old["alert_state"] != AlertState.NONE
    conn.execute(update(items).where(items.c.id == old["id"]).values(**vals))
    never_alerted = old["alert_state"] == AlertState.NONE and not old["baseline"] and old["duplicate_of"] is None
    if item.is_flash and never_alerted:  # an ordinary story was relabelled Flash Info
        return _alert(conn, cfg, source, old["id"], item, now)
    return None


def store_items(engine: Engine, cfg: Config, source: RowMapping, parsed: list[Item],
                now: datetime | None = None) -> list[Event]:
    """Save a poll's items for a source; return one Event per new or meaningfully changed item."""
    now = now or utcnow()
    baseline = not source["baselined"] and not source["alert_on_first_poll"]
    unique: dict[str, Item] = {}
    for it in parsed:  # a feed listing one key twice: the first (newest) entry wins
        unique.setdefault(it.key, it)

    def run() -> list[Event]:
        with engine.begin() as conn:
            old = _existing(conn, source["id"], list(unique))
            new = [it for k, it in unique.items() if k not in old]
            ids = _insert_new(conn, source, new, baseline, now)
            events = [_store_one(conn, cfg, source, it, old.get(k), baseline, now, ids.get(k))
                      for k, it in unique.items()]
            return [e for e in events if e is not None]
    return retry_locked(run)


def recent_items(engine: Engine, limit: int = 50, flash_only: bool = False) -> list[RowMapping]:
    """Most recently detected items with their source name, newest first."""
    q = select(items, sources.c.name.label("source_name")).join(sources, sources.c.id == items.c.source_id)
    if flash_only:
        q = q.where(items.c.is_flash.is_(True))
    with engine.connect() as conn:
        return list(conn.execute(q.order_by(items.c.detected_at.desc(), items.c.id.desc()).limit(limit)).mappings())


def set_alert_state(conn: Connection, item_id: int, state: AlertState, only_from: tuple = ()) -> bool:
    """items.alert_state = state (only from one of `only_from` when given); True when the row changed."""
    q = update(items).where(items.c.id == item_id)
    if only_from:
        q = q.where(items.c.alert_state.in_(only_from))
    return conn.execute(q.values(alert_state=state)).rowcount == 1


def approve(engine: Engine, item_id: int) -> bool:
    """held → approved; False when the item was not held (another editor handled it first)."""
    with engine.begin() as conn:
        return set_alert_state(conn, item_id, AlertState.APPROVED, only_from=(AlertState.HELD,))
