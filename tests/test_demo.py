"""`flashbot demo` runs the whole story offline and exits 0 by itself well within 60 s."""
from __future__ import annotations

import os
import subprocess
import sys
from email import message_from_bytes
from email.header import decode_header, make_header


def test_demo_runs_and_exits_zero(tmp_path):
    work = tmp_path / "demo-out"
    env = {"COLUMNS": "200", "PATH": "/usr/bin:/bin", **{k: v for k, v in os.environ.items() if k == "PYTHONPATH"}}
    run = subprocess.run([sys.executable, "-m", "bot", "demo", "--dir", str(work)], capture_output=True, text=True,
                         timeout=60, cwd=tmp_path, env=env)  # PYTHONPATH: the tree under test
    assert run.returncode == 0, run.stdout + run.stderr  # the 60 s timeout only bounds a hang
    out = run.stdout
    assert "baseline recorded" in out and "WebSub push subscription active" in out
    assert "2 post(s), 1 edit(s)" in out  # the new Flash Info + URGENT posts, the correction as an edit
    assert "Emails (12)" in out  # 3 instant subscribers × (2 alerts + 1 correction) + 3 digests
    assert "password: demo-admin" in out and "/admin" in out
    assert "Traceback" not in run.stderr and "never awaited" not in run.stderr
    emls = sorted((work / "mail").glob("*.eml"))
    htmls = sorted((work / "mail").glob("*.html"))
    assert len(emls) == 12 and len(htmls) == 12
    subjects = [str(make_header(decode_header(message_from_bytes(p.read_bytes())["Subject"]))) for p in emls]
    assert sum("L’essentiel du" in s for s in subjects) == 2 and sum("أبرز أخبار" in s for s in subjects) == 1
    assert sum(s.startswith("تحديث:") for s in subjects) == 1  # the Arabic reader's correction
    assert (work / "config.toml").exists() and (work / "flashbot.db").exists()
