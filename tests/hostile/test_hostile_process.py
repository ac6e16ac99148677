"""Process faults through the whole pipeline (`flashbot run --once` subprocesses: poll → detect → queue →
email + Telegram): SIGKILL at random instants during a fan-out then restart, SIGTERM mid fan-out,
another process holding SQLite's write lock, and a crash between storing an alert and queueing it.

`make test` runs 3 trials × 300 subscribers (kills after a random number of messages); `make soak`
(FLASHBOT_SOAK=1) runs 20 trials × 2,000 subscribers killed at uniformly random instants of the run.
"""
from __future__ import annotations

import asyncio
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import select, text

from bot.ingest import poll as ingest
from bot.config import load_config
from bot.ingest.fetch import make_client
from bot.store import open_db
from bot.store.schema import deliveries
from bot.demo.feedserver import FeedServer
from bot.demo.smtpserver import SMTPServer
from bot.demo.telegram_api import BotAPIStandin
from conftest import SOAK
from fixtures_delivery import add_subscribers

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
FEED = ('<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Q</title><link>https://q.example/</link>'
        '<item><title>FLASH INFO : Séisme de magnitude 6 dans les Alpes</title><guid>f1</guid>'
        '<link>https://q.example/f1</link><description>Texte.</description></item></channel></rss>')
QUICK = dict(trials=3, subscribers=300)
FULL = dict(trials=20, subscribers=2000)


