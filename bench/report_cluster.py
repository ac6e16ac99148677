"""Section 8 of BENCHMARKS.md: SQLite vs PostgreSQL workers, the targets, the 10M extrapolation."""
from __future__ import annotations

from .report import fmt, status

TEN_M, BUDGET_S = 10_000_000, 300


def _ok(v, goal):
    return None if v is None else v >= goal


def targets(res: dict) -> list[tuple[str, str, str, bool | None]]:
    """(target, goal, measured, verdict) rows of the issue's scaling targets."""
    s = res.get("summary") or {}
    lite, pg1, pg2 = (s.get(k, {}) for k in ("sqlite-1", "postgresql-1", "postgresql-2"))
    r1 = pg1.get("steady_msg_per_s") / lite["steady_msg_per_s"] if pg1.get("steady_msg_per_s") and lite.get("steady_msg_per_s") else None
    r2 = pg2.get("steady_msg_per_s") / pg1["steady_msg_per_s"] if pg2.get("steady_msg_per_s") and pg1.get("steady_msg_per_s") else None
    wake = (res.get("wake") or {}).get("median_ms")
    return [("One PostgreSQL worker vs the SQLite process", "≥ 0.80×", "–" if r1 is None else f"{r1:.2f}×", _ok(r1, 0.8)),
            ("Two PostgreSQL workers vs one", "≥ 1.30×", "–" if r2 is None else f"{r2:.2f}×", _ok(r2, 1.3)),
            ("Idle worker: queueing commit → first message (median)", "≤ 100 ms", fmt(wake, " ms", 1),
             None if wake is None else wake <= 100)]


def section(res: dict | None) -> list[str]:
    """The whole section (a partial rerun of other sections keeps it from the current BENCHMARKS.md)."""
    out = ["## 8. Scaling out: SQLite vs PostgreSQL workers", ""]
    if not res or "summary" not in res:
        why = (res or {}).get("skipped") or (res or {}).get("error") or "not run"
        return out + [why]
    n = res["n"]
    out += [f"One Flash Info alert to N = {n:,} instant subscribers, queued by one commit (as the scheduler does), "
            "sent by real `flashbot run --role worker` processes into Postfix's `smtp-sink` "
            "(`[email] concurrency = 8` per worker, `batch_size = 500`). msg/s is N over the time from the first "
            "accepted message to the last (`steady`) and over the whole alert from before the queueing commit "
            "(`alert`); CPU seconds are read from /proc for each process over the alert; the PostgreSQL figure "
            "counts the postmaster and every backend. Median of the runs; the configurations are interleaved.", "",
            "| configuration | msg/s steady | msg/s alert | PostgreSQL CPU s / 1,000 msg | peak RSS per worker | "
            "cores used: workers / PostgreSQL / smtp-sink / queueing |",
            "|---|---:|---:|---:|---:|---|"]
    for key, r in res["summary"].items():
        name = "SQLite, 1 process" if r["backend"] == "sqlite" else f"PostgreSQL, {r['workers']} worker(s)"
        c = r["cores_used_pct"]
        out.append(f"| {name} | {fmt(r['steady_msg_per_s'])} | {fmt(r['msg_per_s'])} | "
                   f"{fmt(r['pg_cpu_s_per_1000'], '', 3)} | {fmt(r['worker_peak_rss_mb'], ' MB', 1)} | "
                   f"{c['workers']} % / {c['postgresql']} % / {c['sink']} % / {c['queueing']} % of 2 cores |")
    out += ["", "| Target | Goal | Measured | Status |", "|---|---|---|---|"]
    out += [f"| {t} | {g} | {m} | {status(ok)} |" for t, g, m, ok in targets(res)]
    wake = res.get("wake") or {}
    if wake.get("samples_ms"):
        out += ["", f"Wake-up samples (ms, idle PostgreSQL worker, LISTEN/NOTIFY): {wake['samples_ms']}."]
    out += ["", *extrapolation(res)]
    return out


def extrapolation(res: dict) -> list[str]:
    """10,000,000 subscribers in ≤ 5 minutes, from the measured CPU cost per message (wall-clock rates
    on a shared 2-core machine say more about the neighbours than about Flashbot)."""
    s = res.get("summary") or {}
    pg = [r for r in s.values() if r["backend"] == "postgresql" and r.get("pg_cpu_s_per_1000")]
    if not pg:
        return []
    n = res["n"]
    pg_cost = max(r["pg_cpu_s_per_1000"] for r in pg) / 1000  # the dearest measured: more workers, more contention
    worker_cost = max(r["cpu_s"]["workers"] for r in pg) / n
    sink_cost = max(r["cpu_s"]["sink"] for r in pg) / n
    rate = TEN_M / BUDGET_S
    pg_cores, worker_cores = rate * pg_cost, rate * worker_cost
    workers = int(worker_cores / 0.7) + 1  # one process per core, kept at 70 % busy
    return [
        f"**10,000,000 subscribers in ≤ 5 minutes** needs {rate:,.0f} msg/s. Measured CPU per message: "
        f"{worker_cost * 1000:.3f} ms in the workers (rendering, MIME, SMTP client, claims and outcomes), "
        f"{pg_cost * 1000:.3f} ms in PostgreSQL (the dearest configuration: claims, outcome writes, WAL), "
        f"{sink_cost * 1000:.3f} ms in the receiving MTA stand-in. So {worker_cores:.1f} cores of workers, "
        f"i.e. about {workers} worker processes (one per core at 70 % busy: {-(-workers // 8)} machines of 8 cores), "
        f"and {pg_cores:.1f} PostgreSQL cores busy for the whole 5 minutes, i.e. a database machine of at least "
        f"{max(8, 2 * int(pg_cores + 0.999))} cores (twice the busy cores: headroom for autovacuum, checkpoints, "
        "the web and the 10 M-row fan-out INSERT, itself a few seconds of one core) on NVMe storage. "
        "The next bottleneck is the receiving side: "
        f"{rate:,.0f} msg/s is far beyond one MTA, so several SMTP relays (or a sending provider's API) behind "
        "the workers, and that provider's rate limit (`[email] rate_limit`, shared by the cluster) sets the pace. "
        "See docs/operations.md \"Scaling out\"."]
