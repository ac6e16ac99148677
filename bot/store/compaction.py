"""Compaction of the delivery log: per-recipient rows are kept while they matter, then folded.

A row matters while it is in flight, failed, has a bounce or complaint outcome, or is younger than
`delivery.detail_days`. After that, the finished rows of a group (one alert, correction or digest
run on one channel) are folded: their counts stay in the summary (marked `folded`), each
subscriber's counters get them, the (delivery id, subscriber id) pairs go into a compressed chunk,
and the rows are deleted. Every batch is one short transaction that deletes exactly the rows it
counts, so a crash between or inside batches loses nothing and counts nothing twice. At
`bot.retention_days` the rest of a group's finished rows are folded the same way.
"""
from __future__ import annotations

import bisect
import time
import zlib
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from bot.models import FINAL_STATES, DeliveryState
from bot.store import summary
from bot.store.db import retry_locked, utcnow
from bot.store.schema import deliveries, delivery_counts, delivery_folds, delivery_groups, subscriber_counts, subscribers

D, G, C, F, SC = deliveries.c, delivery_groups.c, delivery_counts.c, delivery_folds.c, subscriber_counts.c
FOLD_SPAN = 100_000  # delivery ids one chunk of pairs may span (bounds the search for a late bounce)
COMPACTED = (DeliveryState.SENT, DeliveryState.CANCELLED)  # what detail_days folds; failures wait for retention
_ROW = (D.id, D.item_id, D.digest_id, D.channel, D.revision, D.state, D.subscriber_id, D.recipient)


@dataclass
class Pacer:
    """Batch sizes that keep each transaction near `target` seconds (the write lock is held that long),
    with a pause between batches so other writers get the lock."""

    target: float = 0.05
    batch: int = 500  # the first batch; then sized to the time it held the lock
    smallest: int = 50
    largest: int = 20000
    pause: float = 0.02
    stop: Callable[[], bool] | None = None  # checked between batches: True ends the run early
    slowest: float = 0.0
    batches: int = 0
    interrupted: bool = False

    def took(self, seconds: float) -> None:
        """Adjust the next batch to the time this one held the lock."""
        self.batches += 1
        self.slowest = max(self.slowest, seconds)
        if seconds > self.target * 1.5:
            self.batch = max(self.smallest, int(self.batch * self.target / seconds))
        elif seconds < self.target / 2:
            self.batch = min(self.largest, int(self.batch * 1.5) + 1)

    def stopped(self) -> bool:
        """Whether the caller asked to stop (and, if not, a short pause for other writers)."""
        if self.interrupted or (self.stop is not None and self.stop()):
            self.interrupted = True
            return True
        time.sleep(self.pause)
        return False


# -- (delivery id, subscriber id) chunks ------------------------------------------------------------

def _varint(n: int, out: bytearray) -> None:
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


def encode(pairs: list[tuple[int, int]]) -> bytes:
    """Sorted (delivery id, subscriber id) pairs as zlib-compressed varint deltas (zigzag for subscribers)."""
    out = bytearray()
    last_id, last_sub = 0, 0
    for did, sid in pairs:
        _varint(did - last_id, out)
        delta = sid - last_sub
        _varint((delta << 1) ^ (delta >> 63), out)
        last_id, last_sub = did, sid
    return zlib.compress(bytes(out), 6)


def decode(data: bytes) -> list[tuple[int, int]]:
    """The pairs `encode` stored."""
    raw, pairs, i, values = zlib.decompress(data), [], 0, []
    while i < len(raw):
        n, shift = 0, 0
        while True:
            b = raw[i]
            i += 1
            n |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                break
        values.append(n)
    did = sid = 0
    for k in range(0, len(values), 2):
        did += values[k]
        z = values[k + 1]
        sid += (z >> 1) ^ -(z & 1)
        pairs.append((did, sid))
    return pairs


# -- folding ------------------------------------------------------------------------------------------

