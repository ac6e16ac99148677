"""A crash during compaction loses nothing and counts nothing twice: stopped between batches, failing inside
one (its transaction rolls back), and a real `flashbot compact` process killed with SIGKILL mid-run."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.store import compaction, delivery_log, open_db, outbox, summary_rebuild, utcnow
from bot.store.schema import deliveries
from bot.store.schema_summary import delivery_counts, subscriber_counts
from fixtures_delivery import add_item, add_subscribers

ROOT = Path(__file__).resolve().parent.parent
STATES = ["sent"] * 8 + ["cancelled", "failed"]  # one in ten fails: failures stay until retention


def seed(engine, n: int, days_old: float = 10) -> tuple[int, list[int]]:
    """An alert whose n rows (sent, cancelled, failed) were queued `days_old` days ago, plus a newer alert."""
    item = add_item(engine)
    ids = add_subscribers(engine, [f"k{i:05d}@example.net" for i in range(n)])
    old = utcnow() - timedelta(days=days_old)
    with engine.begin() as conn:
        outbox.insert_rows(conn, [{"item_id": item, "channel": "email", "recipient": str(sid), "subscriber_id": sid,
                                   "state": STATES[i % len(STATES)], "created_at": old} for i, sid in enumerate(ids)])
    recent = add_item(engine, title="FLASH INFO — Plus récent", link="https://news.example.org/recent")
    with engine.begin() as conn:  # a young alert next to it: compaction leaves it alone
        outbox.insert_rows(conn, [{"item_id": recent, "channel": "email", "recipient": str(ids[0]), "subscriber_id": ids[0],
                                   "state": "sent", "created_at": utcnow()}])
    return item, ids


def check(engine, item: int, n: int) -> tuple[int, Counter]:
    """The invariants after any interruption: counts unchanged, rows + compacted = n, each row counted once."""
    with engine.connect() as conn:
        assert summary_rebuild.verify(conn) == {}
        folded = conn.execute(select(func.sum(delivery_counts.c.compacted))).scalar_one() or 0
        people = Counter(dict(conn.execute(select(subscriber_counts.c.subscriber_id, subscriber_counts.c.n)).all()))
        rows = conn.execute(select(func.count()).select_from(deliveries).where(deliveries.c.item_id == item)).scalar_one()
    assert rows + folded == n
    assert sum(people.values()) == folded and set(people.values()) <= {1}
    counts = {r["state"]: r["count"] for r in delivery_log.counts(engine, item_id=item)}
    assert counts == Counter(STATES[i % len(STATES)] for i in range(n))
    return folded, people


@pytest.fixture
def engine(tmp_path, database):
    eng = open_db(database or f"sqlite:///{tmp_path / 'crash.db'}")
    yield eng
    eng.dispose()


def test_stopped_between_batches_then_resumed(engine):
    item, _ = seed(engine, 200)
    pacer = compaction.Pacer(batch=7, smallest=7, largest=7, pause=0)
    pacer.stop = lambda: pacer.batches >= 4  # as if the process stopped after four committed batches
    report = compaction.compact(engine, 7, pacer=pacer)
    assert report.interrupted and report.groups == 0 and 0 < report.rows <= 4 * 7
    assert check(engine, item, 200)[0] == report.rows
    again = compaction.compact(engine, 7, pacer=compaction.Pacer(pause=0))
    assert not again.interrupted and again.groups == 1  # the old alert (the recent one is too young)
    folded, _ = check(engine, item, 200)
    assert folded == report.rows + again.rows == 180  # every sent and cancelled row; the 20 failures stay


def test_failure_inside_a_batch_rolls_it_back(engine, monkeypatch):
    item, _ = seed(engine, 120)
    with engine.connect() as conn:  # the sweep goes by recipient: what its first two batches hold
        first = conn.execute(select(deliveries.c.state).where(deliveries.c.item_id == item)
                             .order_by(deliveries.c.recipient).limit(20)).scalars().all()
    real, calls = compaction.add_people, []

    def dying(conn, counts):
        calls.append(1)
        if len(calls) == 3:  # the rows of this batch are already deleted and counted in the transaction
            raise RuntimeError("disk full")
        return real(conn, counts)

    monkeypatch.setattr(compaction, "add_people", dying)
    with pytest.raises(RuntimeError):
        compaction.compact(engine, 7, pacer=compaction.Pacer(batch=10, smallest=10, largest=10, pause=0))
    assert check(engine, item, 120)[0] == sum(s != "failed" for s in first)  # two batches committed, the third undone
    monkeypatch.setattr(compaction, "add_people", real)
    compaction.compact(engine, 7, pacer=compaction.Pacer(pause=0))
    assert check(engine, item, 120)[0] == 108


def test_sigkill_mid_compaction_loses_nothing(engine, tmp_path, database):
    n = 3000
    item, _ = seed(engine, n)
    (tmp_path / "config.toml").write_text(f'[bot]\ndatabase = "{database or tmp_path / "crash.db"}"\n')
    cmd = [sys.executable, "-m", "bot", "--config", str(tmp_path / "config.toml"), "compact", "--batch", "15"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    folded = 0
    while folded < 150 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
        with engine.connect() as conn:
            folded = conn.execute(select(func.sum(delivery_counts.c.compacted))).scalar_one() or 0
    assert proc.poll() is None, f"compact ended before it could be killed: {proc.stdout.read().decode()}"
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    folded, _ = check(engine, item, n)
    assert 150 <= folded < n * 9 // 10  # killed mid-run
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    folded, people = check(engine, item, n)
    assert folded == n * 9 // 10 and len(people) == folded  # each compacted row counted once, on its subscriber
