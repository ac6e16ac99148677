"""Pages of subscribers and sources for the dashboard and the CLI: search, filters, keyset paging.

Keyset paging ("the 50 rows after id N") costs the same on page 1 and page 5,000, where OFFSET
reads and throws away every row before the page. Totals are exact when an index can count them
(filters, a full address) and counted up to COUNT_CAP otherwise, so no page scans a million rows
just to print a number.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Engine, and_, func, or_, select, true

from bot.addresses import InvalidAddress, normalize_email
from bot.store.schema import sources, subscribers

COUNT_CAP = 10_000
PAGE_MAX = 1000
SOURCE_STATES = ("ok", "failing", "paused", "new", "websub")
S, SRC = subscribers.c, sources.c


@dataclass
class Page:
    """One page of rows with the cursors of its neighbours (None: no such page)."""

    rows: list[dict]
    total: int  # rows matching the filters (a lower bound when capped)
    capped: bool = False  # total stopped counting at COUNT_CAP
    next_after: object = None  # pass as `after` for the next page
    prev_before: object = None  # pass as `before` for the previous page
    exact_address: bool = False  # the search was a full address, looked up by its index
    extra: dict = field(default_factory=dict)


def like(text: str) -> str:
    """A LIKE pattern matching `text` anywhere; %, _ and \\ in it are literal (escape='\\')."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def subscriber_conditions(status: str | None = None, mode: str | None = None, language: str | None = None,
                          origin: str | None = None, search: str | None = None) -> tuple[list, bool]:
    """WHERE conditions for the filters, and whether the search is a full address (exact match)."""
    conds = [col == value for col, value in ((S.status, status), (S.mode, mode), (S.language, language),
                                             (S.origin, origin)) if value]
    exact = False
    search = (search or "").strip().lower()
    if search:
        try:  # a whole address: one lookup in the unique index instead of scanning every address
            conds.append(S.email == normalize_email(search))
            exact = True
        except InvalidAddress:
            conds.append(S.email.like(like(search), escape="\\"))  # bound parameter: data, never SQL
    return conds, exact


def _count(conn, table, conds: list, exact: bool) -> tuple[int, bool]:
    where = and_(true(), *conds)
    if exact:
        return conn.execute(select(func.count()).select_from(table).where(where)).scalar_one(), False
    n = conn.execute(select(func.count()).select_from(
        select(table.c.id).where(where).limit(COUNT_CAP + 1).subquery())).scalar_one()
    return min(n, COUNT_CAP), n > COUNT_CAP


def _keyset(conn, table, key, conds: list, limit: int, after, before, offset: int, desc: bool) -> tuple[list[dict], object, object]:
    """Rows ordered by `key` (descending when desc) after/before a cursor; (rows, next_after, prev_before)."""
    limit = max(1, min(limit, PAGE_MAX))
    forward = before is None
    down = desc == forward  # walking towards smaller keys
    if after is not None and forward:
        conds = conds + [key < after if desc else key > after]
    if not forward:
        conds = conds + [key > before if desc else key < before]
    order = key.desc() if down else key.asc()
    q = select(table).where(and_(true(), *conds)).order_by(order).limit(limit + 1)
    if offset and forward and after is None:
        q = q.offset(offset)
    rows = [dict(r) for r in conn.execute(q).mappings()]
    more = len(rows) > limit
    rows = rows[:limit]
    if not forward:
        rows.reverse()
    if not rows:
        return rows, None, (after if after is not None and forward else None)
    first, last = rows[0][key.name], rows[-1][key.name]
    if forward:
        return rows, (last if more else None), (first if after is not None or offset else None)
    return rows, last, (first if more else None)


