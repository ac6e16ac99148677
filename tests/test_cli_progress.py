"""Long commands draw a rich progress bar on a terminal (a real pseudo-terminal here) and print no
control characters at all in a pipe or with `--log-format json`."""
from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot.store import open_db, utcnow
from bot.store import subscribers as subs
from bot.store.schema import deliveries, items

ROOT = Path(__file__).resolve().parent.parent
# C0 controls and DEL, except newline and tab: ESC sequences, carriage returns, backspaces...
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
OPML = """<?xml version="1.0"?><opml version="2.0"><head><title>f</title></head><body>
{}</body></opml>"""


def _prepare(stack, tmp_path: Path) -> None:
    """The stack's config, a feed with a Flash item, 1,500 subscribers, a CSV, an OPML file, 2,500 failed rows."""
    from bot.config import load_config
    from bot.store.sources import get_source, sync_sources

    stack.write_config()
    stack.publish([(f"g{i}", f"Article {i}") for i in range(5)] + [("f1", "FLASH INFO Séisme dans les Alpes")])
    engine = open_db(f"sqlite:///{tmp_path / 'flashbot.db'}")
    sync_sources(engine, load_config(str(stack.config_path)))
    subs.insert_many(engine, [{"email": f"lecteur{i}@example.org"} for i in range(1500)])
    (tmp_path / "in.csv").write_text("email\n" + "".join(f"new{i}@example.org\n" for i in range(6000)))
    (tmp_path / "feeds.opml").write_text(OPML.format("".join(
        f'<outline type="rss" text="Flux {i}" xmlUrl="{stack.feeds.url(f"/f{i}.xml")}"/>' for i in range(30))))
    now = utcnow()
    with engine.begin() as conn:
        item = conn.execute(items.insert().values(
            source_id=get_source(engine, "quotidien")["id"], key="old", title="FLASH INFO old", headline="old",
            content_hash="h", categories=[], is_flash=True, alert_state="queued", detected_at=now,
            norm_title="old")).inserted_primary_key[0]
        conn.execute(deliveries.insert(), [{"item_id": item, "channel": "telegram", "recipient": f"x{i}", "revision": 0,
                                            "kind": "alert", "state": "failed", "attempts": 8, "created_at": now}
                                           for i in range(2500)])
    engine.dispose()


COMMANDS = {
    "subscribers import": (["subscribers", "import", "in.csv"], "importing"),
    "subscribers export": (["subscribers", "export", "out.csv"], "exporting"),
    "sources import": (["sources", "import", "feeds.opml"], "importing sources"),
    "poll --once": (["poll", "--once"], "polling sources"),
    "run --once": (["run", "--once"], "sending"),
    "digest --send": (["digest", "--send"], "queueing digests"),
    "deliveries --retry-failed": (["deliveries", "--retry-failed", "--limit", "1"], "requeueing"),
}


def _on_a_terminal(args: list[str], cwd: Path, timeout: float = 90) -> str:
    """Run the CLI with stdin/stdout/stderr on a pseudo-terminal; return everything it wrote."""
    master, slave = pty.openpty()
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "120", "LINES": "40", "PYTHONPATH": str(ROOT)}
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen([sys.executable, "-m", "bot", *args], stdin=slave, stdout=slave, stderr=slave,
                            cwd=cwd, env=env, close_fds=True)
    os.close(slave)
    chunks, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    proc.wait(timeout=10)
    os.close(master)
    assert proc.returncode == 0, b"".join(chunks).decode(errors="replace")[-2000:]
    return b"".join(chunks).decode("utf-8", errors="replace")


def _in_a_pipe(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TERM": "xterm-256color"}  # a TERM does not make a pipe a terminal
    done = subprocess.run([sys.executable, "-m", "bot", *args], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=90)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


@pytest.mark.parametrize("command", list(COMMANDS))
def test_bar_on_a_terminal_nothing_in_a_pipe(svc_stack, tmp_path, command):
    _prepare(svc_stack, tmp_path)
    args, label = COMMANDS[command]
    config = ["--config", str(svc_stack.config_path)]
    piped = _in_a_pipe(config + args, tmp_path)
    assert not CONTROL.search(piped.stdout + piped.stderr), repr((piped.stdout + piped.stderr)[:500])
    assert label not in piped.stderr  # no bar, not even a final one
    shown = _on_a_terminal(config + args, tmp_path)
    assert label in shown and "━" in shown and "\x1b[" in shown, shown[-1500:]
    assert re.search(r"(\d[\d,]*)/\1\b", shown), shown[-1500:]  # the bar ends full: done/total with done == total


@pytest.mark.parametrize("command", ["subscribers import", "run --once"])
def test_json_logs_on_a_terminal_get_no_bar(svc_stack, tmp_path, command):
    _prepare(svc_stack, tmp_path)
    args, label = COMMANDS[command]
    shown = _on_a_terminal(["--log-format", "json", "--config", str(svc_stack.config_path), *args], tmp_path)
    text = shown.replace("\r\n", "\n")  # the terminal's own newline translation
    assert label not in text and "━" not in text
    # Colours on a terminal are fine; a live display's cursor moves, line erasing and carriage returns are not.
    assert not re.search(r"\x1b\[[0-9;?]*[A-Za-ln-z]|\r", text), repr(text[:500])


def test_export_to_standard_output_is_clean_csv(svc_stack, tmp_path):
    _prepare(svc_stack, tmp_path)
    piped = _in_a_pipe(["--config", str(svc_stack.config_path), "subscribers", "export"], tmp_path)
    lines = piped.stdout.splitlines()
    assert lines[0].startswith("email,status") and len(lines) == 1501 and not CONTROL.search(piped.stdout)