def fold(conn: Connection, rows: list[dict], states, keep_outcomes: bool) -> int:
    """Fold these rows (dicts of _ROW) inside the caller's transaction: delete the ones still in one of
    `states` (and, with keep_outcomes, without a bounce/complaint outcome), then count exactly those."""
    if not rows:
        return 0
    where = [D.id.in_([r["id"] for r in rows]), D.state.in_([str(s) for s in states])]
    if keep_outcomes:
        where.append(D.outcome.is_(None))
    gone = {r[0]: r[1] for r in conn.execute(delete(deliveries).where(*where).returning(D.id, D.state))}
    done = [{**r, "state": gone[r["id"]]} for r in rows if r["id"] in gone]
    ids = summary.group_ids(conn, {summary.key_of(r) for r in done})
    folded: Counter = Counter((ids[summary.key_of(r)], r["state"]) for r in done)
    summary.add(conn, {}, folded)
    people = Counter((r["subscriber_id"], r["state"]) for r in done if r["subscriber_id"] is not None)
    _add_people(conn, people)
    chunks: dict[tuple[int, str], list[tuple[int, int]]] = defaultdict(list)
    for r in done:
        if r["subscriber_id"] is not None:
            chunks[(ids[summary.key_of(r)], r["state"])].append((r["id"], r["subscriber_id"]))
    _add_chunks(conn, chunks)
    return len(done)


def _add_people(conn: Connection, counts: Counter) -> None:
    rows = [{"subscriber_id": sid, "state": state, "n": n} for (sid, state), n in counts.items() if n]
    if rows:
        ins = summary._insert(conn, subscriber_counts)
        conn.execute(ins.on_conflict_do_update(index_elements=["subscriber_id", "state"], set_={"n": SC.n + ins.excluded.n}), rows)


def _add_chunks(conn: Connection, chunks: dict[tuple[int, str], list[tuple[int, int]]]) -> None:
    rows = []
    for (gid, state), pairs in chunks.items():
        pairs.sort()
        start = 0
        while start < len(pairs):  # cut where a chunk would span more than FOLD_SPAN ids
            end = bisect.bisect_right(pairs, (pairs[start][0] + FOLD_SPAN, 1 << 62), start)
            part = pairs[start:end]
            rows.append({"group_id": gid, "state": state, "first_id": part[0][0], "last_id": part[-1][0],
                         "n": len(part), "data": encode(part)})
            start = end
    if rows:
        conn.execute(insert(delivery_folds), rows)


def _group_rows(conn: Connection, group, after: str, limit: int) -> list[dict]:
    """The group's next rows by recipient (its unique index), after recipient `after`."""
    if group.item_id is not None:
        where = [D.item_id == group.item_id, D.channel == group.channel, D.revision == group.revision]
    else:
        where = [D.digest_id == group.digest_id, D.channel == group.channel]
    q = select(*_ROW).where(*where, D.recipient > after).order_by(D.recipient).limit(limit)
    return [dict(r) for r in conn.execute(q).mappings()]


def sweep(engine: Engine, group, states, keep_outcomes: bool, pacer: Pacer, per_recipient: bool = True) -> Iterator[int]:
    """Fold a group's rows in paced batches; yields rows folded per batch (stop early with pacer.stop)."""
    after = ""
    while True:
        with engine.begin() as conn:
            newest = conn.execute(select(func.max(D.id))).scalar()
            rows = _group_rows(conn, group, after, pacer.batch)
            if not rows:
                return
            after = rows[-1]["recipient"]
            # The newest row of the table is never deleted: SQLite gives a new row max(id) + 1, and an
            # id that came back could make a late bounce's delivery id name another message.
            todo = [r for r in rows if r["id"] != newest and (r["subscriber_id"] is not None or not per_recipient)]
            t0 = time.monotonic()
            n = fold(conn, todo, states, keep_outcomes)
        pacer.took(time.monotonic() - t0)
        yield n
        if pacer.stopped():
            return


@dataclass
class Report:
    """What one compaction run did."""

    groups: int = 0
    rows: int = 0
    batches: int = 0
    slowest_batch_s: float = 0.0
    interrupted: bool = False
    by_group: dict = field(default_factory=dict)


