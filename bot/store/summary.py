"""The delivery log's numbers (delivery_groups, delivery_counts), kept in step with every write.

Every write that creates delivery rows or changes their state adds its counts here in the same
transaction, so each count an operator sees (`flashbot deliveries`, the dashboard, its live fan-out,
/metrics) reads these small tables, never the log, and compaction, which deletes finished rows,
changes no number. A group is one alert, correction or digest run (or every summary mail) on one
channel; its counts say how many of its rows are in each part, a (state, outcome) pair, `compacted`
of them without a row left. The group also keeps its first/last send, a histogram of queued → sent
seconds, its latest finish and the finishes of its last minute (the live rate). Recounting from
the rows (a database older than these tables) is bot/store/summary_rebuild.py.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from datetime import datetime

from sqlalchemy import Connection, Row, bindparam, case, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite

from bot.models import UNFINISHED_STATES, DeliveryState
from bot.store.schema import deliveries
from bot.store.schema_summary import delivery_counts, delivery_groups

D, G, C = deliveries.c, delivery_groups.c, delivery_counts.c
Key = tuple  # (item_id, digest_id, channel, revision): one group
Part = tuple  # (state, outcome): outcome "" (none), "bounced" (failed: the address was refused), or
# for a sent row what came back after the hand-off: "bounced", "soft-bounced", "complained"
BOUNCED = "bounced"
# Upper bounds (seconds) of the latency histogram; sends slower than the last one go to "inf".
LATENCY_BOUNDS = (1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 21600, 86400)
RECENT_SECONDS = 60  # finishes kept per second in delivery_groups.recent (the live rate reads 30 s)
KEY_COLUMNS = (D.item_id, D.digest_id, D.channel, D.revision)


def subject(item_id: int | None, digest_id: int | None) -> int:
    """The group's subject: the item id, minus the digest id, or 0 (summary mails belong to neither)."""
    return item_id if item_id is not None else -(digest_id or 0)


def key_of(row: Mapping) -> Key:
    """The group key of a delivery row (a mapping with item_id, digest_id, channel, revision)."""
    return (row["item_id"], row["digest_id"], row["channel"], row["revision"] or 0)


def part_of(state: str, bounced: bool | None = False, outcome: str | None = None) -> Part:
    """The count a row belongs to: its state, and its outcome (a refused address, or a bounce or complaint
    recorded after the hand-off; bot/store/outcomes.py)."""
    return (str(state), BOUNCED if bounced else str(outcome or ""))


def insert(conn: Connection, table):
    """The dialect's INSERT with ON CONFLICT (SQLite and PostgreSQL)."""
    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)


# Built once: every claim and every batch of outcomes runs them (the statements' construction cost as
# much as their execution).
_FIND = (select(G.id, G.item_id, G.digest_id, G.channel, G.revision, G.created_at, G.first_at, G.last_at, G.latency,
               G.finished_at, G.recent).where(tuple_(G.subject, G.channel, G.revision).in_(bindparam("keys", expanding=True)))
         .order_by(G.id))  # FOR UPDATE takes the rows in this order, whichever process asks
_UPSERTS: dict[str, object] = {}


def _upsert_counts(conn: Connection):
    stmt = _UPSERTS.get(conn.dialect.name)
    if stmt is None:
        ins = insert(conn, delivery_counts)
        stmt = _UPSERTS[conn.dialect.name] = ins.on_conflict_do_update(
            index_elements=["group_id", "state", "outcome"],
            set_={"n": C.n + ins.excluded.n, "compacted": C.compacted + ins.excluded.compacted})
    return stmt


def groups(conn: Connection, keys: Iterable[Key], now: datetime | None = None, lock: bool = False) -> dict[Key, Row]:
    """{key: its group row}; missing groups are created (queued `now`). lock: the rows are read to be
    written (FOR UPDATE on PostgreSQL)."""
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
        conn.execute(insert(conn, delivery_groups).on_conflict_do_nothing(), rows)
        found.update(groups(conn, missing, lock=lock))  # they exist now: this finds them
    return found


