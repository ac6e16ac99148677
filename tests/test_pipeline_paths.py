"""Every entry path through the one pipeline, next to a real `flashbot run` process: an approval from the
CLI or the dashboard and a `flashbot poll --once` in another process are sent at once, never left for
housekeeping; no item is ever `queued` without its delivery rows."""
from __future__ import annotations

import re
import signal
import sqlite3
import subprocess
import sys
import time

import httpx
import pytest

from test_service_once import BASE, FLASH, SUBSCRIBERS
from test_service_run import _wait

# The engine wakes in-process, or finds rows queued by another process within a second; these waits
# only bound a hung test. Without the fixes the rows waited ~30 s (engine tick) or an hour (housekeeping).
WAIT = 10


def _rows(stack) -> list[tuple]:
    with sqlite3.connect(stack.dir / "flashbot.db") as db:
        return db.execute("SELECT i.id, i.alert_state, (SELECT count(*) FROM deliveries d WHERE d.item_id = i.id) "
                          "FROM items i WHERE i.is_flash ORDER BY i.id").fetchall()


def _no_queued_without_rows(stack) -> None:
    assert all(n > 0 for _, state, n in _rows(stack) if state == "queued"), _rows(stack)


@pytest.fixture
def running(svc_stack):
    """A baselined stack with approval required, and a `flashbot run` process serving it."""
    svc_stack.write_config(extra="[flash]\nrequire_approval = true\n", interval=3600)
    svc_stack.publish(BASE)
    assert svc_stack.cli("subscribers", "add", *SUBSCRIBERS).returncode == 0
    assert svc_stack.cli("poll", "--once").returncode == 0  # the silent baseline
    proc = subprocess.Popen([sys.executable, "-m", "bot", "--config", str(svc_stack.config_path), "run"],
                            cwd=svc_stack.dir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    while not lines or not lines[-1].startswith("  web:"):
        line = proc.stdout.readline()
        if not line:  # the service exited
            pytest.fail(f"flashbot run exited {proc.wait()}: {proc.stderr.read()[-3000:]}")
        lines.append(line)
    svc_stack.url = re.search(r"web: (http://127\.0\.0\.1:\d+)", "".join(lines)).group(1)
    yield svc_stack
    proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "requeued_orphans" not in err  # nothing was left for the start-up or housekeeping to find


def _hold_an_alert(stack) -> int:
    """A Flash Info item stored by `flashbot poll --once` and held for approval (no rows yet)."""
    stack.publish([FLASH, *BASE])
    poll = stack.cli("poll", "--once")
    assert poll.returncode == 0, poll.stderr
    [(item_id, state, rows)] = _rows(stack)
    assert (state, rows) == ("held", 0)
    held = stack.cli("held")
    assert str(item_id) in held.stdout and "Séisme" in held.stdout
    return item_id


def _sent_everywhere(stack) -> None:
    _wait(lambda: len(stack.telegram.posts) == 1, WAIT, "the Telegram post")
    _wait(lambda: len(stack.smtp.messages) == len(SUBSCRIBERS), WAIT, "the alert emails")
    assert sorted(r for m in stack.smtp.messages for r in m.rcpt_tos) == SUBSCRIBERS
    assert "Séisme" in stack.telegram.posts[0].text


def test_cli_approval_is_sent_by_the_running_service_at_once(running):
    item_id = _hold_an_alert(running)
    approve = running.cli("approve", str(item_id))
    assert approve.returncode == 0 and f"item {item_id} approved: 4 delivery row(s) queued" in approve.stdout
    assert _rows(running) == [(item_id, "queued", 4)]  # queued in the transaction that made the rows
    _sent_everywhere(running)
    again = running.cli("approve", str(item_id))
    assert again.returncode == 1 and "not waiting for approval" in again.stderr
    time.sleep(0.5)
    assert len(running.smtp.messages) == len(SUBSCRIBERS) and len(running.telegram.posts) == 1  # once


def test_dashboard_approval_wakes_delivery_at_once(running):
    item_id = _hold_an_alert(running)
    with httpx.Client(base_url=running.url, timeout=10) as web:
        form = web.get("/admin/login")
        token = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)
        login = web.post("/admin/login", data={"password": "demo-admin-pass", "csrf": token})
        assert login.status_code == 303
        page = web.get("/admin")
        token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        r = web.post(f"/admin/items/{item_id}/approve", data={"csrf": token})
    assert r.status_code == 303 and "notice=approved" in r.headers["location"], r.text
    _sent_everywhere(running)
    _no_queued_without_rows(running)


def test_poll_once_next_to_a_running_service_is_sent_without_housekeeping(running):
    running.write_config(interval=3600)  # no approval from now on (read by the CLI; the service keeps its own)
    running.publish([FLASH, *BASE])
    poll = running.cli("poll", "--once")
    assert poll.returncode == 0, poll.stderr
    assert "alerts queued" in poll.stdout
    [(item_id, state, rows)] = _rows(running)
    assert (state, rows) == ("queued", 4)
    _sent_everywhere(running)