def compact(engine: Engine, detail_days: float, now: datetime | None = None, pacer: Pacer | None = None) -> Report:
    """Fold the finished per-recipient rows of every group queued more than `detail_days` ago whose
    alert or digest has nothing waiting or in flight; mark each group swept."""
    now = now or utcnow()
    pacer = pacer or Pacer()
    cutoff = now - timedelta(days=detail_days)
    with engine.connect() as conn:
        groups = conn.execute(select(G.id, G.subject, G.item_id, G.digest_id, G.channel, G.revision)
                              .where(G.compacted_at.is_(None), G.last_row_at < cutoff).order_by(G.id)).all()
        busy = summary.unfinished_subjects(conn, {g.subject for g in groups})
    report = Report()
    for group in groups:
        if group.subject in busy:
            continue
        for n in sweep(engine, group, COMPACTED, True, pacer):
            report.rows += n
            report.by_group[group.id] = report.by_group.get(group.id, 0) + n
        if pacer.interrupted:
            report.interrupted = True
            break
        retry_locked(lambda: _mark(engine, group.id, now))
        report.groups += 1
    report.batches, report.slowest_batch_s = pacer.batches, round(pacer.slowest, 4)
    return report


def _mark(engine: Engine, group_id: int, now: datetime) -> None:
    with engine.begin() as conn:
        conn.execute(update(delivery_groups).where(G.id == group_id).values(compacted_at=now))


def fold_old(engine: Engine, cutoff: datetime, pacer: Pacer) -> int:
    """Retention: fold every finished row (failures, outcomes and channel posts too) of the groups
    whose rows were all queued before `cutoff`; returns rows folded."""
    final = [str(s) for s in FINAL_STATES]
    with engine.connect() as conn:
        groups = conn.execute(
            select(G.id, G.subject, G.item_id, G.digest_id, G.channel, G.revision).join(delivery_counts, C.group_id == G.id)
            .where(G.last_row_at < cutoff, C.state.in_(final), C.n > C.folded).distinct().order_by(G.id)).all()
    total = 0
    for group in groups:
        for n in sweep(engine, group, FINAL_STATES, False, pacer, per_recipient=False):
            total += n
        if pacer.interrupted:
            break
    return total


# -- a late bounce -------------------------------------------------------------------------------------

def restore(conn: Connection, delivery_id: int) -> dict | None:
    """Bring back the row of a compacted delivery, inside the caller's transaction, so a bounce or
    complaint naming its id (a VERP address carries it) is attributed like any other: the same id,
    alert or digest, channel, revision, state and subscriber; its counts move from `folded` back to
    the live part (no number changes). None when no chunk holds the id (pruned, or never sent)."""
    chunks = conn.execute(select(F.id, F.group_id, F.state, F.data).where(
        F.first_id <= delivery_id, F.first_id >= delivery_id - FOLD_SPAN, F.last_id >= delivery_id)).all()
    for chunk in chunks:
        pairs = decode(chunk.data)
        i = bisect.bisect_left(pairs, (delivery_id, -(1 << 62)))
        if i == len(pairs) or pairs[i][0] != delivery_id:
            continue
        sid = pairs[i][1]
        g = conn.execute(select(delivery_groups).where(G.id == chunk.group_id)).mappings().one()
        status = conn.execute(select(subscribers.c.status).where(subscribers.c.id == sid)).scalar()
        row = {"id": delivery_id, "item_id": g["item_id"], "digest_id": g["digest_id"], "channel": g["channel"],
               "recipient": f"deleted:{sid}" if status == "deleted" else str(sid), "subscriber_id": sid,
               "revision": g["revision"], "state": chunk.state,
               "kind": "digest" if g["digest_id"] is not None else ("update" if g["revision"] else "alert"),
               "attempts": 1 if chunk.state == DeliveryState.SENT else 0, "created_at": g["created_at"]}
        try:
            with conn.begin_nested():
                conn.execute(insert(deliveries).values(**row))
        except IntegrityError:
            return None  # a row with that key exists: nothing to restore
        summary.add(conn, {}, {(chunk.group_id, chunk.state): -1})
        _add_people(conn, Counter({(sid, chunk.state): -1}))
        rest = pairs[:i] + pairs[i + 1:]
        if rest:
            conn.execute(update(delivery_folds).where(F.id == chunk.id).values(
                data=encode(rest), n=len(rest), first_id=rest[0][0], last_id=rest[-1][0]))
        else:
            conn.execute(delete(delivery_folds).where(F.id == chunk.id))
        return row
    return None
