"""`make bench`: run every benchmark, write bench/out/*.json, BENCHMARKS.md and bench/fanout.png."""
from __future__ import annotations

import importlib
import json
import sys
import time
import traceback
from datetime import datetime, timezone

from . import machine, plot, report
from .common import FULL, OUT, ROOT, RUNS, SMOKE, Skipped

# (key, module, title); each module has bench(log) -> dict and may raise Skipped.
SECTIONS = [
    ("fanout", "bench.fanout", "1. Alert fan-out"),
    ("polling", "bench.polling", "2. Polling"),
    ("latency", "bench.latency", "3. Latency"),
    ("digest", "bench.digest", "4. Digest"),
    ("pages", "bench.pages", "5. Operator pages at 1,000,000 subscribers and 10,000,000 delivery rows"),
    ("bounces", "bench.bounces", "6. Bounces"),
    ("scale", "bench.scale", "7. Scale"),
    ("cluster", "bench.cluster", "8. Scaling out (SQLite vs PostgreSQL workers)"),
]


def log(msg: str) -> None:
    """Progress on the console, flushed (make shows it live)."""
    print(msg, flush=True)


def run_section(key: str, module: str, title: str) -> dict:
    """One benchmark; a missing piece becomes a 'skipped' result, a crash an 'error' result."""
    log(f"\n== {title} ==")
    t0 = time.perf_counter()
    try:
        res = importlib.import_module(module).bench(log)
    except Skipped as exc:
        log(f"  skipped: {exc}")
        res = {"skipped": str(exc)}
    except Exception as exc:  # a broken benchmark must not hide the others' numbers
        traceback.print_exc()
        res = {"error": f"{type(exc).__name__}: {exc}"}
    res["section_s"] = round(time.perf_counter() - t0, 1)
    log(f"  ({res['section_s']} s)")
    return res


def main(argv: list[str]) -> int:
    """Run the selected sections (all by default: `python -m bench.run [fanout polling ...]`)."""
    wanted = set(argv) or {k for k, _, _ in SECTIONS}
    OUT.mkdir(parents=True, exist_ok=True)
    m = machine.describe()
    log(f"Machine: {machine.describe_line(m)}")
    mode = "smoke" if SMOKE else "full" if FULL else "quick"
    log(f"Mode: {mode}, median of {RUNS} runs")
    results = {"machine": m, "mode": mode, "runs": RUNS,
               "started": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    t0 = time.perf_counter()
    previous = _previous()
    for key, module, title in SECTIONS:
        if key in wanted:
            results[key] = run_section(key, module, title)
        elif key in previous:  # a partial rerun keeps the other sections' last numbers
            results[key] = {**previous[key], "from_previous_run": previous.get("started")}
    results["total_s"] = round(time.perf_counter() - t0, 1)
    path = OUT / f"results-{results['mode']}.json"
    path.write_text(json.dumps(results, indent=2, ensure_ascii=False))
    if SMOKE:  # tiny sizes check that the code runs; their numbers never reach BENCHMARKS.md
        md = report.write(results, OUT / "BENCHMARKS-smoke.md")
        log(f"\nWrote {path.relative_to(ROOT)}, {md.relative_to(ROOT)} (smoke mode: BENCHMARKS.md left alone)")
        return 0
    (OUT / "results.json").write_text(json.dumps(results, indent=2, ensure_ascii=False))
    png = plot.fanout_png(results, ROOT / "bench" / "fanout.png")
    md = report.write(results, ROOT / "BENCHMARKS.md")
    log(f"\nWrote {path.relative_to(ROOT)}, {md.relative_to(ROOT)}"
        + (f", {png.relative_to(ROOT)}" if png else " (no plot: no fan-out numbers)")
        + f" in {results['total_s']} s")
    return 0


def _previous() -> dict:
    try:
        return json.loads((OUT / f"results-{'smoke' if SMOKE else 'full' if FULL else 'quick'}.json").read_text())
    except (OSError, ValueError):
        return {}


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
