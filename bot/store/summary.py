"""The delivery log's numbers (delivery_groups, delivery_counts), kept in step with every state change.

Every write that creates delivery rows or changes their state adds its counts here in the same
transaction, so each count an operator sees (`flashbot deliveries`, the dashboard, /metrics) reads
this small table, never the log, and compaction, which deletes finished rows, changes no number.
A group is one alert, correction or digest run on one channel; its counts say how many of its rows
are in each state (`folded` of them compacted away), and it keeps its first/last send and a
histogram of queued → sent seconds.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from datetime import datetime

from sqlalchemy import Connection, Row, bindparam, case, func, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite

from bot.models import UNFINISHED_STATES, DeliveryState
from bot.store.schema import deliveries, delivery_counts, delivery_groups

D, G, C = deliveries.c, delivery_groups.c, delivery_counts.c
Key = tuple  # (item_id, digest_id, channel, revision): one group
# Upper bounds (seconds) of the latency histogram; sends slower than the last one go to "inf".
LATENCY_BOUNDS = (1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 21600, 86400)
KEY_COLUMNS = (D.item_id, D.digest_id, D.channel, D.revision)


def subject(item_id: int | None, digest_id: int | None) -> int:
    """The group's subject: the item id, or minus the digest id."""
    return item_id if item_id is not None else -(digest_id or 0)


def key_of(row: Mapping) -> Key:
    """The group key of a delivery row (a mapping with item_id, digest_id, channel, revision)."""
    return (row["item_id"], row["digest_id"], row["channel"], row["revision"] or 0)


def _insert(conn: Connection, table):
    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)


# Built once: every claim and every batch of outcomes runs them (the statements' construction cost as
# much as their execution).
_FIND = select(G.id, G.item_id, G.digest_id, G.channel, G.revision, G.created_at, G.first_at, G.last_at, G.latency).where(
    tuple_(G.subject, G.channel, G.revision).in_(bindparam("keys", expanding=True)))
_UPSERTS: dict[str, object] = {}


def _upsert_counts(conn: Connection):
    stmt = _UPSERTS.get(conn.dialect.name)
    if stmt is None:
        ins = _insert(conn, delivery_counts)
        stmt = _UPSERTS[conn.dialect.name] = ins.on_conflict_do_update(
            index_elements=["group_id", "state"], set_={"n": C.n + ins.excluded.n, "folded": C.folded + ins.excluded.folded})
    return stmt


def groups(conn: Connection, keys: Iterable[Key], now: datetime | None = None, lock: bool = False) -> dict[Key, Row]:
    """{key: its group row (id, created_at, first_at, last_at, latency)}; missing groups are created
    (queued `now`). lock: the rows are read to be written (FOR UPDATE on PostgreSQL)."""
    keys = set(keys)
    found: dict[Key, Row] = {}
    wanted = sorted({(subject(k[0], k[1]), k[2], k[3]) for k in keys})
    for i in range(0, len(wanted), 300):
        q = _FIND.with_for_update() if lock and conn.dialect.name == "postgresql" else _FIND
        for r in conn.execute(q, {"keys": wanted[i:i + 300]}):
            found[(r.item_id, r.digest_id, r.channel, r.revision)] = r
    missing = [k for k in keys if k not in found]
    if missing:
        rows = [{"subject": subject(k[0], k[1]), "item_id": k[0], "digest_id": k[1], "channel": k[2],
                 "revision": k[3], "created_at": now, "last_row_at": now} for k in missing]
        conn.execute(_insert(conn, delivery_groups).on_conflict_do_nothing(), rows)
        found.update(groups(conn, missing, lock=lock))  # they exist now: this finds them
    return found


def group_ids(conn: Connection, keys: Iterable[Key], now: datetime | None = None) -> dict[Key, int]:
    """{key: group id}; groups that do not exist yet are created (queued `now`)."""
    return {k: r.id for k, r in groups(conn, keys, now).items()}


def _earliest(column, at: datetime):
    return case((column.is_(None) | (column > at), at), else_=column)


def _latest(column, at: datetime):
    return case((column.is_(None) | (column < at), at), else_=column)


