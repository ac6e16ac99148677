"""`flashbot run` as a real process: polling, delivery, digest catch-up and web together; clean SIGTERM."""
from __future__ import annotations

import re
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from email import message_from_bytes
from email.header import decode_header, make_header

import httpx

from test_service_once import BASE, FLASH, SUBSCRIBERS, _setup


def _subject(received) -> str:
    return str(make_header(decode_header(message_from_bytes(received.data)["Subject"])))


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_run_polls_delivers_digests_serves_and_stops_on_sigterm(svc_stack):
    _setup(svc_stack)  # baseline done, a flash item waiting in the feed
    svc_stack.write_config(interval=1)
    alerted = svc_stack.cli("run", "--once")
    assert alerted.returncode == 0 and len(svc_stack.smtp.messages) == 3
    # The bot "was installed" two days ago: today's 07:00 digest counts as missed and is caught up at start.
    two_days_ago = (datetime.now(timezone.utc) - timedelta(days=2)).isoformat()
    with sqlite3.connect(svc_stack.dir / "flashbot.db") as db:
        db.execute("UPDATE meta SET value = ? WHERE key = 'first_started_at'", (two_days_ago,))
    proc = subprocess.Popen([sys.executable, "-m", "bot", "--config", str(svc_stack.config_path), "run"],
                            cwd=svc_stack.dir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        while not lines or not lines[-1].startswith("  web:"):
            lines.append(_wait(lambda: proc.stdout.readline(), 30, "the startup summary"))
        line = "".join(lines)
        assert "Flashbot running" in line and "email: on" in line and "telegram: on (channel @flash)" in line, line
        assert "subscribers: 3 active" in line and "sources: 1 active" in line
        url = re.search(r"web: (http://127\.0\.0\.1:\d+)", line).group(1)
        # Digest: one per subscriber (mode both), sent once at start.
        digests = _wait(lambda: [m for m in svc_stack.smtp.messages if "essentiel" in _subject(m)]
                        if len([m for m in svc_stack.smtp.messages if "essentiel" in _subject(m)]) >= 3 else None,
                        20, "the catch-up digest")
        assert sorted(r for m in digests for r in m.rcpt_tos) == SUBSCRIBERS
        # Polling + delivery: a new flash item is posted within a few seconds.
        svc_stack.publish([("f2", "FLASH INFO : Coupure géante d’électricité dans l’Ouest"), FLASH, *BASE])
        post = _wait(lambda: len(svc_stack.telegram.posts) >= 2 and svc_stack.telegram.posts[-1], 15, "the new post")
        assert "Coupure géante" in post.text
        _wait(lambda: len(svc_stack.smtp.messages) >= 9, 15, "the alert emails")
        # Web pages and health from the same process.
        health = httpx.get(f"{url}/healthz", timeout=5)
        assert health.status_code == 200
        assert httpx.get(f"{url}/", timeout=5).status_code == 200
        # A second service on the same database refuses to start.
        second = svc_stack.cli("run", timeout=30)
        assert second.returncode == 1 and "another flashbot instance is running" in second.stderr
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "stopping" in err and "stopped" in err
    assert len([m for m in svc_stack.smtp.messages if "essentiel" in _subject(m)]) == 3  # never twice
    assert svc_stack.telegram.token not in err and "demo-admin-pass" not in err


def test_run_refuses_a_rejected_telegram_token(svc_stack):
    svc_stack.write_config()
    svc_stack.publish(BASE)
    text = svc_stack.config_path.read_text().replace(svc_stack.telegram.token, "999999:wrong-token-value")
    svc_stack.config_path.write_text(text)
    run = svc_stack.cli("run", timeout=30)
    assert run.returncode == 1
    assert "cannot start: telegram:" in run.stderr and "token" in run.stderr
    assert "wrong-token-value" not in run.stderr


def test_run_with_smtp_down_warns_keeps_running_json_logs(svc_stack):
    import json

    svc_stack.write_config()
    svc_stack.publish(BASE)
    svc_stack.smtp.stop()
    proc = subprocess.Popen([sys.executable, "-m", "bot", "--config", str(svc_stack.config_path), "--log-format", "json",
                             "run"], cwd=svc_stack.dir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        events = []
        while not any(e.get("event") == "started" for e in events):
            line = _wait(lambda: proc.stderr.readline(), 30, "startup events")
            events.append(json.loads(line))  # every log line is one JSON object
        warn = [e for e in events if e["event"] == "channel_unreachable"]
        assert warn and warn[0]["channel"] == "email" and warn[0]["level"] == "warning"
        assert "warning: email: unreachable" in events[-1]["summary"] and "telegram: on" in events[-1]["summary"]
        time.sleep(1.5)
        assert proc.poll() is None  # still running
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    assert all(json.loads(line) for line in err.splitlines() if line.strip())


def test_sigterm_mid_fanout_finishes_in_flight_and_leaves_the_rest_pending(svc_stack):
    many = [f"lecteur{n:02d}@example.org" for n in range(24)]
    svc_stack.write_config(interval=1, email_extra="concurrency = 2", grace=5)
    svc_stack.publish(BASE)
    assert svc_stack.cli("subscribers", "add", *many).returncode == 0
    assert svc_stack.cli("run", "--once").returncode == 0  # baseline
    svc_stack.smtp.delay = 0.4  # 2 connections × 0.4 s: the fan-out takes ~5 s
    proc = subprocess.Popen([sys.executable, "-m", "bot", "--config", str(svc_stack.config_path), "run"],
                            cwd=svc_stack.dir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait(lambda: proc.stdout.readline().startswith("  web:"), 30, "startup")
        svc_stack.publish([FLASH, *BASE])
        _wait(lambda: len(svc_stack.smtp.messages) >= 2, 20, "the fan-out to start")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)  # a hang guard; the grace rule shows in the rows below
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    sent_first = [r for m in svc_stack.smtp.messages for r in m.rcpt_tos]
    assert 2 <= len(sent_first) < len(many)
    with sqlite3.connect(svc_stack.dir / "flashbot.db") as db:
        states = dict(db.execute("SELECT state, count(*) FROM deliveries WHERE channel = 'email' GROUP BY state"))
    assert "sending" not in states and states.get("sent", 0) == len(sent_first)
    assert sum(states.values()) == len(many)
    svc_stack.smtp.delay = 0
    assert svc_stack.cli("run", "--once").returncode == 0  # the rest goes out, nothing twice
    everyone = [r for m in svc_stack.smtp.messages for r in m.rcpt_tos]
    assert sorted(everyone) == sorted(many)
