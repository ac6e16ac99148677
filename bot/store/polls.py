"""The poll_history table: the last polls of each source (a ring), written with the source's fetch state."""
from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import Connection, Engine, select
from sqlalchemy.engine import RowMapping

from bot.models import FeedResult, PollOutcome
from bot.store import stats
from bot.store.schema import HISTORY_SLOTS, poll_history

_CHUNK = 500  # source ids per IN (...) query


def outcome_of(result: FeedResult) -> PollOutcome:
    """ok, not modified (304 or an unchanged file) or error."""
    if result.error:
        return PollOutcome.ERROR
    return PollOutcome.NOT_MODIFIED if result.not_modified else PollOutcome.OK


def entry(row: RowMapping, result: FeedResult, now: datetime) -> dict:
    """The history row of one poll of the source `row` (as read before the poll)."""
    seq = int(row["poll_count"] or 0) + 1
    return {"source_id": row["id"], "slot": seq % HISTORY_SLOTS, "seq": seq, "at": now,
            "outcome": str(outcome_of(result)), "status": result.status,
            "duration_ms": round(result.elapsed * 1000) if result.elapsed else None,
            "error": result.error[:300] if result.error else None}


def _insert(conn: Connection):
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(poll_history)


def record(conn: Connection, entries: list[dict]) -> None:
    """Write poll rows over their ring slots and count their outcomes, in the caller's transaction."""
    if not entries:
        return
    ins = _insert(conn)
    fields = ("seq", "at", "outcome", "status", "duration_ms", "error")
    conn.execute(ins.on_conflict_do_update(index_elements=["source_id", "slot"],
                                           set_={f: ins.excluded[f] for f in fields}), entries)
    stats.bump(conn, stats.POLL, ((e["at"], "", e["outcome"]) for e in entries))


def recent(engine: Engine, source_ids: Iterable[int]) -> dict[int, list[dict]]:
    """{source id: its recorded polls, oldest first} (at most HISTORY_SLOTS each)."""
    ids = sorted(set(source_ids))
    out: dict[int, list[dict]] = {sid: [] for sid in ids}
    cols = [poll_history.c[c] for c in ("source_id", "seq", "at", "outcome", "status", "duration_ms", "error")]
    with engine.connect() as conn:
        for i in range(0, len(ids), _CHUNK):
            q = select(*cols).where(poll_history.c.source_id.in_(ids[i:i + _CHUNK])).order_by(
                poll_history.c.source_id, poll_history.c.seq)
            for r in conn.execute(q).mappings():
                out[r["source_id"]].append(dict(r))
    return out