def add(conn: Connection, deltas: Mapping[tuple[int, str], int], folded: Mapping[tuple[int, str], int] | None = None) -> None:
    """Add {(group id, state): n} to the counts (and {(group id, state): n} to their folded part)."""
    folded = folded or {}
    rows = [{"group_id": g, "state": str(s), "n": deltas.get((g, s), 0), "folded": folded.get((g, s), 0)}
            for g, s in set(deltas) | set(folded) if deltas.get((g, s)) or folded.get((g, s))]
    if rows:
        conn.execute(_upsert_counts(conn), rows)


def queued(conn: Connection, key: Key, n: int, now: datetime, state: str = "pending") -> None:
    """`n` new rows of a group, in `state` (pending unless said), created `now`."""
    if n <= 0:
        return
    gid = group_ids(conn, [key], now)[key]
    conn.execute(update(delivery_groups).where(G.id == gid).values(
        created_at=_earliest(G.created_at, now), last_row_at=_latest(G.last_row_at, now)))
    add(conn, {(gid, state): n})


def moved(conn: Connection, moves: Mapping[tuple[Key, str, str], int], found: Mapping[Key, Row] | None = None) -> None:
    """Rows that went from one state to another: {(key, old state, new state): n} (`found`: their groups, if looked up)."""
    moves = {m: n for m, n in moves.items() if n and m[1] != m[2]}
    if not moves:
        return
    found = found if found is not None else groups(conn, {k for k, _, _ in moves})
    deltas: Counter = Counter()
    for (key, old, new), n in moves.items():
        deltas[(found[key].id, str(old))] -= n
        deltas[(found[key].id, str(new))] += n
    add(conn, deltas)


def move(conn: Connection, where, old_states: Iterable[str], **values) -> int:
    """UPDATE deliveries SET values WHERE where, one old state at a time (so each row's old state is
    known), keeping the counts in step; returns the rows changed. `values` must set `state`."""
    new, total = values["state"], 0
    for old in old_states:
        stmt = deliveries.update().where(where, D.state == old).values(**values).returning(*KEY_COLUMNS)
        keys = Counter((r[0], r[1], r[2], r[3] or 0) for r in conn.execute(stmt))
        moved(conn, {(k, old, new): n for k, n in keys.items()})
        total += sum(keys.values())
    return total


def bucket(seconds: float) -> str:
    """The histogram bucket (its upper bound, as a JSON key) of a latency."""
    for bound in LATENCY_BOUNDS:
        if seconds <= bound:
            return str(bound)
    return "inf"


def sends(conn: Connection, times: Mapping[Key, list[datetime]], found: Mapping[Key, Row] | None = None) -> None:
    """Record sends (their times) in their groups: first/last send and the latency histogram
    (`found`: their group rows, read with lock=True in this transaction)."""
    if not times:
        return
    found = found if found is not None else groups(conn, times, lock=True)
    for key, at in times.items():
        g = found[key]
        hist = Counter(g.latency or {})
        if g.created_at is not None:
            hist.update(bucket((t - g.created_at).total_seconds()) for t in at)
        first, last = min(at), max(at)
        conn.execute(update(delivery_groups).where(G.id == g.id).values(
            latency=dict(hist), first_at=min(first, g.first_at) if g.first_at else first,
            last_at=max(last, g.last_at) if g.last_at else last))


def recorded(conn: Connection, results: list[Mapping], changed: int) -> None:
    """A batch of outcomes was written (`changed` rows of them were still `sending`): move their counts,
    add their sends. Should a row have been changed by someone else meanwhile, its groups are recounted."""
    keys = {r["id"]: (r.get("item_id"), r.get("digest_id"), r["channel"], r.get("revision") or 0) for r in results}
    if changed != len(results):
        rebuild(conn, {subject(k[0], k[1]) for k in keys.values()})
        return
    found = groups(conn, set(keys.values()), lock=True)  # one lookup for the counts and the sends
    moved(conn, Counter((keys[r["id"]], DeliveryState.SENDING, r["state"]) for r in results), found)
    times: dict[Key, list[datetime]] = defaultdict(list)
    for r in results:
        if r["state"] == DeliveryState.SENT and r.get("sent"):
            times[keys[r["id"]]].append(r["sent"])
    sends(conn, times, found)


def unfinished_subjects(conn: Connection, subjects: Iterable[int]) -> set[int]:
    """Which of these subjects still have rows waiting or in flight."""
    subjects = sorted(set(subjects))
    out: set[int] = set()
    for i in range(0, len(subjects), 500):
        q = (select(G.subject).join(delivery_counts, C.group_id == G.id)
             .where(G.subject.in_(subjects[i:i + 500]), C.state.in_([str(s) for s in UNFINISHED_STATES]), C.n > 0))
        out.update(r[0] for r in conn.execute(q))
    return out


