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
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import Connection, Engine, and_, insert, select, update
from sqlalchemy.engine import RowMapping

from bot.config import Config
from bot.text import norm_title
from bot.models import ALERTED, AlertState, Event, EventKind, Item
from bot.store.db import retry_locked, utcnow
from bot.store.schema import items, sources

_CHUNK = 400  # keys per IN (...) query, under SQLite's variable limit
DESK_ORIGIN = "desk"  # sources.origin of the newsroom desk's source (hand-written alerts, bot.store.desk)


def _values(item: Item) -> dict:
    return {
        "title": item.title, "headline": item.headline or item.title, "label": item.label, "link": item.link,
        "summary_html": item.summary_html, "content_html": item.content_html, "categories": list(item.categories),
        "author": item.author, "language": item.language, "published_at": item.published_at,
        "updated_at": item.updated_at, "content_hash": item.content_hash,
        "norm_title": norm_title(item.headline or item.title), "image_url": item.image_url, "image_alt": item.image_alt,
        "furniture": list(item.furniture),
    }


def _existing(conn: Connection, source_id: int, keys: list[str]) -> dict[str, RowMapping]:
    found: dict[str, RowMapping] = {}
    for i in range(0, len(keys), _CHUNK):
        q = select(items).where(and_(items.c.source_id == source_id, items.c.key.in_(keys[i:i + _CHUNK])))
        found.update({r["key"]: r for r in conn.execute(q).mappings()})
    return found


def link_key(url: str | None) -> str:
    """A link in comparable form: no fragment, no utm_* parameters, no trailing slash, host lower-cased."""
    if not url:
        return ""
    try:
        p = urlsplit(url.strip())
    except ValueError:
        return ""
    query = "&".join(q for q in p.query.split("&") if q and not q.lower().startswith("utm_"))
    return urlunsplit((p.scheme.lower(), p.netloc.lower(), p.path.rstrip("/"), query, ""))


def _similar(row: RowMapping, ntitle: str, lkey: str, threshold: float) -> float:
    """1.0 for the same link, else the title similarity when it reaches the threshold, else 0."""
    if lkey and link_key(row["link"]) == lkey:
        return 1.0
    if not ntitle:
        return 0.0
    m = difflib.SequenceMatcher(None, ntitle, row["norm_title"], autojunk=False)
    if m.real_quick_ratio() < threshold or m.quick_ratio() < threshold:
        return 0.0
    ratio = m.ratio()
    return ratio if ratio >= threshold else 0.0


def _candidates(conn: Connection, cfg: Config, source_id: int, now: datetime, desk_only: bool = False) -> list[RowMapping]:
    """Alerted/held flash items of other sources within the dedupe window (desk_only: hand-written ones)."""
    since = now - timedelta(hours=cfg.flash.dedupe_window_hours)
    q = select(items).where(and_(
        items.c.source_id != source_id, items.c.is_flash.is_(True), items.c.duplicate_of.is_(None),
        items.c.alert_state.in_((*ALERTED, AlertState.HELD)), items.c.detected_at >= since,
    )).order_by(items.c.detected_at)
    if desk_only:
        q = q.where(items.c.source_id.in_(select(sources.c.id).where(sources.c.origin == DESK_ORIGIN)))
    return list(conn.execute(q).mappings())


def _best(rows: list[RowMapping], ntitle: str, link: str | None, threshold: float) -> RowMapping | None:
    best, best_ratio, lkey = None, 0.0, link_key(link)
    for row in rows:
        ratio = _similar(row, ntitle, lkey, threshold)
        if ratio > best_ratio:
            best, best_ratio = row, ratio
    return best


def find_duplicate(conn: Connection, cfg: Config, source_id: int, ntitle: str, now: datetime,
                   link: str | None = None) -> RowMapping | None:
    """An alerted/held flash item from another source within the window with the same link or a similar title."""
    if (not ntitle and not link) or cfg.flash.dedupe_window_hours <= 0:
        return None
    return _best(_candidates(conn, cfg, source_id, now), ntitle, link, cfg.flash.similarity)