def group_ids(conn: Connection, keys: Iterable[Key], now: datetime | None = None) -> dict[Key, int]:
    """{key: group id}; groups that do not exist yet are created (queued `now`)."""
    return {k: r.id for k, r in groups(conn, keys, now).items()}


def earliest(column, at: datetime):
    """SQL: the earlier of column (NULL: none yet) and `at`."""
    return case((column.is_(None) | (column > at), at), else_=column)


def latest(column, at: datetime):
    """SQL: the later of column (NULL: none yet) and `at`."""
    return case((column.is_(None) | (column < at), at), else_=column)


def add(conn: Connection, deltas: Mapping[tuple[int, Part], int], compacted: Mapping[tuple[int, Part], int] | None = None) -> None:
    """Add {(group id, part): n} to the counts (and {(group id, part): n} to their compacted share)."""
    compacted = compacted or {}
    # In key order: on PostgreSQL the workers' claims and outcomes then lock the count rows they share
    # in one order (a set's order differs between processes: two of them could deadlock).
    rows = [{"group_id": g, "state": p[0], "outcome": p[1], "n": deltas.get((g, p), 0), "compacted": compacted.get((g, p), 0)}
            for g, p in sorted(set(deltas) | set(compacted)) if deltas.get((g, p)) or compacted.get((g, p))]
    if rows:
        conn.execute(_upsert_counts(conn), rows)


def queued(conn: Connection, key: Key, n: int, now: datetime, state: str = DeliveryState.PENDING) -> None:
    """`n` new rows of a group, in `state` (pending unless said), created `now`."""
    if n <= 0:
        return
    gid = group_ids(conn, [key], now)[key]
    conn.execute(update(delivery_groups).where(G.id == gid).values(
        created_at=earliest(G.created_at, now), last_row_at=latest(G.last_row_at, now)))
    add(conn, {(gid, part_of(state)): n})


def moved(conn: Connection, moves: Mapping[tuple[Key, Part, Part], int], found: Mapping[Key, Row] | None = None) -> None:
    """Rows that went from one part to another: {(key, old part, new part): n} (`found`: their groups, if looked up)."""
    moves = {m: n for m, n in moves.items() if n and m[1] != m[2]}
    if not moves:
        return
    found = found if found is not None else groups(conn, {k for k, _, _ in moves})
    deltas: Counter = Counter()
    for (key, old, new), n in moves.items():
        deltas[(found[key].id, old)] -= n
        deltas[(found[key].id, new)] += n
    add(conn, deltas)


def move(conn: Connection, where, old_states: Iterable[str], **values) -> int:
    """UPDATE deliveries SET values WHERE where, one old part at a time (so each row's old part is
    known), keeping the counts in step, and the finish times when `finished_at` is set; returns the
    rows changed. `values` must set `state`."""
    new_state, total = values["state"], 0
    finishes: dict[Key, list[datetime]] = defaultdict(list)
    for old in old_states:
        # Only failed rows can be bounced; a write that sets the flag moves each of both kinds.
        flags = (False, True) if old == DeliveryState.FAILED and "bounced" in values else (None,)
        for flag in flags:
            cond = [where, D.state == old] + ([D.bounced.is_(flag)] if flag is not None else [])
            stmt = deliveries.update().where(*cond).values(**values).returning(*KEY_COLUMNS, D.bounced, D.outcome)
            keys = Counter((r[0], r[1], r[2], r[3] or 0, bool(r[4]), r[5]) for r in conn.execute(stmt))
            moved(conn, {(k[:4], part_of(old, k[4] if flag is None else flag, k[5]), part_of(new_state, k[4], k[5])): n
                         for k, n in keys.items()})
            if values.get("finished_at") is not None:
                for k, n in keys.items():
                    finishes[k[:4]] += [values["finished_at"]] * n
            total += sum(keys.values())
    if finishes:
        touched(conn, {}, finishes)
    return total


