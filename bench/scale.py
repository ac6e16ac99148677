"""Benchmark 7: a million subscribers on one node. The real CLI in its own process for the fan-out
(`flashbot run --once` to smtp-sink, 100k and 1M in the same session) and for import/export; the
delivery log's bytes per recipient before and after compaction. Quick mode runs a tenth of each, smoke
mode (BENCH_SMOKE=1) a few hundred rows. The operator pages over ten million rows are section 5
(bench/pages.py)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .common import FULL, ROOT, RUNS, SMOKE, median
from .harness import run_child

FANOUT = (200, 2_000) if SMOKE else (100_000, 1_000_000) if FULL else (10_000, 100_000)
IMPORT = 3_000 if SMOKE else 1_000_000 if FULL else 100_000


def run_cmd(args: list[str], cwd: Path, timeout: float = 3600) -> dict:
    """`python -m bot ARGS` in its own process: wall, peak RSS and CPU (os.wait4: that child alone), output."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    with tempfile.TemporaryFile("w+") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "bot", *args], cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)  # already reaped: tell Popen
        wall = time.perf_counter() - t0
        out.seek(0)
        text = out.read()
    code = proc.returncode
    if code != 0:
        raise RuntimeError(f"flashbot {' '.join(args)} exited {code}: {text[-1500:]}")
    return {"wall_s": round(wall, 2), "rss_mb": round(usage.ru_maxrss / 1024, 1),
            "cpu_s": round(usage.ru_utime + usage.ru_stime, 2), "output": text}


def _feed(path: Path) -> None:
    from . import message

    body = "".join(f"&lt;p&gt;{p}&lt;/p&gt;" for p in message.PARAGRAPHS)
    path.write_text(
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Bench</title>'
        f"<link>https://www.example-actu.fr/</link><item><title>{message.TITLE}</title><guid>{message.LINK}</guid>"
        f"<link>{message.LINK}</link><description>{body}</description><category>Flash Info</category>"
        "</item></channel></rss>", encoding="utf-8")


def _config(folder: Path, db: Path, port: int, feed: Path) -> Path:
    from . import message
    from .fanout import CONNS

    path = folder / "config.toml"
    path.write_text(f'''[bot]
database = "{db}"
public_url = "{message.PUBLIC_URL}"

[[sources]]
name = "bench"
url = "{feed}"
alert_on_first_poll = true

[email]
host = "127.0.0.1"
port = {port}
sender = "{message.SENDER}"
tls = "none"
concurrency = {CONNS}

[web]
enabled = false
''', encoding="utf-8")
    return path


def fanout(tmp: Path, sink, log) -> tuple[dict, Path | None]:
    """run --once to every subscriber, each size RUNS times, interleaved; keeps the largest run's database."""
    _feed(tmp / "feed.xml")
    templates = {}
    for n in FANOUT:
        templates[n] = tmp / f"subs-{n}.db"
        t0 = time.perf_counter()
        run_child("scale_subscribers", {"db": str(templates[n]), "n": n}, timeout=7200)
        log(f"  {n:,} subscribers prepared in {time.perf_counter() - t0:.0f} s")
    runs: dict[int, list] = {n: [] for n in FANOUT}
    kept = None
    for rep in range(RUNS):
        for n in FANOUT:
            db = tmp / f"once-{n}.db"
            shutil.copyfile(templates[n], db)
            cfg = _config(tmp, db, sink.port, tmp / "feed.xml")
            before = sink.count()
            r = run_cmd(["--config", str(cfg), "run", "--once"], tmp, timeout=7200)
            sent = int(re.search(r"\bsent (\d+)", r.pop("output")).group(1))
            from .fanout import _settled_count

            r.update(n=n, sent=sent, sink=_settled_count(sink, before), msg_per_s=round(sent / r["wall_s"], 1))
            runs[n].append(r)
            log(f"  run --once, {n:,} subscribers, run {rep + 1}: {r['msg_per_s']:,.0f} msg/s ({sent:,} in {r['wall_s']} s), "
                f"peak RSS {r['rss_mb']} MB, CPU {r['cpu_s']} s, sink got {r['sink']:,}")
            if n == FANOUT[-1]:
                kept = tmp / "compaction.db"
                shutil.move(db, kept)
    out = {str(n): {k: median([r[k] for r in rs]) for k in ("msg_per_s", "wall_s", "rss_mb", "cpu_s", "sent", "sink")}
           | {"runs": rs, "template_bytes": os.path.getsize(templates[n])} for n, rs in runs.items()}
    return out, kept


