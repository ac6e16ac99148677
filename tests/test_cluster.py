"""The cluster parts on a real PostgreSQL (and what SQLite keeps): claims with SKIP LOCKED and
leases, the scheduler lock, LISTEN/NOTIFY wake-ups, the shared rate, instances, roles."""
from __future__ import annotations

import asyncio
import threading
from datetime import timedelta

import pytest
from sqlalchemy import select

from bot.delivery import fanout, leases
from bot.models import DeliveryState, Event, EventKind
from bot.service.cluster import parse_roles
from bot.store import claims, instances, throttle, utcnow
from bot.store.postgres import LeaderLock, listen
from bot.store.schema import deliveries
from fixtures_delivery import add_item, add_subscribers

D = deliveries.c


def _queue(db, cfg, n: int) -> int:
    item = add_item(db)
    add_subscribers(db, [f"s{i}@example.net" for i in range(n)])
    return fanout.queue_events(db, cfg, [Event(item, EventKind.FLASH, "src", "t", True)])


@pytest.fixture
def pg(backend):
    if backend != "postgresql":
        pytest.skip("PostgreSQL only: the SQLite instance is alone by construction")


@pytest.mark.parametrize("text,roles", [
    ("scheduler,worker,web", ["scheduler", "worker", "web"]),
    ("web, worker", ["worker", "web"]),
    ("WORKER", ["worker"]),
    ("worker,worker", ["worker"]),
])
def test_roles_parse(text, roles):
    assert parse_roles(text) == roles


@pytest.mark.parametrize("text", ["", "mailer", "worker,cron", " , "])
def test_bad_roles_name_the_option(text):
    with pytest.raises(ValueError, match="--role"):
        parse_roles(text)


def test_concurrent_claims_never_share_a_row(pg, delivery_config, delivery_engine):
    total = _queue(delivery_engine, delivery_config, 600)
    got: dict[str, list[int]] = {}
    barrier = threading.Barrier(4)

    def worker(name: str) -> None:
        barrier.wait()
        mine = got.setdefault(name, [])
        while rows := claims.claim(delivery_engine, 50, owner=name):
            mine += [r["id"] for r in rows]

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    ids = [i for rows in got.values() for i in rows]
    assert len(ids) == len(set(ids)) == total  # every row claimed exactly once
    with delivery_engine.connect() as conn:
        owners = dict(conn.execute(select(D.id, D.claimed_by)).all())
    assert all(owners[i] == name for name, rows in got.items() for i in rows)


def test_a_dead_workers_rows_come_back_when_its_lease_expires(delivery_config, delivery_engine):
    _queue(delivery_engine, delivery_config, 30)
    t0 = utcnow()
    dead = claims.claim(delivery_engine, 10, now=t0, owner="dead", lease=20)
    alive = claims.claim(delivery_engine, 10, now=t0, owner="alive", lease=20)
    assert claims.renew(delivery_engine, "alive", lease=60, now=t0 + timedelta(seconds=15)) == 10
    assert claims.recover(delivery_engine, now=t0 + timedelta(seconds=19), expired_only=True) == 0
    assert claims.recover(delivery_engine, now=t0 + timedelta(seconds=21), expired_only=True) == len(dead)
    with delivery_engine.connect() as conn:
        states = dict(conn.execute(select(D.id, D.state)).all())
    assert {states[r["id"]] for r in dead} == {DeliveryState.RETRY}
    assert {states[r["id"]] for r in alive} == {DeliveryState.SENDING}  # its renewed lease still holds


def test_lease_upkeep_renews_its_own_and_recovers_others(delivery_config, delivery_engine):
    _queue(delivery_engine, delivery_config, 5)
    claims.claim(delivery_engine, 2, owner="gone", lease=-60)  # leases that expired a minute ago
    claims.claim(delivery_engine, 3, owner="me", lease=-60)  # expired too, but "me" is alive and renews first
    assert leases.tend(delivery_engine, "me", lease=30) == 2
    with delivery_engine.connect() as conn:
        rows = conn.execute(select(D.claimed_by, D.state)).all()
    assert sorted(s for o, s in rows if o == "me") == [DeliveryState.SENDING] * 3
    assert sorted(s for o, s in rows if o == "gone") == [DeliveryState.RETRY] * 2