def bucket(seconds: float) -> str:
    """The histogram bucket (its upper bound, as a JSON key) of a latency."""
    for bound in LATENCY_BOUNDS:
        if seconds <= bound:
            return str(bound)
    return "inf"


def _recent(old: Mapping | None, at: list[datetime]) -> dict[str, int]:
    ring = Counter({int(k): v for k, v in (old or {}).items()})
    ring.update(int(t.timestamp()) for t in at)
    newest = max(ring)
    return {str(s): n for s, n in sorted(ring.items()) if s > newest - RECENT_SECONDS}


def touched(conn: Connection, sends: Mapping[Key, list[datetime]], finishes: Mapping[Key, list[datetime]],
            found: Mapping[Key, Row] | None = None) -> None:
    """Record sends (first/last send, latency histogram) and finishes (latest finish, the last minute's
    finishes per second) in their groups (`found`: their group rows, read with lock=True here)."""
    keys = set(sends) | set(finishes)
    if not keys:
        return
    found = found if found is not None else groups(conn, keys, lock=True)
    for key in keys:
        g, at, done = found[key], sends.get(key), finishes.get(key)
        values: dict = {}
        if at:
            hist = Counter(g.latency or {})
            if g.created_at is not None:
                hist.update(bucket((t - g.created_at).total_seconds()) for t in at)
            values.update(latency=dict(hist), first_at=min(min(at), g.first_at) if g.first_at else min(at),
                          last_at=max(max(at), g.last_at) if g.last_at else max(at))
        if done:
            values.update(finished_at=max(max(done), g.finished_at) if g.finished_at else max(done),
                          recent=_recent(g.recent, done))
        conn.execute(update(delivery_groups).where(G.id == g.id).values(**values))


_KEYS = select(D.id, *KEY_COLUMNS).where(D.id.in_(bindparam("ids", expanding=True)))


def keys_of(conn: Connection, ids: list[int]) -> dict[int, Key]:
    """{delivery id: its group key}, read from the rows (whatever a caller says about them)."""
    out: dict[int, Key] = {}
    for i in range(0, len(ids), 900):
        out.update((r[0], (r[1], r[2], r[3], r[4] or 0)) for r in conn.execute(_KEYS, {"ids": ids[i:i + 900]}))
    return out


def recorded(conn: Connection, results: list[Mapping], keys: Mapping[int, Key], finished: list[datetime | None]) -> None:
    """A batch of outcomes was written, every row of it still `sending` until then (`keys`: their group
    keys by id; `finished`: each one's finish time, None while unfinished): move their counts, add
    their sends and finishes."""
    found = groups(conn, set(keys.values()), lock=True)  # one lookup for the counts and the sends
    moved(conn, Counter((keys[r["id"]], part_of(DeliveryState.SENDING),
                         part_of(r["state"], bool(r.get("bounce_subscriber")))) for r in results), found)
    sends: dict[Key, list[datetime]] = defaultdict(list)
    finishes: dict[Key, list[datetime]] = defaultdict(list)
    for r, at in zip(results, finished):
        if r["state"] == DeliveryState.SENT and r.get("sent"):
            sends[keys[r["id"]]].append(r["sent"])
        if at is not None:
            finishes[keys[r["id"]]].append(at)
    touched(conn, sends, finishes, found)


def unfinished_subjects(conn: Connection, subjects: Iterable[int] | None = None, limit: int = 200) -> set[int]:
    """Which of these subjects (all, when None: at most `limit`) still have rows waiting or in flight."""
    q = (select(G.subject).join(delivery_counts, C.group_id == G.id)
         .where(C.state.in_([str(s) for s in UNFINISHED_STATES]), C.n > 0).distinct())
    if subjects is None:
        return set(conn.execute(q.limit(limit)).scalars())
    subjects = sorted(set(subjects))
    out: set[int] = set()
    for i in range(0, len(subjects), 500):
        out.update(conn.execute(q.where(G.subject.in_(subjects[i:i + 500]))).scalars())
    return out
