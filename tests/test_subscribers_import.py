"""`subscribers import` streams: a CSV larger than the address space the process may use is imported whole,
with the same report (rejects by line, duplicates naming their first line)."""
from __future__ import annotations

import os
import re
import resource
import subprocess
import sys
from pathlib import Path

from bot.store import open_db
from bot.store import subscribers as subs

ROOT = Path(__file__).resolve().parent.parent
# Runs the real CLI, then reports the peak virtual size (what RLIMIT_AS caps) on stderr.
WRAPPER = """
import atexit, runpy, sys
atexit.register(lambda: sys.stderr.write(next(l for l in open('/proc/self/status') if l.startswith('VmPeak'))))
sys.argv = ['flashbot', *sys.argv[1:]]
runpy.run_module('bot', run_name='__main__')
"""


def run_limited(args: list[str], cwd: Path, limit: int | None = None) -> tuple[int, str, int]:
    """(exit status, output, peak virtual KiB) of `python -m bot ARGS` with RLIMIT_AS = limit bytes."""
    def cap():
        if limit:
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    # One malloc arena: the baseline address space is the interpreter's, not per-thread reservations.
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MALLOC_ARENA_MAX": "1"}
    res = subprocess.run([sys.executable, "-c", WRAPPER, *args], cwd=cwd, env=env, preexec_fn=cap,
                         capture_output=True, text=True, timeout=600)
    peak = re.search(r"VmPeak:\s+(\d+) kB", res.stderr)
    return res.returncode, res.stdout + res.stderr, int(peak.group(1)) if peak else 0


def test_import_of_a_csv_larger_than_the_memory_limit(tmp_path):
    (tmp_path / "config.toml").write_text('[bot]\ndatabase = "subs.db"\n')
    tiny = tmp_path / "tiny.csv"
    tiny.write_text("email\nfirst@example.org\n")
    code, out, baseline = run_limited(["subscribers", "import", str(tiny)], tmp_path)
    assert code == 0 and baseline, out
    limit = (baseline + 64 * 1024) * 1024  # what the interpreter needs, plus 64 MiB
    notes = "x" * (48 * 1024)  # a wide column the importer ignores: few rows, many bytes
    big = tmp_path / "big.csv"
    with big.open("w", encoding="utf-8") as f:
        f.write("email,notes,language,topics\n")
        n = 0
        while f.tell() <= limit + 16 * 1024 * 1024:
            f.write(f"reader{n}@example.org,{notes},{'en' if n % 2 else 'fr'},sport\n")
            n += 1
        f.write(f"not-an-address,{notes},,\nreader7@example.org,{notes},,\nfirst@example.org,,,\n")
    assert big.stat().st_size > limit
    # The limit bites: reading the file whole does not fit.
    whole = subprocess.run([sys.executable, "-c", f"open({str(big)!r}, 'rb').read()"], env={**os.environ, "MALLOC_ARENA_MAX": "1"},
                           preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (limit, limit)), capture_output=True, text=True)
    assert whole.returncode != 0 and "MemoryError" in whole.stderr

    code, out, peak = run_limited(["subscribers", "import", str(big)], tmp_path, limit)
    assert code == 0, out[-2000:]
    assert f"{n} added, 1 already known, 2 rejected" in out
    assert f"big.csv:{n + 2}: rejected: 'not-an-address': not an email address" in out
    assert f"big.csv:{n + 3}: rejected: duplicate of line 9" in out
    engine = open_db(f"sqlite:///{tmp_path / 'subs.db'}")
    assert sum(subs.counts(engine)["active"].values()) == n + 1
    assert subs.by_email(engine, f"reader{n - 1}@example.org")["language"] == ("en" if (n - 1) % 2 else "fr")
    engine.dispose()