def compaction(db: Path, n: int, template_bytes: int, log) -> dict:
    """Bytes per recipient of the kept database before and after compaction (8 days later)."""
    r = run_child("scale_compaction", {"db": str(db)}, timeout=7200)
    mib = 1e6 / 1048576 / n  # bytes → MiB per million recipients
    r["per_recipient_before"] = round((r["bytes_before"] - template_bytes) / n, 1)
    r["per_recipient_after"] = round((r["bytes_after"] - template_bytes) / n, 2)
    r["first_kept_per_million"] = round((r["bytes_after"] - template_bytes) * mib, 2)
    r["second_per_recipient_before"] = round((r["second_bytes_before"] - r["bytes_after"]) / n, 1)
    r["kept_per_million"] = round((r["second_bytes_after"] - r["bytes_after"]) * mib, 2)
    log(f"  compaction of {r['rows']:,} rows: {r['per_recipient_before']} → {r['per_recipient_after']} bytes per "
        f"recipient ({r['first_kept_per_million']} MiB per 1M with the per-subscriber counters; a second alert keeps "
        f"{r['kept_per_million']} MiB per 1M), {r['compact_s']} s in {r['batches']} batches, longest "
        f"{r['slowest_batch_s']} s; reclaim {r['reclaim_s']} s")
    return r


def import_export(tmp: Path, log) -> dict:
    """`subscribers import` of an IMPORT-row CSV and `subscribers export` of the result, RUNS times each."""
    csv_path = tmp / "import.csv"
    with csv_path.open("w", encoding="utf-8") as f:
        f.write("email,language,mode,topics\n")
        for i in range(IMPORT):
            f.write(f"lecteur{i}@domaine{i % 3000}.fr,{'en' if i % 3 else 'fr'},both,sport;{i % 7}\n" if i % 1000 else f"bad{i}\n")
    runs = {"import": [], "export": []}
    for rep in range(RUNS):
        db = tmp / "import.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        cfg = tmp / "import.toml"
        cfg.write_text(f'[bot]\ndatabase = "{db}"\n', encoding="utf-8")
        r = run_cmd(["--config", str(cfg), "subscribers", "import", str(csv_path)], tmp)
        assert f"{IMPORT - IMPORT // 1000} added" in r.pop("output")
        e = run_cmd(["--config", str(cfg), "subscribers", "export", str(tmp / "export.csv")], tmp)
        e.pop("output")
        for k, v in (("import", r), ("export", e)):
            v["rows_per_s"] = round(IMPORT / v["wall_s"])
            v["rows_per_cpu_s"] = round(IMPORT / v["cpu_s"])
            runs[k].append(v)
            log(f"  {k} of {IMPORT:,} rows, run {rep + 1}: {v['wall_s']} s ({v['rows_per_s']:,} rows/s; "
                f"{v['rows_per_cpu_s']:,} per CPU second), peak RSS {v['rss_mb']} MB")
    return {k: {m: median([r[m] for r in rs]) for m in ("wall_s", "cpu_s", "rss_mb", "rows_per_s", "rows_per_cpu_s")}
            | {"runs": rs, "rows": IMPORT, "csv_bytes": csv_path.stat().st_size} for k, rs in runs.items()}


def bench(log=print) -> dict:
    """Fan-out, compaction and import/export at scale, each in its own processes."""
    from .sink import SmtpSink

    out: dict = {"full": FULL}
    with tempfile.TemporaryDirectory(prefix="flashbot-scale-", dir=os.environ.get("BENCH_TMP")) as tmp_name:
        tmp = Path(tmp_name)
        with SmtpSink(log=log) as sink:
            out["fanout"], kept = fanout(tmp, sink, log)
        if kept is not None:
            n = FANOUT[-1]
            out["compaction"] = compaction(kept, n, out["fanout"][str(n)]["template_bytes"], log)
            kept.unlink()
        for f in tmp.glob("*.db*"):
            f.unlink()
        out["import"] = import_export(tmp, log)
    return out
