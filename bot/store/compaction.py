"""Compaction of the delivery log: per-recipient rows are kept while they matter, then folded into counts.

A row matters while it is waiting or in flight, failed (the failures pages, a retry), bounced (refused,
or a bounce or complaint came back: bot/store/outcomes.py), sent to a channel rather than a person (a correction edits that Telegram post), or younger than
`delivery.detail_days` (bounces and complaints come back within days). After that a group's finished
rows (one alert, correction or digest run on one channel) are folded: their counts stay in the
summary as `compacted`, each subscriber's counters get them, and the rows are deleted. Every batch is
one short transaction that deletes exactly the rows it counts, so a crash between or inside batches
loses nothing and counts nothing twice. At `bot.retention_days` every finished row is folded alike.
"""
from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, delete, select, update

from bot.models import FINAL_STATES, DeliveryState
from bot.store import summary
from bot.store.db import retry_locked, utcnow
from bot.store.schema import deliveries
from bot.store.schema_summary import delivery_counts, delivery_groups, subscriber_counts

D, G, C, SC = deliveries.c, delivery_groups.c, delivery_counts.c, subscriber_counts.c
# What detail_days folds; failures and bounces keep their rows until retention_days.
COMPACTED = (DeliveryState.SENT, DeliveryState.CANCELLED, DeliveryState.FOLDED)
_ROW = (D.id, D.item_id, D.digest_id, D.channel, D.revision, D.state, D.bounced, D.outcome, D.subscriber_id, D.created_at)


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


def fold(conn: Connection, rows: list[dict], states, keep_bounced: bool) -> int:
    """Fold these rows (dicts of _ROW) inside the caller's transaction: delete the ones still in one of
    `states` (with keep_bounced, not the bounced ones nor those with an outcome), then count exactly
    those as compacted."""
    if not rows:
        return 0
    where = [D.id.in_([r["id"] for r in rows]), D.state.in_([str(s) for s in states])]
    if keep_bounced:
        where += [D.bounced.is_(False), D.outcome.is_(None)]
    gone = {r[0]: r[1:] for r in conn.execute(delete(deliveries).where(*where).returning(D.id, D.state, D.bounced, D.outcome))}
    done = [{**r, "state": gone[r["id"]][0], "bounced": gone[r["id"]][1], "outcome": gone[r["id"]][2]}
            for r in rows if r["id"] in gone]
    ids = summary.group_ids(conn, {summary.key_of(r) for r in done})
    summary.add(conn, {}, Counter((ids[summary.key_of(r)], summary.part_of(r["state"], r["bounced"], r["outcome"]))
                                  for r in done))
    people = Counter((r["subscriber_id"], r["state"]) for r in done if r["subscriber_id"] is not None)
    add_people(conn, people)
    return len(done)


def add_people(conn: Connection, counts: Counter) -> None:
    """Add {(subscriber id, state): n} to the per-subscriber counters of compacted deliveries."""
    rows = [{"subscriber_id": sid, "state": state, "n": n} for (sid, state), n in counts.items() if n]
    if rows:
        ins = summary.insert(conn, subscriber_counts)
        conn.execute(ins.on_conflict_do_update(index_elements=["subscriber_id", "state"], set_={"n": SC.n + ins.excluded.n}), rows)


def _group_rows(conn: Connection, group, after, limit: int) -> list[dict]:
    """The group's next rows after cursor `after`, by an index that holds the group's rows together:
    its unique key (by recipient) for an alert or digest, the summary mails' own index (by id)."""
    if group.item_id is not None:
        where = [D.item_id == group.item_id, D.channel == group.channel, D.revision == group.revision]
        order = D.recipient
    elif group.digest_id is not None:
        where, order = [D.digest_id == group.digest_id, D.channel == group.channel], D.recipient
    else:
        where, order = [D.kind == "summary", D.item_id.is_(None), D.digest_id.is_(None), D.channel == group.channel], D.id
    q = select(*_ROW, order.label("cursor")).where(*where, order > after).order_by(order).limit(limit)
    return [dict(r) for r in conn.execute(q).mappings()]


def sweep(engine: Engine, group, states, keep_bounced: bool, cutoff: datetime, pacer: Pacer,
          per_recipient: bool = True) -> Iterator[int]:
    """Fold a group's rows queued before `cutoff` in paced batches; yields rows folded per batch (stop
    early with pacer.stop). per_recipient: rows addressed to a channel, not a person, stay."""
    by_id = group.item_id is None and group.digest_id is None  # summary mails, queued day after day
    after: object = 0 if by_id else ""
    while True:
        def one() -> tuple[list[dict], int]:
            with engine.begin() as conn:
                rows = _group_rows(conn, group, after, pacer.batch)
                todo = [r for r in rows if r["created_at"] is not None and r["created_at"] < cutoff
                        and (r["subscriber_id"] is not None or not per_recipient)]
                t0 = time.monotonic()
                n = fold(conn, todo, states, keep_bounced)
                pacer.took(time.monotonic() - t0)
                return rows, n
        rows, n = retry_locked(one)
        if not rows:
            return
        after = rows[-1]["cursor"]
        yield n
        # By id, rows come in queueing order: past the first young one there is nothing old left.
        if (by_id and any(r["created_at"] is not None and r["created_at"] >= cutoff for r in rows)) or pacer.stopped():
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


def _candidates(conn: Connection, cutoff: datetime, states, outcome_free: bool) -> list:
    """Groups queued before `cutoff` with rows left in `states` (read from the summary, not the log)."""
    where = [G.created_at < cutoff, C.state.in_([str(s) for s in states]), C.n > C.compacted]
    if outcome_free:
        where.append(C.outcome == "")
    return conn.execute(select(G.id, G.subject, G.item_id, G.digest_id, G.channel, G.revision)
                        .join(delivery_counts, C.group_id == G.id).where(*where).distinct().order_by(G.id)).all()


def compact(engine: Engine, detail_days: float, now: datetime | None = None, pacer: Pacer | None = None) -> Report:
    """Fold the sent, cancelled and folded per-recipient rows queued more than `detail_days` ago."""
    now = now or utcnow()
    pacer = pacer or Pacer()
    cutoff = now - timedelta(days=detail_days)
    with engine.connect() as conn:
        groups = _candidates(conn, cutoff, COMPACTED, True)
    report = Report()
    for group in groups:
        for n in sweep(engine, group, COMPACTED, True, cutoff, pacer):
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
    """Retention: fold every finished row queued before `cutoff` (failures, bounces and channel posts
    too); returns rows folded."""
    with engine.connect() as conn:
        groups = _candidates(conn, cutoff, FINAL_STATES, False)
    total = 0
    for group in groups:
        for n in sweep(engine, group, FINAL_STATES, False, cutoff, pacer, per_recipient=False):
            total += n
        if pacer.interrupted:
            break
    return total
