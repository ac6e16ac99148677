"""The bounce side of the real service: `flashbot run` starts the receiver (a DSN sent to its port over
SMTP suppresses the subscriber) and `flashbot run --once` processes the bounces waiting in the table
before it polls and sends."""
from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys

import pytest
from fixtures_bounces import CORPUS, send_bounce
from test_service_once import BASE, FLASH, SUBSCRIBERS, _setup
from test_service_run import _wait

DOMAIN = "bounces.example.org"
BOUNCES = f'bounce_limit = 1\n\n[bounces]\ndomain = "{DOMAIN}"\nlisten = "127.0.0.1:0"\n'
DSN = (CORPUS / "lhost-postfix-04.eml").read_bytes()  # a Postfix 5.1.1 DSN naming kijitora@example.co.jp


def _dsn_for(address: str) -> bytes:
    return DSN.replace(b"kijitora@example.co.jp", address.encode())


def _status(stack, email: str) -> tuple[str, str | None]:
    return stack.sql("SELECT status, status_reason FROM subscribers WHERE email = :e", {"e": email})[0]


def _alerted(stack) -> dict[str, str]:
    """Send the waiting flash alert with [bounces] on; {recipient: VERP envelope sender}."""
    stack.write_config(extra=BOUNCES)
    run = stack.cli("run", "--once")
    assert run.returncode == 0, run.stderr
    assert "; bounces: nothing waiting" in " ".join(run.stdout.split())
    senders = {m.rcpt_tos[0]: m.mail_from for m in stack.smtp.messages}
    assert sorted(senders) == SUBSCRIBERS and all(re.fullmatch(rf"b-\d+-\d+-a\d+r0-[a-z2-7]{{16}}@{DOMAIN}", s) for s in senders.values())
    return senders


def test_flashbot_run_starts_the_receiver_and_a_dsn_sent_there_suppresses(svc_stack):
    _setup(svc_stack)
    victim = SUBSCRIBERS[0]
    return_path = _alerted(svc_stack)[victim]
    proc = subprocess.Popen([sys.executable, "-m", "bot", "--config", str(svc_stack.config_path), "run"],
                            cwd=svc_stack.dir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # its own process group, as in a terminal
    try:
        lines: list[str] = []
        while not any("bounces: SMTP receiver on" in line for line in lines):
            lines.append(_wait(lambda: proc.stdout.readline(), 30, "the startup summary"))
        assert any(f"bounces: return path b-…@{DOMAIN}" in line for line in lines), lines
        port = int(re.search(r"SMTP receiver on 127\.0\.0\.1:(\d+)", "".join(lines)).group(1))
        reply = asyncio.run(send_bounce(port, _dsn_for(victim), return_path))
        assert reply[1].startswith("2.0.0 stored as bounce #")
        status, reason = _wait(lambda: _status(svc_stack, victim) if _status(svc_stack, victim)[0] != "active" else None,
                               30, "the bounce to be processed")
        assert status == "suppressed" and "5.1.1" in reason
        assert all(_status(svc_stack, other)[0] == "active" for other in SUBSCRIBERS[1:])
        # Ctrl-C reaches the whole group, the classifier process included: one clean stop, no traceback.
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, err
    assert "bounce_processed" in err and "stopped" in err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert svc_stack.sql("SELECT state, kind, source FROM bounce_mails") == [("processed", "hard", "smtp")]


def test_run_once_processes_waiting_bounces_before_it_sends(svc_stack):
    from bot.config import load_config
    from bot.store import bounces as inbox
    from bot.store import open_db

    _setup(svc_stack)
    victim = SUBSCRIBERS[1]
    return_path = _alerted(svc_stack)[victim]
    # A DSN stored by a receiver that stopped before processing it (or by the web app's webhooks).
    engine = open_db(load_config(svc_stack.config_path).database_url)
    inbox.store(engine, [{"source": "smtp", "raw": _dsn_for(victim), "envelope_to": return_path}])
    engine.dispose()
    svc_stack.publish([("f2", "FLASH INFO : Coupure géante d’électricité dans l’Ouest"), FLASH, *BASE])
    before = len(svc_stack.smtp.messages)
    run = svc_stack.cli("run", "--once")
    assert run.returncode == 0, run.stderr
    assert "; bounces: processed 1" in " ".join(run.stdout.split()), run.stdout
    assert _status(svc_stack, victim)[0] == "suppressed"
    # The bounce came first: the new alert went to the others only.
    assert sorted(r for m in svc_stack.smtp.messages[before:] for r in m.rcpt_tos) == [SUBSCRIBERS[0], SUBSCRIBERS[2]]
    again = svc_stack.cli("run", "--once")
    assert again.returncode == 0 and "; bounces: nothing waiting" in " ".join(again.stdout.split())


def test_in_a_cluster_a_web_replica_receives_and_the_active_scheduler_processes(svc_stack, database):
    """PostgreSQL: `run --role web` runs the SMTP receiver (every web replica does), `run --role
    scheduler` processes what any of them stored (one processor per cluster: the active scheduler)."""
    if database is None:
        pytest.skip("PostgreSQL only: SQLite runs one instance with every role")
    from bot.demo.postgres import free_port

    _setup(svc_stack)
    victim = SUBSCRIBERS[2]
    return_path = _alerted(svc_stack)[victim]
    svc_stack.write_config(extra=BOUNCES, web_port=free_port())
    procs = {role: subprocess.Popen([sys.executable, "-m", "bot", "--config", str(svc_stack.config_path), "run",
                                     "--role", role], cwd=svc_stack.dir, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True) for role in ("web", "scheduler")}
    try:
        lines: list[str] = []
        while not any("bounces: SMTP receiver on" in line for line in lines):
            lines.append(_wait(lambda: procs["web"].stdout.readline(), 30, "the web replica's summary"))
        port = int(re.search(r"SMTP receiver on 127\.0\.0\.1:(\d+)", "".join(lines)).group(1))
        assert asyncio.run(send_bounce(port, _dsn_for(victim), return_path))[1].startswith("2.0.0 stored as bounce #")
        status, _ = _wait(lambda: _status(svc_stack, victim) if _status(svc_stack, victim)[0] != "active" else None,
                          30, "the scheduler to process the bounce")
        assert status == "suppressed" and svc_stack.sql("SELECT state FROM bounce_mails") == [("processed",)]
    finally:
        for p in procs.values():
            p.send_signal(signal.SIGTERM)
        errs = {role: p.communicate(timeout=30)[1] for role, p in procs.items()}
    assert "bounce_processed" in errs["scheduler"] and "bounce_processed" not in errs["web"], errs["web"][-2000:]