def _attach(conn: Connection, dup: RowMapping, source_name: str, item_id: int, link: str | None) -> None:
    """Record the item as a duplicate of `dup`; a hand-written alert without a link gets the article's."""
    also = list(dup["also_sources"] or [])
    if source_name not in also:
        also.append(source_name)
    values: dict = {"also_sources": also}
    if not dup["link"] and link:
        values["link"] = link
    conn.execute(update(items).where(items.c.id == dup["id"]).values(**values))
    conn.execute(update(items).where(items.c.id == item_id).values(duplicate_of=dup["id"]))


def _alert(conn: Connection, cfg: Config, source: RowMapping, item_id: int, item: Item, now: datetime) -> Event:
    """Turn a stored flash item into an alert, a held alert, or a duplicate of an earlier one."""
    ev = lambda kind: Event(item_id, kind, source["name"], item.headline or item.title, True)  # noqa: E731
    dup = find_duplicate(conn, cfg, source["id"], norm_title(item.headline or item.title), now, item.link)
    if dup is not None:
        _attach(conn, dup, source["name"], item_id, item.link)
        return ev(EventKind.DUPLICATE)
    state = AlertState.HELD if cfg.flash.require_approval else AlertState.DETECTED
    conn.execute(update(items).where(items.c.id == item_id).values(alert_state=state, detected_at=now))
    return ev(EventKind.HELD if state == AlertState.HELD else EventKind.FLASH)


def _article(conn: Connection, cfg: Config, source: RowMapping, item_id: int, item: Item, now: datetime,
             desk: dict) -> Event:
    """A new ordinary item: the article a hand-written alert announced attaches to it, else it is news.
    `desk` caches the hand-written alerts in the window for the whole store run (one query, not one per item)."""
    headline = item.headline or item.title
    if source["origin"] != DESK_ORIGIN and cfg.flash.dedupe_window_hours > 0:
        if "rows" not in desk:
            desk["rows"] = _candidates(conn, cfg, source["id"], now, desk_only=True)
        dup = _best(desk["rows"], norm_title(headline), item.link, cfg.flash.similarity)
        if dup is not None:
            _attach(conn, dup, source["name"], item_id, item.link)
            desk.pop("rows")  # _attach changed the row (also_sources, link): read it again if needed
            return Event(item_id, EventKind.DUPLICATE, source["name"], headline, False)
    return Event(item_id, EventKind.NEW, source["name"], headline, False)


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
               baseline: bool, now: datetime, new_id: int | None, desk: dict) -> Event | None:
    if old is None:  # inserted just before by _insert_new
        headline = item.headline or item.title
        if baseline:
            return Event(new_id, EventKind.BASELINE, source["name"], headline, item.is_flash)
        if item.is_flash:
            return _alert(conn, cfg, source, new_id, item, now)
        return _article(conn, cfg, source, new_id, item, now, desk)
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


def store_in(conn: Connection, cfg: Config, source: RowMapping, parsed: list[Item], now: datetime) -> list[Event]:
    """Save items for a source inside the caller's transaction; one Event per new or meaningfully changed item."""
    baseline = not source["baselined"] and not source["alert_on_first_poll"]
    unique: dict[str, Item] = {}
    for it in parsed:  # a feed listing one key twice: the first (newest) entry wins
        unique.setdefault(it.key, it)
    old = _existing(conn, source["id"], list(unique))
    new = [it for k, it in unique.items() if k not in old]
    ids = _insert_new(conn, source, new, baseline, now)
    desk: dict = {}
    events = [_store_one(conn, cfg, source, it, old.get(k), baseline, now, ids.get(k), desk) for k, it in unique.items()]
    return [e for e in events if e is not None]


def store_items(engine: Engine, cfg: Config, source: RowMapping, parsed: list[Item],
                now: datetime | None = None) -> list[Event]:
    """Save a poll's items for a source; return one Event per new or meaningfully changed item."""
    now = now or utcnow()

    def run() -> list[Event]:
        with engine.begin() as conn:
            return store_in(conn, cfg, source, parsed, now)
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
