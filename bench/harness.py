"""Run each measured scenario in its own child process and read its peak RSS and CPU time.

The child is `python -m bench.child SCENARIO PARAMS_JSON`; it prints one `BENCH-RESULT {json}`
line (or `BENCH-SKIP reason` and exits 3). The parent reaps it with os.wait4, whose rusage is
that child's alone (ru_maxrss = peak RSS in KiB on Linux), so one run never pollutes another.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time

from .common import ROOT, RUNS, Skipped, median

RESULT = "BENCH-RESULT "
SKIP = "BENCH-SKIP "
SKIP_CODE = 3


class ChildFailed(Exception):
    """The scenario crashed; the message carries the tail of its output."""


def run_child(scenario: str, params: dict, timeout: float = 1800) -> dict:
    """Run one scenario once in a fresh interpreter; return its result plus rss_mb/cpu_s/wall_s."""
    cmd = [sys.executable, "-m", "bench.child", scenario, json.dumps(params)]
    with tempfile.TemporaryFile("w+") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, text=True)
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)  # already reaped: tell Popen
        wall = time.perf_counter() - t0
        out.seek(0)
        text = out.read()
    lines = text.splitlines()
    if proc.returncode == SKIP_CODE:
        reason = next((ln[len(SKIP):] for ln in lines if ln.startswith(SKIP)), "no reason given")
        raise Skipped(reason)
    found = [ln[len(RESULT):] for ln in lines if ln.startswith(RESULT)]
    if proc.returncode != 0 or not found:
        tail = "\n".join(lines[-25:])
        raise ChildFailed(f"{scenario} exited {proc.returncode}:\n{tail}")
    result = json.loads(found[-1])
    result.update(rss_mb=round(usage.ru_maxrss / 1024, 1),
                  cpu_s=round(usage.ru_utime + usage.ru_stime, 3), child_wall_s=round(wall, 3))
    return result


def measure(scenario: str, params: dict, runs: int = RUNS, log=print, **kw) -> dict:
    """Run a scenario `runs` times; numeric keys become medians, every run is kept in `runs`."""
    results = []
    for i in range(runs):
        r = run_child(scenario, params, **kw)
        log(f"    run {i + 1}/{runs}: " + ", ".join(f"{k}={v}" for k, v in r.items()
                                                   if isinstance(v, (int, float))))
        results.append(r)
    merged: dict = {"runs": results, "n_runs": runs}
    for key, value in results[0].items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            merged[key] = value
        else:
            merged[key] = median([r.get(key) for r in results])
    return merged
