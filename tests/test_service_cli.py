"""`flashbot check` verdicts and `flashbot digest --preview/--send` through the CLI."""
from __future__ import annotations

import re

import pytest

from test_service_once import BASE, FLASH, SUBSCRIBERS, _setup


def _verdicts(stdout: str) -> dict[str, str]:
    """part -> verdict from the rich table."""
    out = {}
    for line in stdout.splitlines():
        cells = [c.strip() for c in re.split(r"[│┃]", line) if c.strip()]
        if len(cells) >= 2 and cells[1] in ("ok", "off", "warn", "FAIL"):
            out[cells[0]] = cells[1]
    return out


def test_check_all_good(svc_stack):
    svc_stack.write_config()
    svc_stack.publish(BASE)
    run = svc_stack.cli("check")
    verdicts = _verdicts(run.stdout)
    assert run.returncode == 0, run.stdout
    assert verdicts == {"config": "ok", "database": "ok", "web": "ok", "bounces": "off", "email": "ok", "telegram": "ok",
                        "source quotidien": "ok"}
    assert "all good" in run.stdout and "flashbot_test_bot" in run.stdout.replace("\n", "")


@pytest.mark.parametrize("breakage, part", [
    ("token", "telegram"),
    ("smtp", "email"),
    ("feed", "source quotidien"),
])
def test_check_names_the_broken_part(svc_stack, breakage, part):
    svc_stack.write_config()
    svc_stack.publish(BASE)
    if breakage == "token":
        text = svc_stack.config_path.read_text().replace(svc_stack.telegram.token, "42:not-the-token")
        svc_stack.config_path.write_text(text)
    elif breakage == "smtp":
        svc_stack.smtp.stop()
    else:
        svc_stack.feeds.set("/feed.xml", b"gone", status=404)
    run = svc_stack.cli("check")
    verdicts = _verdicts(run.stdout)
    assert run.returncode == 1
    assert verdicts[part] == "FAIL"
    assert [p for p, v in verdicts.items() if v == "FAIL"] == [part]
    assert "not-the-token" not in run.stdout + run.stderr


def test_check_offline_and_channels_off(tmp_path):
    import subprocess
    import sys

    cfg = tmp_path / "config.toml"
    cfg.write_text('[bot]\ndatabase = "x.db"\n[web]\nport = 0\n')
    run = subprocess.run([sys.executable, "-m", "bot", "--config", str(cfg), "check", "--offline"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0
    assert _verdicts(run.stdout) == {"config": "ok", "database": "ok", "web": "ok", "bounces": "off"}
    assert "channels off: email, telegram" in run.stdout.replace("\n", " ")


def test_digest_preview_and_send(svc_stack, tmp_path):
    _setup(svc_stack)
    assert svc_stack.cli("run", "--once").returncode == 0  # the flash item and the others are now stored
    preview = svc_stack.cli("digest", "--preview", "--email", SUBSCRIBERS[0], "--out", str(tmp_path / "p.html"))
    assert preview.returncode == 0, preview.stderr
    html = (tmp_path / "p.html").read_text()
    text = (tmp_path / "p.txt").read_text()
    assert "Séisme de magnitude 5" in html and "Séisme de magnitude 5" in text
    assert "/unsubscribe/" in html
    sent_before = len(svc_stack.smtp.messages)
    send = svc_stack.cli("digest", "--send")
    assert send.returncode == 0, send.stderr
    assert "3 queued" in send.stdout and "sent: 3" in send.stdout
    digests = svc_stack.smtp.messages[sent_before:]
    assert sorted(r for m in digests for r in m.rcpt_tos) == SUBSCRIBERS
    again = svc_stack.cli("digest", "--send")  # the same items never go out twice
    assert "0 queued" in again.stdout and len(svc_stack.smtp.messages) == sent_before + 3
    unknown = svc_stack.cli("digest", "--preview", "--email", "nobody@example.org")
    assert unknown.returncode == 1 and "no subscriber" in unknown.stderr
    both = svc_stack.cli("digest", "--preview", "--send")
    assert both.returncode == 2
