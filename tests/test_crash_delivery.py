"""SIGKILL a real `flashbot run --once` mid fan-out, run it again: everyone has the alert, duplicates ≤ in flight.

`FLASHBOT_SOAK=1` (make soak) runs 20 trials at random instants instead of three fixed ones.
"""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from bot.delivery import engine as deliver
from bot.delivery import fanout
from bot.config import load_config
from bot.store import open_db
from fixtures_delivery import add_item, add_subscribers, rows_of

SUBSCRIBERS = 300
FLASHBOT = [sys.executable, "-m", "bot"]
SOAK = bool(os.environ.get("FLASHBOT_SOAK"))
KILL_AFTER = [random.randint(0, SUBSCRIBERS - 20) for _ in range(20)] if SOAK else [1, 40, 180]


def write_config(tmp_path: Path, port: int) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(f"""
[bot]
database = "crash.db"
public_url = "https://news.example.org"
[web]
enabled = false
secret_key = "crash-secret-key-0123456789"
[digest]
enabled = false
[email]
host = "127.0.0.1"
port = {port}
sender = "Flash Info <alertes@example.org>"
tls = "none"
concurrency = 4
[delivery]
batch_size = 25
""", encoding="utf-8")
    return path


def run_once(path: Path) -> subprocess.Popen:
    return subprocess.Popen([*FLASHBOT, "--config", str(path), "run", "--once"], cwd=path.parent,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


@pytest.mark.timeout(180 if SOAK else 60)
@pytest.mark.parametrize("kill_after", KILL_AFTER)
def test_sigkill_mid_fan_out_loses_nothing(tmp_path, smtp_server, kill_after):
    path = write_config(tmp_path, smtp_server.port)
    cfg = load_config(path)
    db = open_db(cfg.database_url)
    item = add_item(db)
    add_subscribers(db, [f"s{i:04d}@example.net" for i in range(SUBSCRIBERS)])
    assert fanout.queue_item(db, cfg, item) == SUBSCRIBERS
    smtp_server.delay = 0.01  # slowed server: the kill lands mid fan-out

    child = run_once(path)
    deadline = time.monotonic() + 30
    while len(smtp_server.messages) < kill_after and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    child.send_signal(signal.SIGKILL)
    child.wait(10)
    time.sleep(0.05)  # let the server record messages whose DATA had completed
    in_flight = sum(1 for r in rows_of(db, item) if r["state"] == "sending")
    got_before = len(smtp_server.messages)
    assert got_before < SUBSCRIBERS, "the kill came too late to test anything"

    smtp_server.delay = 0
    rerun = run_once(path)
    output = rerun.communicate(timeout=60)[0].decode(errors="replace")
    assert rerun.returncode == 0, output

    got = Counter(smtp_server.recipients())
    expected = {f"s{i:04d}@example.net" for i in range(SUBSCRIBERS)}
    assert set(got) == expected, f"lost: {sorted(expected - set(got))[:5]}"
    duplicates = sum(n - 1 for n in got.values())
    assert duplicates <= in_flight, f"{duplicates} duplicates but only {in_flight} rows were in flight"
    assert Counter(r["state"] for r in rows_of(db, item)) == {"sent": SUBSCRIBERS}
    print(f"killed after {got_before} messages: {in_flight} in flight, {duplicates} duplicates")
