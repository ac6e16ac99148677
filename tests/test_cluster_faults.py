"""Faults of a PostgreSQL cluster, through real `flashbot run` processes (one scheduler, three
workers, 20,000 subscribers): a worker SIGKILLed mid fan-out, the scheduler SIGKILLed, PostgreSQL
restarted mid fan-out. Every wait is a hang guard; nothing here measures speed (see make bench)."""
from __future__ import annotations

import os
import random

import pytest

from bot.demo.postgres import Cluster, find_bin
from cluster_harness import BASE, Fleet
from fixtures_service import RSS_TYPE, flash_rss

SUBSCRIBERS = 20_000
FANOUT_WAIT = 300  # hang guard for 20,000 messages on a loaded 2-core machine


@pytest.fixture(scope="module")
def cluster():
    """A cluster of its own: one test restarts it."""
    if find_bin() is None:
        pytest.skip("PostgreSQL NOT INSTALLED: `make test-deps` installs Debian's postgresql; cluster fault tests skipped")
    with Cluster() as c:
        yield c


@pytest.fixture
def fleet(cluster, tmp_path, request):
    name = f"f_{request.node.name[:40].lower()}"
    url = cluster.create_database(name)
    fleet = Fleet(tmp_path, url, SUBSCRIBERS, digest_n=getattr(request, "param", 0))
    yield fleet
    fleet.stop()
    cluster.drop_database(name)


def _baseline(fleet: Fleet) -> None:
    fleet.wait("the baseline poll", lambda: fleet.scalar("SELECT count(*) FROM sources WHERE baselined") == 1, 60)


def _all_sent(fleet: Fleet, expected: int) -> None:
    fleet.wait(f"{expected} rows sent", lambda: fleet.states().get("sent", 0) >= expected, FANOUT_WAIT)


def _workers(fleet: Fleet, n: int = 3) -> None:
    for i in range(n):
        fleet.start(f"worker{i}", "worker")


def test_a_worker_killed_mid_fanout_loses_nothing(fleet):
    fleet.start("scheduler", "scheduler")
    _workers(fleet)
    _baseline(fleet)
    victim = fleet.instance_of("worker0")
    fleet.publish_flash("f1", "Séisme de magnitude 5 dans les Alpes")
    fleet.wait("worker0 sending", lambda: fleet.scalar(
        "SELECT count(*) FROM deliveries WHERE claimed_by = :v AND state = 'sent'", v=victim) > 200, FANOUT_WAIT)
    fleet.kill("worker0")
    in_flight = fleet.scalar("SELECT count(*) FROM deliveries WHERE claimed_by = :v AND state = 'sending'", v=victim)
    _all_sent(fleet, SUBSCRIBERS)
    counts = fleet.smtp.counts()
    assert set(counts) == set(fleet.emails)  # 0 lost
    duplicates = sum(counts.values()) - SUBSCRIBERS
    assert duplicates <= in_flight, (duplicates, in_flight)
    assert fleet.states() == {"sent": SUBSCRIBERS}
    # The others took its rows back (its lease expired), not a restart of it.
    assert fleet.scalar("SELECT count(*) FROM deliveries WHERE claimed_by = :v AND state <> 'sent'", v=victim) == 0
    assert "leases_expired" in "".join(fleet.log(f"worker{i}") for i in (1, 2)) or in_flight == 0
    assert fleet.summary_mismatches() == {}  # the counts followed every claim, recovery and outcome