def test_one_scheduler_lock_holder_at_a_time(pg, database):
    from bot.store.db import make_engine

    engine = make_engine(database)
    first, second = LeaderLock(engine), LeaderLock(engine)
    try:
        assert first.try_acquire() and first.check()
        assert not second.try_acquire() and not second.held
        first.release()  # (a dead process's session ends the same way)
        assert second.acquire(wait=10) and not first.try_acquire()
    finally:
        first.release()
        second.release()
        engine.dispose()


async def test_queued_rows_wake_a_listening_worker(pg, delivery_config, delivery_engine):
    woke, stop = asyncio.Event(), asyncio.Event()
    calls = []

    def wake():
        calls.append(1)
        if len(calls) > 1:  # the first call is the one made on (re)connecting
            woke.set()

    task = asyncio.create_task(listen(delivery_engine, wake, stop))
    try:
        while not calls:
            await asyncio.sleep(0.01)
        await asyncio.to_thread(_queue, delivery_engine, delivery_config, 3)  # commits with pg_notify
        await asyncio.wait_for(woke.wait(), 10)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


def test_reservations_share_one_rate(delivery_engine):
    assert throttle.reserve(delivery_engine, "email", 10, rate=1000) == pytest.approx(0, abs=0.5)
    later = throttle.reserve(delivery_engine, "email", 100, rate=1.0)  # 100 s of slots, after the first 10 ms
    assert later < 1.0
    third = throttle.reserve(delivery_engine, "email", 1, rate=1.0)  # queued behind those 100 s
    assert 90 < third <= 100.1


def test_instances_live_leader_and_pruning(svc_engine):
    t0 = utcnow()
    instances.register(svc_engine, "a:1:x", ["scheduler", "worker"], "0.1.0", now=t0)
    instances.register(svc_engine, "b:2:y", ["web"], "0.1.0", now=t0)
    assert instances.beat(svc_engine, "a:1:x", leader=True, sent=42, now=t0 + timedelta(seconds=20))
    live = instances.live(svc_engine, now=t0 + timedelta(seconds=40))
    assert [(i["id"], i["leader"], i["sent"], i["roles"]) for i in live] == [("a:1:x", True, 42, "scheduler,worker")]
    assert instances.scheduler_alive(svc_engine, now=t0 + timedelta(seconds=40))
    assert not instances.scheduler_alive(svc_engine, now=t0 + timedelta(seconds=60))
    assert instances.prune(svc_engine, now=t0 + timedelta(days=2)) == 2
    assert not instances.beat(svc_engine, "a:1:x", leader=True, sent=0)


async def test_dashboard_and_stats_list_live_instances(web_client, web_engine, web_config, tmp_path):
    from typer.testing import CliRunner

    from bot.cli import app
    from test_web_admin import login

    instances.register(web_engine, "alpha:11:aa", ["scheduler", "worker"], "0.1.0")
    instances.beat(web_engine, "alpha:11:aa", leader=True, sent=1234)
    instances.register(web_engine, "beta:22:bb", ["web"], "0.1.0", now=utcnow() - timedelta(minutes=5))  # silent: gone
    await login(web_client)
    page = (await web_client.get("/admin?lang=en")).text
    table = page.split('id="instances"', 1)[1].split("</table>", 1)[0]
    assert table.count("<tr><td>") == 1  # the silent one is not listed
    assert "scheduler,worker" in table and "active scheduler" in table and "1234" in table and "web" not in table
    config = tmp_path / "stats.toml"
    config.write_text(f'[bot]\ndatabase = "{web_config.bot.database}"\n')
    out = CliRunner().invoke(app, ["--config", str(config), "stats"], env={"COLUMNS": "250"}).output
    assert "Instances" in out and "alpha:11:aa" in out and "(active scheduler)" in out and "beta:22:bb" not in out
