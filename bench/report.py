"""Write BENCHMARKS.md from a results dict: machine, targets, one table per benchmark."""
from __future__ import annotations

import re
from pathlib import Path

from .common import ROOT

REPRODUCE = """\
```sh
make bench                      # quick mode: N = 1k and 10k, median of 3 runs (< 10 min on 2 cores)
BENCH_FULL=1 make bench         # adds N = 100,000 fan-out, 100k digests, 20+ latency samples
.venv/bin/python -m bench.run pages       # one section only (others keep their last numbers)
BENCH_FULL=1 .venv/bin/python -m bench.run scale   # section 7 at 100k and 1M subscribers (about 30 min on 2 idle cores)
BENCH_SMOKE=1 .venv/bin/python -m bench.run pages scale   # tiny sizes: checks the code runs, numbers mean nothing
.venv/bin/python -m bench.bounces smoke   # the bounce section's paths with 50 DSNs: a check, no numbers
BENCH_RUNS=5 make bench         # more runs per median
BENCH_CONNS=16 make bench       # SMTP connections for Flashbot and the raw ceiling (default 8)
BENCH_FULL=1 .venv/bin/python -m bench.run cluster   # section 8 alone: SQLite vs 1/2/4 PostgreSQL workers, N = 100k
```
The receiving MTA is Postfix's `smtp-sink` (`apt-get install postfix`; `make bench` installs it
when run as root). Raw per-run numbers: `bench/out/results-quick.json` / `results-full.json`."""


def fmt(v, unit: str = "", nd: int = 0) -> str:
    """A number for a table cell ('–' when missing)."""
    if v is None:
        return "–"
    if isinstance(v, float) and nd:
        return f"{v:,.{nd}f}{unit}"
    if isinstance(v, (int, float)):
        return f"{v:,.0f}{unit}" if abs(v) >= 100 or not nd else f"{v:,.{nd}f}{unit}"
    return f"{v}{unit}"


def ratio(v) -> str:
    """A ratio cell, e.g. '9.4×'."""
    return "–" if v is None else f"{v:.2f}×"


def status(ok) -> str:
    """Target verdict cell."""
    return {True: "met", False: "**missed**", None: "not measured"}[ok]


def _machine(m: dict) -> list[str]:
    rows = [("CPU", m["cpu"]), ("Cores", f"{m['usable_cores']} usable of {m['cores']}"),
            ("RAM", f"{m['ram_gib']} GiB"), ("OS", m["os"]), ("Python", m["python"]),
            ("SQLite", m["sqlite"]), ("Event loop", f"asyncio and uvloop {m['uvloop']}"),
            ("aiosmtplib / SQLAlchemy / httpx", f"{m['aiosmtplib']} / {m['sqlalchemy']} / {m['httpx']}"),
            ("Receiving MTA", f"Postfix smtp-sink {m['postfix_smtp_sink']} on 127.0.0.1"),
            ("PostgreSQL (section 8)", m.get("postgresql", "–"))]
    return ["| | |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)]


def _blocks(text: str) -> dict[str, list[str]]:
    """The `## ` sections of a BENCHMARKS.md, by heading line (each with its heading, no trailing blanks)."""
    blocks: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("## "):
            current = blocks.setdefault(line, [])
        if current is not None:
            current.append(line)
    for lines in blocks.values():
        while lines and not lines[-1].strip():
            lines.pop()
    return blocks


def _target_key(row: str) -> str:
    name = row.split("|")[1].strip() if row.count("|") > 2 else row
    return re.sub(r" \([^()]*\)$", "", name)


def _merge_targets(new: list[str], old: list[str]) -> list[str]:
    """Target rows this run did not measure take their row from the previous report."""
    previous = {_target_key(r): r for r in old if r.startswith("| ") and not r.startswith("| Target")}
    return [previous.get(_target_key(r), r) if r.endswith("| not measured |") else r for r in new]


def write(results: dict, path: Path) -> Path:
    """Render the whole BENCHMARKS.md and return its path.

    A partial rerun (`python -m bench.run pages`) without the other sections' raw results keeps their
    text and target rows from the current BENCHMARKS.md, and says so, instead of erasing them."""
    from . import report_cluster, report_scale
    from . import report_sections as rs

    old_text = path.read_text() if path.exists() else ""
    old = _blocks(old_text)
    body, kept = [], []
    for key, section in (("fanout", rs.fanout), ("polling", rs.polling), ("latency", rs.latency),
                         ("digest", rs.digest), ("pages", rs.pages), ("bounces", rs.bounces),
                         ("scale", lambda r: report_scale.scale(r, results.get("digest"))),
                         ("cluster", report_cluster.section)):
        lines = section(results.get(key))
        if not results.get(key) and lines[0] in old:
            lines = old[lines[0]]
            kept.append(lines[0][3:])
        body += [*lines, ""]
    targets = rs.targets(results)
    if kept:
        targets = _merge_targets(targets, old.get("## Targets", []))
    mode = results["mode"]
    # Kept sections keep the date of the run that measured them, through any number of partial reruns.
    when = re.search(r"previous report \(generated (\S+)\)", old_text) or re.search(r"\) on (\S+);", old_text)
    note = (f" Sections {', '.join(kept)} were not rerun: their text and target rows are kept from the "
            f"previous report{' (generated ' + when.group(1) + ')' if when else ''}.") if kept else ""
    lines = [
        "# Flashbot benchmarks", "",
        f"Generated by `make bench` ({mode} mode{', BENCH_FULL=1' if mode == 'full' else ''}) on "
        f"{results['started']}; every number is the median of {results['runs']} runs made in the "
        "same session, each measured scenario in its own child process (peak RSS = that process's "
        f"`ru_maxrss`). Ratios compare runs interleaved in the same session.{note}", "",
        "## Machine", "", *_machine(results["machine"]), "",
        "## Targets", "", *targets, "",
        *body,
    ]
    findings = ROOT / "bench" / "findings.md"
    if findings.exists():
        lines += ["## Profiling findings and recommendations", "", findings.read_text().strip(), ""]
    lines += ["## Reproduce", "", REPRODUCE, ""]
    path.write_text("\n".join(lines))
    return path

