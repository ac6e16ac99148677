"""`flashbot run --once` end to end in subprocesses against real local feed, SMTP and Telegram servers."""
from __future__ import annotations

import subprocess
import sys

import pytest

SUBSCRIBERS = ["anne@example.org", "bruno@example.org", "chloe@example.org"]
BASE = [("a1", "Municipales : les listes déposées"), ("a2", "Météo : un week-end doux")]
FLASH = ("f1", "FLASH INFO : Séisme de magnitude 5 dans les Alpes")


def _setup(stack, retry=1):
    stack.write_config(retry=retry)
    stack.publish(BASE)
    assert stack.cli("subscribers", "add", *SUBSCRIBERS).returncode == 0
    first = stack.cli("run", "--once")
    assert first.returncode == 0, first.stderr
    assert stack.smtp.messages == [] and stack.telegram.posts == []  # the first poll is a silent baseline
    stack.publish([FLASH, *BASE])


def test_new_flash_item_reaches_everyone_once(svc_stack):
    _setup(svc_stack)
    run = svc_stack.cli("run", "--once")
    assert run.returncode == 0, run.stderr
    assert sorted(r for m in svc_stack.smtp.messages for r in m.rcpt_tos) == SUBSCRIBERS
    [post] = svc_stack.telegram.posts
    assert "Séisme de magnitude 5" in post.text
    assert "sent 4" in run.stdout
    assert "poll source=quotidien" in run.stderr and "flash source=quotidien" in run.stderr
    again = svc_stack.cli("run", "--once")
    assert again.returncode == 0 and "nothing due" in again.stdout
    assert len(svc_stack.smtp.messages) == 3 and len(svc_stack.telegram.posts) == 1


def test_two_concurrent_runs_send_nothing_twice(svc_stack):
    _setup(svc_stack)
    svc_stack.smtp.delay = 0.2  # a slow server keeps the first run busy while the second starts
    cmd = [sys.executable, "-m", "bot", "--config", str(svc_stack.config_path), "run", "--once"]
    procs = [subprocess.Popen(cmd, cwd=svc_stack.dir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=90) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert sorted(r for m in svc_stack.smtp.messages for r in m.rcpt_tos) == SUBSCRIBERS
    assert len(svc_stack.telegram.posts) == 1


@pytest.mark.parametrize("config, code, message", [
    ("[bot]\nlanguage = 'xx'\n", 2, "bot.language: unknown language 'xx'; available: ar, de, en, fr"),
    ("[bot]\ndatabase = '/proc/nope/x.db'\n", 1, "database"),
    ("[bot]\ndatabase = 'x.db'\ntemplates = 'missing-folder'\n", 2, "bot.templates: folder not found"),
])
def test_config_and_database_errors_exit_non_zero(tmp_path, config, code, message):
    path = tmp_path / "config.toml"
    path.write_text(config)
    run = subprocess.run([sys.executable, "-m", "bot", "--config", str(path), "run", "--once"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == code and message in run.stderr


def test_unreachable_channels_do_not_fail_the_run(svc_stack):
    _setup(svc_stack, retry=120)
    svc_stack.smtp.stop()
    run = svc_stack.cli("run", "--once")
    assert run.returncode == 0, run.stderr
    assert len(svc_stack.telegram.posts) == 1  # Telegram unaffected; mail waits for its retry