def rebuild(conn: Connection, subjects: Iterable[int] | None = None) -> None:
    """Recount groups from their rows (all, or these subjects): the live part of each count is set
    to the rows there are, compacted parts stay; first/last send and the histogram are recomputed
    for groups nothing was compacted from. Fills the tables of a database older than them."""
    where = [] if subjects is None else [func.coalesce(D.item_id, -D.digest_id).in_(sorted(set(subjects)))]
    rows = conn.execute(select(*KEY_COLUMNS, D.state, func.count(), func.min(D.created_at), func.max(D.created_at))
                        .where(*where).group_by(*KEY_COLUMNS, D.state)).all()
    live: dict[tuple[Key, str], int] = {}
    span: dict[Key, tuple[datetime, datetime]] = {}
    for item_id, digest_id, channel, revision, state, n, lo, hi in rows:
        key = (item_id, digest_id, channel, revision or 0)
        live[(key, state)] = n
        if lo is not None:
            before = span.get(key, (lo, hi))
            span[key] = (min(before[0], lo), max(before[1], hi))
    ids = group_ids(conn, {k for k, _ in live})
    for key, (lo, hi) in span.items():
        conn.execute(update(delivery_groups).where(G.id == ids[key]).values(
            created_at=_earliest(G.created_at, lo), last_row_at=_latest(G.last_row_at, hi)))
    sel = select(G.id).where(G.subject.in_(sorted(set(subjects)))) if subjects is not None else select(G.id)
    gids = {r[0] for r in conn.execute(sel)} | set(ids.values())
    current = {(r.group_id, r.state): (r.n, r.folded) for r in conn.execute(
        select(C.group_id, C.state, C.n, C.folded).where(C.group_id.in_(sorted(gids))))} if gids else {}
    deltas: Counter = Counter()
    for (gid, state), (n, folded) in current.items():
        deltas[(gid, state)] -= n - folded  # drop the old live part …
    for (key, state), n in live.items():
        deltas[(ids[key], state)] += n  # … and put the rows there are
    add(conn, deltas)
    _rebuild_sends(conn, ids, {gid for (gid, _), (_, f) in current.items() if f}, where)


def _rebuild_sends(conn: Connection, ids: dict[Key, int], folded_groups: set[int], where: list) -> None:
    todo = {k: g for k, g in ids.items() if g not in folded_groups}
    if not todo:
        return
    created = dict(conn.execute(select(G.id, G.created_at).where(G.id.in_(sorted(todo.values())))).all())
    hist: dict[int, Counter] = defaultdict(Counter)
    first: dict[int, datetime] = {}
    last: dict[int, datetime] = {}
    q = select(*KEY_COLUMNS, D.sent_at).where(D.state == "sent", D.sent_at.is_not(None), *where)
    for item_id, digest_id, channel, revision, at in conn.execute(q.execution_options(yield_per=5000)):
        gid = todo.get((item_id, digest_id, channel, revision or 0))
        if gid is None:
            continue
        if created.get(gid) is not None:
            hist[gid][bucket((at - created[gid]).total_seconds())] += 1
        first[gid] = min(first.get(gid, at), at)
        last[gid] = max(last.get(gid, at), at)
    for gid in todo.values():
        conn.execute(update(delivery_groups).where(G.id == gid).values(
            latency=dict(hist[gid]) or None, first_at=first.get(gid), last_at=last.get(gid)))


def verify(conn: Connection) -> dict[tuple[Key, str], tuple[int, int]]:
    """Groups whose live counts differ from their rows: {(key, state): (summary, rows)} (empty when in step)."""
    rows = {((i, d, c, r or 0), s): n for i, d, c, r, s, n in conn.execute(
        select(*KEY_COLUMNS, D.state, func.count()).group_by(*KEY_COLUMNS, D.state))}
    told = {((i, d, c, r), s): n - f for i, d, c, r, s, n, f in conn.execute(
        select(G.item_id, G.digest_id, G.channel, G.revision, C.state, C.n, C.folded).join(delivery_counts, C.group_id == G.id))}
    return {k: (told.get(k, 0), rows.get(k, 0)) for k in set(rows) | set(told) if told.get(k, 0) != rows.get(k, 0)}
