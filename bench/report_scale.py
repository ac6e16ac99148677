"""The Scale part of BENCHMARKS.md (section 7) and its target rows (section 5's pages have theirs in
report_sections.py)."""
from __future__ import annotations

from .report import fmt

def _ok(v, goal, le=True):
    return None if v is None else (v <= goal if le else v >= goal)


def targets(results: dict) -> list[tuple]:
    """(target, goal, measured, verdict) rows of issue #17."""
    sc = results.get("scale") or {}
    rows = []
    fan = sc.get("fanout") or {}
    sizes = sorted(fan, key=int)
    if sizes:
        small, big = fan[sizes[0]], fan[sizes[-1]]
        growth = big["rss_mb"] / small["rss_mb"] - 1 if small.get("rss_mb") else None
        rows.append((f"run --once peak RSS, {int(sizes[0]):,} → {int(sizes[-1]):,} subscribers", "flat (≤ +20 %)",
                     f"{small['rss_mb']} → {big['rss_mb']} MB ({growth:+.0%})" if growth is not None else "–", _ok(growth, 0.2)))
    imp = (sc.get("import") or {}).get("import") or {}
    if imp:
        at = f"{int(imp['rows']):,} rows"
        rows.append((f"subscribers import peak RSS ({at})", "≤ 150 MB", fmt(imp.get("rss_mb"), " MB", 1), _ok(imp.get("rss_mb"), 150)))
        rows.append((f"subscribers import speed ({at})", "≥ 30,000 rows/s",
                     f"{fmt(imp.get('rows_per_s'))} rows/s wall, {fmt(imp.get('rows_per_cpu_s'))} per CPU s",
                     _ok(imp.get("rows_per_s"), 30000, le=False)))
    comp = sc.get("compaction") or {}
    if comp:
        rows.append(("Kept per 1M recipients of an alert once compacted (each alert after the first)", "≤ 2 MB",
                     fmt(comp.get("kept_per_million"), " MiB", 2),
                     _ok(comp.get("kept_per_million"), 2)))
        rows.append(("Longest compaction transaction (write lock held)", "≈ 100 ms", fmt((comp.get("slowest_batch_s") or 0) * 1000, " ms", 1),
                     _ok((comp.get("slowest_batch_s") or 0) * 1000, 150)))
    dig = results.get("digest") or {}
    ratio = _digest_ratio(dig)
    if ratio is not None:
        rows.append(("Digest worst case ÷ common case, same session", "≥ 0.80×", f"{ratio:.2f}×", ratio >= 0.8))
    return rows


def _digest_ratio(dig: dict) -> float | None:
    worst, common = (dig.get("unique") or {}).get("msg_per_s"), dig.get("msg_per_s")
    return round(worst / common, 3) if worst and common else None


def scale(res: dict | None, digest: dict | None) -> list[str]:
    """Section 7: the tables."""
    out = ["## 7. Scale", ""]
    if not res or "error" in res or "skipped" in res:
        return out + [f"not measured: {(res or {}).get('error') or (res or {}).get('skipped') or 'not run'}"]
    fan = res.get("fanout") or {}
    out += ["`flashbot run --once` in its own process (peak RSS and CPU from `os.wait4`): one source (a local "
            "feed file) with a new Flash Info item, N active instant subscribers, email to smtp-sink over 8 "
            "connections. msg/s = messages sent ÷ the whole process's wall time (start, poll, fan-out of N rows, "
            "sending, recording, housekeeping, exit).", "",
            "| subscribers | msg/s | wall | CPU | peak RSS | sink |", "|---:|---:|---:|---:|---:|---:|"]
    for n in sorted(fan, key=int):
        f = fan[n]
        out.append(f"| {int(n):,} | {fmt(f['msg_per_s'])} | {fmt(f['wall_s'], ' s', 1)} | {fmt(f['cpu_s'], ' s', 1)} | "
                   f"{fmt(f['rss_mb'], ' MB', 1)} | {fmt(f['sink'])} |")
    comp = res.get("compaction") or {}
    if comp:
        out += ["", f"**Delivery log, one alert to {int(comp['rows']):,} recipients** (the largest run's database, "
                "compacted as if 8 days later, `[delivery] detail_days = 7`, then `incremental_vacuum`): "
                f"{comp['per_recipient_before']} bytes per recipient before, {comp['per_recipient_after']} after: "
                f"{comp['first_kept_per_million']} MiB per million recipients, most of it the per-subscriber counters "
                "that the first compaction creates once for all later alerts. A second alert to the same people "
                f"({comp['second_per_recipient_before']} bytes per recipient before) keeps "
                f"**{comp['kept_per_million']} MiB per million recipients** once compacted (its summary rows; the "
                "per-subscriber counters only change). "
                f"Compaction took {comp['compact_s']} s "
                f"in {comp['batches']} transactions, the longest holding the write lock {comp['slowest_batch_s'] * 1000:.0f} ms; "
                f"handing the pages back took {comp['reclaim_s']} s."]
    imp = res.get("import") or {}
    if imp:
        out += ["", f"**Import / export of {int(imp['import']['rows']):,} subscribers** (the real CLI, a "
                f"{imp['import']['csv_bytes'] / 1e6:.0f} MB CSV, one reject per thousand lines):", "",
                "| command | wall | rows/s | rows per CPU second | peak RSS |", "|---|---:|---:|---:|---:|"]
        for k in ("import", "export"):
            v = imp[k]
            out.append(f"| subscribers {k} | {fmt(v['wall_s'], ' s', 1)} | {fmt(v['rows_per_s'])} | "
                       f"{fmt(v['rows_per_cpu_s'])} | {fmt(v['rss_mb'], ' MB', 1)} |")
    ratio = _digest_ratio(digest or {})
    if ratio is not None:
        out += ["", f"**Digest worst case ÷ common case** (section 4, same session): {ratio:.2f}×."]
    return out