class World:
    """Feed server, SMTP server (slowed), Telegram stand-in and a config file in a folder."""

    def __init__(self, folder: Path, subscribers: int):
        self.dir = folder
        self.feeds, self.smtp, self.tg = FeedServer().start(), SMTPServer().start(), BotAPIStandin().start()
        self.feeds.set("/feed.xml", FEED)
        self.people = [f"p{i:05d}@example.net" for i in range(subscribers)]
        self.config = folder / "config.toml"
        self.config.write_text(f"""
[bot]
database = "crash.db"
public_url = "https://news.example.org"
[web]
enabled = false
secret_key = "crash-secret-key-0123456789abcdef"
[digest]
enabled = false
[[sources]]
name = "quotidien"
url = "{self.feeds.url('/feed.xml')}"
alert_on_first_poll = true
[email]
host = "127.0.0.1"
port = {self.smtp.port}
sender = "Flash Info <alertes@example.org>"
tls = "none"
concurrency = 8
[telegram]
token = "{self.tg.token}"
channel = "@flash"
api_url = "{self.tg.base_url}"
[delivery]
batch_size = 50
retry_delays = [1]
""", encoding="utf-8")
        self.cfg = load_config(self.config)
        self.db = open_db(self.cfg.database_url)
        add_subscribers(self.db, self.people)

    def start(self) -> subprocess.Popen:
        """`flashbot run --once` in a child process."""
        return subprocess.Popen([sys.executable, "-m", "bot", "--config", str(self.config), "run", "--once"],
                                cwd=self.dir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def states(self) -> Counter:
        with self.db.connect() as conn:
            return Counter(r[0] for r in conn.execute(select(deliveries.c.state)))

    def in_flight(self) -> int:
        return self.states()["sending"]

    def verdict(self) -> tuple[int, int]:
        """(lost, duplicates) over email recipients and the Telegram channel."""
        got = Counter(self.smtp.recipients())
        lost = len(set(self.people) - set(got)) + (0 if self.tg.posts else 1)
        dups = sum(n - 1 for n in got.values()) + max(len(self.tg.posts) - 1, 0)
        return lost, dups

    def stop(self) -> None:
        self.db.dispose()
        self.feeds.stop()
        self.smtp.stop()
        self.tg.stop()


def finish(world: World) -> str:
    """Restart after the fault: a clean `run --once` must exit 0."""
    world.smtp.delay = 0
    rerun = world.start()
    out = rerun.communicate(timeout=180)[0].decode(errors="replace")
    assert rerun.returncode == 0, out[-3000:]
    return out


def trial_plan(seed: int, soak: bool, subscribers: int) -> tuple[str, float]:
    """Where to kill: after N messages (make test) or at a uniformly random instant of the run (soak)."""
    rnd = random.Random(seed)
    if soak:
        return "instant", rnd.uniform(0.0, 4.0)  # ~1 s start-up + poll + queue + ~3 s of 2,000 slowed sends
    return "messages", rnd.randint(1, subscribers - 50)


def kill_trial(tmp_path, figures, seed: int, settings: dict, soak: bool) -> None:
    """One trial: start a fan-out, SIGKILL it at the planned point, restart, check nobody lost and duplicates ≤ in flight."""
    world = World(tmp_path, settings["subscribers"])
    try:
        world.smtp.delay = 0.01 if soak else 0.002
        mode, at = trial_plan(seed, soak, settings["subscribers"])
        child = world.start()
        t0 = time.monotonic()
        while child.poll() is None:
            if mode == "instant" and time.monotonic() - t0 >= at:
                break
            if mode == "messages" and len(world.smtp.messages) >= at:
                break
            if time.monotonic() - t0 > 120:
                break
            time.sleep(0.001)
        killed_alive = child.poll() is None
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        time.sleep(0.05)  # let the server finish recording messages whose DATA completed
        in_flight = world.in_flight()
        before = len(world.smtp.messages)
        finish(world)
        lost, dups = world.verdict()
        label = "process: SIGKILL mid fan-out, restart" + (" (soak)" if soak else "")
        figures.add(label, tried=1, passed=int(lost == 0 and dups <= in_flight), lost=lost, duplicates=dups,
                    in_flight_at_kill=in_flight, subscribers=len(world.people), killed_before_the_end=int(killed_alive))
        print(f"trial {seed}: {mode}={at:.3g} killed={'yes' if killed_alive else 'finished first'} "
              f"sent_before={before} in_flight={in_flight} duplicates={dups} lost={lost}")
        assert lost == 0, f"lost {lost} deliveries"
        assert dups <= in_flight, f"{dups} duplicates but only {in_flight} rows were in flight"
        assert set(world.states()) == {"sent"}, world.states()
    finally:
        world.stop()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("seed", range(QUICK["trials"]))
def test_sigkill_mid_fan_out_then_restart_loses_nothing(tmp_path, figures, seed):
    kill_trial(tmp_path, figures, seed, QUICK, soak=False)


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.skipif(not SOAK, reason="soak only (make soak / FLASHBOT_SOAK=1)")
@pytest.mark.parametrize("seed", range(FULL["trials"]))
def test_soak_sigkill_at_random_instant_of_a_2000_fan_out(tmp_path, figures, seed):
    kill_trial(tmp_path, figures, 1000 + seed, FULL, soak=True)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("command", [["run"], ["run", "--once"]],
                         ids=["run", "run-once"])
def test_sigterm_mid_fan_out_stops_cleanly_and_restart_completes(tmp_path, figures, command):
    world = World(tmp_path, 300)
    try:
        world.smtp.delay = 0.01
        child = subprocess.Popen([sys.executable, "-m", "bot", "--config", str(world.config), *command],
                                 cwd=world.dir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while len(world.smtp.messages) < 40 and time.monotonic() < deadline and child.poll() is None:
            time.sleep(0.005)
        child.send_signal(signal.SIGTERM)
        out = child.communicate(timeout=60)[0].decode(errors="replace")  # a hang guard only
        left_sending = world.in_flight()
        finish(world)
        lost, dups = world.verdict()
        graceful = left_sending == 0 and "Traceback" not in out and child.returncode == 0
        figures.add(f"process: SIGTERM mid fan-out ({' '.join(command)})", tried=1, passed=int(lost == 0 and graceful),
                    lost=lost, duplicates=dups)
        assert lost == 0, lost
        assert left_sending == 0, f"{left_sending} rows left 'sending' by SIGTERM (not graceful); {dups} duplicates"
        assert child.returncode == 0 and "Traceback" not in out, (child.returncode, out[-2000:])
        assert dups == 0, dups
    finally:
        world.stop()


@pytest.mark.timeout(180)
def test_sqlite_write_lock_held_by_another_process_is_waited_out(tmp_path, figures):
    world = World(tmp_path, 50)
    try:
        db_path = world.cfg.database_url.removeprefix("sqlite:///")
        held = threading.Event()

        def hold(seconds: float) -> None:
            conn = sqlite3.connect(db_path, timeout=30, isolation_level=None)
            conn.execute("BEGIN IMMEDIATE")  # the write lock, as another flashbot command would take it
            conn.execute("UPDATE meta SET value = value WHERE key = 'schema_version'")
            held.set()
            time.sleep(seconds)
            conn.execute("COMMIT")
            conn.close()

        t = threading.Thread(target=hold, args=(6.0,))
        t.start()
        held.wait(5)
        out = finish(world)  # starts while the lock is held
        t.join()
        lost, dups = world.verdict()
        figures.add("process: SQLite write lock held 6 s", tried=1, passed=int(lost == 0 and dups == 0), lost=lost,
                    duplicates=dups)
        assert lost == 0 and dups == 0, (lost, dups, out[-2000:])
        assert set(world.states()) == {"sent"}
    finally:
        world.stop()


@pytest.mark.timeout(120)
def test_crash_between_storing_an_alert_and_queueing_it(tmp_path, figures):
    # The window SIGKILL can hit: store_items committed the item as 'detected', the fan-out had not committed.
    world = World(tmp_path, 20)
    try:
        async def poll_without_queueing():
            async with make_client(world.cfg.fetch) as client:
                ingest.sync_sources(world.db, world.cfg)
                reports = await ingest.poll_all(world.db, world.cfg, client)
            return [e.kind for r in reports for e in r.events]
        assert asyncio.run(poll_without_queueing()) == ["flash"]  # stored; the process "dies" here
        with world.db.connect() as conn:  # never 'queued' without its rows: the state says the fan-out is owed
            states = conn.execute(text("SELECT alert_state, (SELECT count(*) FROM deliveries) FROM items "
                                       "WHERE is_flash")).all()
        assert states == [("detected", 0)], states
        finish(world)
        lost, dups = world.verdict()
        figures.add("process: crash between store and queue", tried=1, passed=int(lost == 0), lost=lost, duplicates=dups)
        assert lost == 0, f"{lost} of {len(world.people) + 1} deliveries never happen"
    finally:
        world.stop()
