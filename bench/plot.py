"""bench/fanout.png: msg/s vs N for Flashbot, the rss2email-style sender and the raw ceiling."""
from __future__ import annotations

import math
from pathlib import Path

from .png import Canvas

SERIES = [  # (result key, legend, colour)
    ("ours", "Flashbot (whole path, uvloop)", (31, 99, 196)),
    ("raw_uvloop", "raw ceiling: aiosmtplib, uvloop", (46, 160, 67)),
    ("raw_asyncio", "raw ceiling: aiosmtplib, asyncio", (150, 150, 150)),
    ("rss2email", "rss2email-style: smtplib", (200, 40, 40)),
]
W, H, L, R, T, B = 900, 560, 110, 30, 60, 70  # canvas size and margins


def _nice_step(top: float) -> float:
    raw = top / 6
    mag = 10 ** math.floor(math.log10(raw))
    return next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)


def _points(sizes: dict, key: str) -> list[tuple[int, float]]:
    pts = [(int(n), (s.get(key) or {}).get("msg_per_s")) for n, s in sizes.items()]
    return sorted((n, v) for n, v in pts if v)


def fanout_png(results: dict, path: Path) -> Path | None:
    """Draw the plot from results['fanout']; None when there is nothing to plot."""
    sizes = ((results.get("fanout") or {}).get("sizes")) or {}
    series = [(label, color, _points(sizes, key)) for key, label, color in SERIES]
    series = [s for s in series if s[2]]
    if not series:
        return None
    ns = sorted({n for _, _, pts in series for n, _ in pts})
    top = max(v for _, _, pts in series for _, v in pts) * 1.1
    step = _nice_step(top)
    top = math.ceil(top / step) * step
    lo, hi = math.log10(ns[0]), math.log10(ns[-1])
    span = (hi - lo) or 1

    def x(n: float) -> float:
        return L + (math.log10(n) - lo) / span * (W - L - R - 40) + 20

    def y(v: float) -> float:
        return H - B - v / top * (H - T - B)

    c = Canvas(W, H)
    grid, ink = (225, 225, 225), (60, 60, 60)
    v = 0.0
    while v <= top + 1e-9:
        c.line(L, y(v), W - R, y(v), grid)
        c.text(L - 8, round(y(v)) - 7, f"{v:,.0f}", ink, 2, "right")
        v += step
    for n in ns:
        c.line(x(n), T, x(n), H - B, grid)
        c.text(round(x(n)), H - B + 10, f"{n:,}", ink, 2, "center")
    c.line(L, H - B, W - R, H - B, ink, 2)
    c.line(L, T, L, H - B, ink, 2)
    c.text(W // 2, 18, f"One alert to N subscribers ({results['machine']['usable_cores']} cores)",
           (0, 0, 0), 2, "center")
    c.text(W // 2, H - 30, "N subscribers (log scale)", ink, 2, "center")
    c.text(10, T - 30, "msg/s", ink, 2)
    for label, color, pts in series:
        for (n0, v0), (n1, v1) in zip(pts, pts[1:]):
            c.line(x(n0), y(v0), x(n1), y(v1), color, 3)
        for n, val in pts:
            c.rect(round(x(n)) - 4, round(y(val)) - 4, round(x(n)) + 4, round(y(val)) + 4, color)
    lx, ly = L + 20, T + 8
    for i, (label, color, _) in enumerate(series):
        c.rect(lx, ly + i * 22 + 4, lx + 24, ly + i * 22 + 8, color)
        c.text(lx + 32, ly + i * 22, label, (0, 0, 0), 2)
    c.save(path)
    return path
