"""The delivery summary recounted from the rows: filling it in a database older than it (schema step
6), recounting a group a concurrent write left uncertain, and checking it (tests, `flashbot compact`)."""
from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import Connection, func, select, update

from bot.models import DeliveryState
from bot.store.schema import deliveries
from bot.store.schema_summary import delivery_counts, delivery_groups
from bot.store.summary import KEY_COLUMNS, RECENT_SECONDS, Key, add, bucket, earliest, group_ids, latest, part_of

D, G, C = deliveries.c, delivery_groups.c, delivery_counts.c
_SUBJECT = func.coalesce(D.item_id, -func.coalesce(D.digest_id, 0))


def _live(conn: Connection, where: list) -> tuple[dict, dict]:
    """({(key, part): rows}, {key: (first queued, last queued, last finished)}) of the rows matching `where`."""
    rows = conn.execute(select(*KEY_COLUMNS, D.state, D.bounced, D.outcome, func.count(), func.min(D.created_at),
                               func.max(D.created_at), func.max(D.finished_at))
                        .where(*where).group_by(*KEY_COLUMNS, D.state, D.bounced, D.outcome)).all()
    live: dict[tuple[Key, tuple], int] = {}
    span: dict[Key, tuple] = {}
    for item_id, digest_id, channel, revision, state, bounced, outcome, n, lo, hi, fin in rows:
        key, part = (item_id, digest_id, channel, revision or 0), part_of(state, bounced, outcome)
        live[(key, part)] = live.get((key, part), 0) + n
        before = span.get(key, (lo, hi, fin))
        span[key] = tuple(f(a, b) if a and b else a or b for f, a, b in zip((min, max, max), before, (lo, hi, fin)))
    return live, span


def rebuild(conn: Connection, subjects: Iterable[int] | None = None) -> None:
    """Recount groups from their rows (all, or these subjects): the live share of each count is set to
    the rows there are, compacted shares stay; sends, latency and finishes are recomputed for groups
    nothing was compacted from."""
    where = [] if subjects is None else [_SUBJECT.in_(sorted(set(subjects)))]
    live, span = _live(conn, where)
    ids = group_ids(conn, {k for k, _ in live})
    for key, (lo, hi, _fin) in span.items():
        if lo is not None:
            conn.execute(update(delivery_groups).where(G.id == ids[key]).values(
                created_at=earliest(G.created_at, lo), last_row_at=latest(G.last_row_at, hi)))
    sel = select(G.id).where(G.subject.in_(sorted(set(subjects)))) if subjects is not None else select(G.id)
    gids = set(conn.execute(sel).scalars()) | set(ids.values())
    current = {(r.group_id, (r.state, r.outcome)): (r.n, r.compacted) for r in conn.execute(
        select(C.group_id, C.state, C.outcome, C.n, C.compacted).where(C.group_id.in_(sorted(gids))))} if gids else {}
    deltas: Counter = Counter()
    for (gid, part), (n, compacted) in current.items():
        deltas[(gid, part)] -= n - compacted  # drop the old live share …
    for (key, part), n in live.items():
        deltas[(ids[key], part)] += n  # … and put the rows there are
    add(conn, deltas)
    kept = {gid for (gid, _), (_, compacted) in current.items() if compacted}
    _rebuild_times(conn, {k: g for k, g in ids.items() if g not in kept}, span, where)


def _rebuild_times(conn: Connection, todo: dict[Key, int], span: dict[Key, tuple], where: list) -> None:
    """First/last send, the latency histogram, the latest finish and the last minute's finishes, from the rows."""
    if not todo:
        return
    created = dict(conn.execute(select(G.id, G.created_at).where(G.id.in_(sorted(todo.values())))).all())
    hist: dict[int, Counter] = defaultdict(Counter)
    first: dict[int, datetime] = {}
    last: dict[int, datetime] = {}
    q = select(*KEY_COLUMNS, D.sent_at).where(D.state == DeliveryState.SENT, D.sent_at.is_not(None), *where)
    for item_id, digest_id, channel, revision, at in conn.execute(q.execution_options(yield_per=5000)):
        gid = todo.get((item_id, digest_id, channel, revision or 0))
        if gid is None:
            continue
        if created.get(gid) is not None:
            hist[gid][bucket((at - created[gid]).total_seconds())] += 1
        first[gid] = min(first.get(gid, at), at)
        last[gid] = max(last.get(gid, at), at)
    for key, gid in todo.items():
        fin = span.get(key, (None, None, None))[2]
        recent = _recent_from_rows(conn, key, fin) if fin else None
        conn.execute(update(delivery_groups).where(G.id == gid).values(
            latency=dict(hist[gid]) or None, first_at=first.get(gid), last_at=last.get(gid), finished_at=fin, recent=recent))


def _recent_from_rows(conn: Connection, key: Key, newest: datetime) -> dict[str, int]:
    cond = [c.is_(None) if v is None else c == v for c, v in zip(KEY_COLUMNS, key)]
    q = select(D.finished_at).where(*cond, D.finished_at >= newest - timedelta(seconds=RECENT_SECONDS))
    ring: Counter = Counter(int(t.timestamp()) for t in conn.execute(q).scalars())
    top = int(newest.timestamp())
    return {str(s): n for s, n in sorted(ring.items()) if s > top - RECENT_SECONDS}


def verify(conn: Connection) -> dict[tuple[Key, tuple], tuple[int, int]]:
    """Counts whose live share differs from the rows: {(key, part): (summary, rows)} (empty when in step)."""
    rows: Counter = Counter()
    for i, d, c, r, s, b, o, n in conn.execute(select(*KEY_COLUMNS, D.state, D.bounced, D.outcome, func.count())
                                               .group_by(*KEY_COLUMNS, D.state, D.bounced, D.outcome)):
        rows[((i, d, c, r or 0), part_of(s, b, o))] += n
    told = {((i, d, c, r), (s, o)): n - k for i, d, c, r, s, o, n, k in conn.execute(
        select(G.item_id, G.digest_id, G.channel, G.revision, C.state, C.outcome, C.n, C.compacted)
        .join(delivery_counts, C.group_id == G.id))}
    return {k: (told.get(k, 0), rows.get(k, 0)) for k in set(rows) | set(told) if told.get(k, 0) != rows.get(k, 0)}