def subscriber_page(engine: Engine, status: str | None = None, mode: str | None = None, language: str | None = None,
                    origin: str | None = None, search: str | None = None, limit: int = 50, after: int | None = None,
                    before: int | None = None, offset: int = 0, counts: dict | None = None) -> Page:
    """Subscribers newest first, `limit` after the id `after` (or before `before`, or at `offset`).

    `counts` ({status: {mode: n}}, see subscribers.counts) gives the total of a page filtered by status
    and mode alone without counting again; other filters are counted up to COUNT_CAP."""
    conds, exact = subscriber_conditions(status, mode, language, origin, search)
    simple = not (language or origin or search)
    with engine.connect() as conn:
        if search and not exact and after is None and before is None and not offset:
            return _scanned_first_page(conn, conds, limit)
        rows, nxt, prev = _keyset(conn, subscribers, S.id, conds, limit, after, before, offset, desc=True)
        if simple and counts is not None:
            total, capped = sum(n for st, modes in counts.items() if not status or st == status
                                for m, n in modes.items() if not mode or m == mode), False
        else:
            total, capped = _count(conn, subscribers, conds, exact or simple)
    return Page(rows, total, capped, nxt, prev, exact)


def _scanned_first_page(conn, conds: list, limit: int) -> Page:
    """The first page of a search on part of an address (no index serves `LIKE '%…%'`).

    One pass collects the matching ids, unordered, up to COUNT_CAP + 1: for a search on the address
    alone the database reads only the email index (far smaller than the rows). When they all fit,
    that is the exact count and the page is the newest `limit` of them; beyond the cap the matches
    are common, and a newest-first scan finds a page of them after a few rows."""
    limit = max(1, min(limit, PAGE_MAX))
    ids = sorted(conn.execute(select(S.id).where(*conds).limit(COUNT_CAP + 1)).scalars(), reverse=True)
    capped = len(ids) > COUNT_CAP
    if capped:
        ids = conn.execute(select(S.id).where(*conds).order_by(S.id.desc()).limit(limit + 1)).scalars().all()
    shown = ids[:limit]
    rows = [dict(r) for r in conn.execute(select(subscribers).where(S.id.in_(shown)).order_by(S.id.desc())).mappings()]
    return Page(rows, COUNT_CAP if capped else len(ids), capped, shown[-1] if len(ids) > limit else None, None)


def count_subscribers(engine: Engine, status: str | None = None) -> int:
    """Subscribers with an address (and this status): what `subscribers export` will write."""
    conds, _ = subscriber_conditions(status)
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(subscribers)
                            .where(S.email.is_not(None), *conds)).scalar_one()


def source_state(state: str):
    """The WHERE condition of one source state (see SOURCE_STATES)."""
    return {
        "ok": and_(SRC.paused.is_(False), SRC.consecutive_failures == 0, SRC.last_success_at.is_not(None)),
        "failing": and_(SRC.paused.is_(False), SRC.consecutive_failures > 0),
        "paused": SRC.paused.is_(True),
        "new": and_(SRC.paused.is_(False), SRC.last_polled_at.is_(None)),
        "websub": SRC.websub_state == "active",
    }[state]


def source_page(engine: Engine, search: str | None = None, state: str | None = None, limit: int = 50,
                after: str | None = None, before: str | None = None) -> Page:
    """Sources by name, `limit` after the name `after` (or before `before`), with search and state filter."""
    conds = [source_state(state)] if state in SOURCE_STATES else []
    search = (search or "").strip()
    if search:
        pattern = like(search.lower())
        conds.append(or_(func.lower(SRC.name).like(pattern, escape="\\"), func.lower(SRC.url).like(pattern, escape="\\")))
    with engine.connect() as conn:
        rows, nxt, prev = _keyset(conn, sources, SRC.name, conds, limit, after, before, 0, desc=False)
        total, capped = _count(conn, sources, conds, False)
        counts = {s: conn.execute(select(func.count()).select_from(sources).where(source_state(s))).scalar_one()
                  for s in SOURCE_STATES}
    return Page(rows, total, capped, nxt, prev, extra={"counts": counts})