@pytest.mark.parametrize("fleet", [50], indirect=True)  # 50 subscribers also take the daily digest
def test_a_killed_scheduler_is_replaced_and_the_digest_goes_once(fleet):
    assert fleet.cli("poll", "--once").returncode == 0  # the silent baseline
    fleet.feeds.set("/feed.xml", flash_rss([("a3", "Culture : le festival ouvre ses portes"), *BASE]), headers=RSS_TYPE)
    assert fleet.cli("poll", "--once").returncode == 0  # news for the digest (not a Flash Info)
    fleet.backdate_install()  # today's digest counts as missed: the first scheduler queues it at election
    fleet.start("sched_a", "scheduler")
    a = fleet.instance_of("sched_a")
    fleet.wait("sched_a elected", lambda: fleet.scalar("SELECT count(*) FROM instances WHERE leader") == 1, 30)
    fleet.start("sched_b", "scheduler")
    _workers(fleet)
    _baseline(fleet)
    fleet.wait("the digest queued", lambda: fleet.scalar("SELECT count(*) FROM deliveries WHERE kind = 'digest'") == 50, 60)
    b = fleet.instance_of("sched_b")
    assert fleet.scalar("SELECT leader FROM instances WHERE id = :a", a=a) is True
    fleet.kill("sched_a")
    # The standby asks for the lock every 2 s; the dead session's lock is freed at once: 10 s is the bound.
    fleet.wait("sched_b to take over", lambda: "scheduler_elected" in fleet.log("sched_b"), 10)
    fleet.publish_flash("f2", "Coupure géante d’électricité dans l’Ouest")
    _all_sent(fleet, SUBSCRIBERS + 50)
    counts = fleet.smtp.counts()
    assert set(counts) == set(fleet.emails)
    digest_people = fleet.emails[:50]
    assert all(counts[e] == 2 for e in digest_people)  # the alert and ONE digest
    assert sum(counts.values()) == SUBSCRIBERS + 50
    assert fleet.scalar("SELECT count(*) FROM digests") == 1
    fleet.wait("sched_b's heartbeat as leader", lambda: fleet.scalar(
        "SELECT leader FROM instances WHERE id = :b", b=b), 30)
    # Nothing polled twice: one scheduler at a time, so the flash item was stored once.
    assert fleet.scalar("SELECT count(*) FROM items WHERE is_flash") == 1
    assert fleet.summary_mismatches() == {}


def test_postgresql_restarted_mid_fanout(fleet, cluster):
    fleet.start("scheduler", "scheduler")
    _workers(fleet)
    _baseline(fleet)
    fleet.publish_flash("f3", "Tempête sur la Bretagne")
    fleet.wait("the fan-out under way", lambda: fleet.smtp.total() > 2000, FANOUT_WAIT)
    cluster.restart()  # every connection cut; the server is back on the same port
    _all_sent(fleet, SUBSCRIBERS)
    counts = fleet.smtp.counts()
    assert set(counts) == set(fleet.emails)  # 0 lost
    assert all(p.poll() is None for p in fleet.procs.values())  # nobody died: no crash loop to need
    assert fleet.states() == {"sent": SUBSCRIBERS}
    for name in fleet.procs:
        assert "component_crashed" not in fleet.log(name), fleet.log(name)[-3000:]
    assert fleet.summary_mismatches() == {}


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_soak_worker_churn_and_a_restart(cluster, tmp_path):
    """make soak: 100,000 subscribers, four workers SIGKILLed and replaced one after another, a
    `pg_ctl restart` in the middle; nothing lost, duplicates ≤ the rows the killed workers held."""
    if not os.environ.get("FLASHBOT_SOAK"):
        pytest.skip("soak trial: FLASHBOT_SOAK=1 (make soak)")
    n = 100_000
    url = cluster.create_database("soak_churn")
    fleet = Fleet(tmp_path, url, n)
    try:
        fleet.start("scheduler", "scheduler")
        _workers(fleet, 4)
        _baseline(fleet)
        fleet.publish_flash("s1", "Essai d'endurance")
        held = 0
        for round_ in range(4):
            fleet.wait("more sent", lambda r=round_: fleet.smtp.total() > (r + 1) * n // 6, FANOUT_WAIT * 2)
            name = random.choice([w for w in fleet.procs if w.startswith("worker") and fleet.procs[w].poll() is None])
            victim = fleet.instance_of(name)
            fleet.kill(name)
            held += fleet.scalar("SELECT count(*) FROM deliveries WHERE claimed_by = :v AND state = 'sending'", v=victim)
            fleet.start(f"{name}_r{round_}", "worker")
            if round_ == 1:
                cluster.restart()
        _all_sent(fleet, n)
        counts = fleet.smtp.counts()
        assert len(counts) == n and sum(counts.values()) - n <= held
    finally:
        fleet.stop()
        cluster.drop_database("soak_churn")
