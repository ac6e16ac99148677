"""Chart geometry for the dashboard's server-side SVG: scales, ticks and shapes (no I/O, no HTML).

A chart is a dict of plain shapes (rects, lines, polylines, circles, texts) in a fixed viewBox that
templates/web/admin/_chart.html draws; colours come from classes in style.css, so the SVG needs no
inline style and passes the strict Content-Security-Policy.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

WIDTH, HEIGHT = 640, 220
MARGIN = {"left": 56, "right": 12, "top": 12, "bottom": 30}


def nice_step(span: float, target: int = 4) -> float:
    """A round step (1, 2, 2.5 or 5 × 10^k) giving about `target` intervals over `span`."""
    if span <= 0:
        return 1.0
    raw = span / target
    mag = 10 ** math.floor(math.log10(raw))
    return next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)


def linear_ticks(top: float, target: int = 4) -> tuple[float, list[float]]:
    """(axis maximum, tick values from 0) for data whose largest value is `top`; integers only."""
    step = max(1.0, float(math.ceil(nice_step(max(top, 1.0), target))))
    high = step * max(1, math.ceil(max(top, 1.0) / step))
    return high, [step * i for i in range(int(high / step) + 1)]


# Latency ticks: round durations an operator reads at a glance.
LOG_TICKS = (0.1, 1, 10, 60, 600, 3600, 6 * 3600, 86400)


def log_ticks(low: float, high: float) -> tuple[float, float, list[float]]:
    """(axis min, axis max, ticks) of a log scale covering [low, high] (seconds, floor 0.1 s)."""
    low, high = max(min(low, high), LOG_TICKS[0]), max(high, low, 1.0)
    lo = max(t for t in LOG_TICKS if t <= low)
    hi = min((t for t in LOG_TICKS if t >= high), default=high)
    return lo, hi, [t for t in LOG_TICKS if lo <= t <= hi]


@dataclass
class Frame:
    """The plotting area inside the viewBox, and the mapping of data to it."""

    x_min: float
    x_max: float
    y_min: float
    y_max: float
    log_y: bool = False
    width: int = WIDTH
    height: int = HEIGHT
    margin: dict = field(default_factory=lambda: dict(MARGIN))

    @property
    def left(self) -> float:
        return self.margin["left"]

    @property
    def right(self) -> float:
        return self.width - self.margin["right"]

    @property
    def top(self) -> float:
        return self.margin["top"]

    @property
    def bottom(self) -> float:
        return self.height - self.margin["bottom"]

    def x(self, v: float) -> float:
        """Data x → viewBox x."""
        span = (self.x_max - self.x_min) or 1.0
        return round(self.left + (v - self.x_min) / span * (self.right - self.left), 2)

    def y(self, v: float) -> float:
        """Data y → viewBox y (clamped to the frame)."""
        if self.log_y:
            lo, hi = math.log10(self.y_min), math.log10(self.y_max)
            f = (math.log10(max(v, self.y_min)) - lo) / ((hi - lo) or 1.0)
        else:
            f = (v - self.y_min) / ((self.y_max - self.y_min) or 1.0)
        f = min(max(f, 0.0), 1.0)
        return round(self.bottom - f * (self.bottom - self.top), 2)


def new_chart(chart_id: str, title: str, frame: Frame, y_ticks: list[tuple[float, str]],
              x_ticks: list[tuple[float, str]]) -> dict:
    """An empty chart with its axes, grid lines and tick labels drawn."""
    chart = {"id": chart_id, "title": title, "width": frame.width, "height": frame.height, "rects": [],
             "lines": [], "polylines": [], "circles": [], "texts": [], "legend": [], "points": 0}
    for value, label in y_ticks:
        y = frame.y(value)
        chart["lines"].append({"x1": frame.left, "y1": y, "x2": frame.right, "y2": y, "cls": "grid"})
        chart["texts"].append({"x": frame.left - 6, "y": y + 4, "text": label, "cls": "tick", "anchor": "end"})
    for value, label in x_ticks:
        x = frame.x(value)
        # A label centred on a tick near either edge would be cut by the viewBox: align it inwards.
        anchor = "end" if x > frame.width - 24 else "start" if x < 24 else "middle"
        chart["lines"].append({"x1": x, "y1": frame.bottom, "x2": x, "y2": frame.bottom + 4, "cls": "axis"})
        chart["texts"].append({"x": x, "y": frame.bottom + 17, "text": label, "cls": "tick x", "anchor": anchor})
    chart["lines"].append({"x1": frame.left, "y1": frame.bottom, "x2": frame.right, "y2": frame.bottom, "cls": "axis"})
    return chart


def bar(chart: dict, x: float, width: float, y0: float, y1: float, cls: str, title: str, value: float,
        **data: str) -> None:
    """A rectangle from y0 down to y1 (viewBox units) with a tooltip and its value."""
    chart["rects"].append({"x": round(x, 2), "y": min(y0, y1), "w": round(max(width, 0.5), 2),
                           "h": round(max(abs(y1 - y0), 0.5), 2), "cls": cls, "title": title,
                           "value": value, "data": data})
    chart["points"] += 1


def point(chart: dict, cx: float, cy: float, cls: str, title: str, value: float, r: float = 3.5) -> None:
    """A marker with a tooltip and its value."""
    chart["circles"].append({"cx": cx, "cy": cy, "r": r, "cls": cls, "title": title, "value": value})
    chart["points"] += 1


def polyline(chart: dict, coords: list[tuple[float, float]], cls: str) -> None:
    """A line through the coordinates (viewBox units)."""
    if len(coords) > 1:
        chart["polylines"].append({"points": " ".join(f"{x},{y}" for x, y in coords), "cls": cls})
