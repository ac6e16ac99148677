"""The dashboard's four charts, drawn on the server as SVG shapes (see bot.web.svg), in the page's
language and `[bot] timezone`: sends per hour (7 days), alert latency (30 days), subscribers per day
(30 days), and source health (the last polls of each source)."""
from __future__ import annotations

import math
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from babel.dates import format_datetime, format_skeleton, format_time
from babel.numbers import format_decimal

from bot.models import PollOutcome, SendOutcome, SubscriberEvent
from bot.store.schema import HISTORY_SLOTS
from bot.web import localize, svg
from bot.i18n import N_
from bot.i18n import translator as catalog

HOUR, DAY = timedelta(hours=1), timedelta(days=1)
SEND_OUTCOMES = (SendOutcome.SENT, SendOutcome.FAILED, SendOutcome.BOUNCED)
EVENTS = (SubscriberEvent.SIGNUP, SubscriberEvent.CONFIRM, SubscriberEvent.UNSUBSCRIBE, SubscriberEvent.SUPPRESS)
# Keys reached through a variable (chart_<outcome>, chart_poll_<outcome>), marked for `make messages`.
KEYS = (N_("chart_sent"), N_("chart_failed"), N_("chart_bounced"), N_("chart_signup"), N_("chart_confirm"),
        N_("chart_unsubscribe"), N_("chart_suppress"), N_("chart_poll_ok"), N_("chart_poll_not_modified"),
        N_("chart_poll_error"))


class Labels:
    """Numbers, dates and durations in one language and time zone."""

    def __init__(self, lang: str, tz_name: str) -> None:
        self.lang, self.tz, self.tr = lang, ZoneInfo(tz_name), catalog(lang)
        self._, self.ngettext = self.tr.gettext, self.tr.ngettext

    def word(self, key: str) -> str:
        """The translation of a key built from a code (chart_<outcome>…; each is listed in KEYS)."""
        return self._(key)

    def num(self, v: float) -> str:
        """1 234 / 1,234."""
        return format_decimal(v, "#,##0", locale=self.lang)

    def day(self, at: datetime, skeleton: str = "MMMEd") -> str:
        """lun. 30 nov. / Mon, Nov 30."""
        return format_skeleton(skeleton, at, tzinfo=self.tz, locale=self.lang)

    def short_day(self, at: datetime) -> str:
        """lun. 30 / Mon 30 (an axis label)."""
        return format_datetime(at, "EEE d", tzinfo=self.tz, locale=self.lang)

    def when(self, at: datetime) -> str:
        """lun. 30 nov. 15:05 / Mon, Nov 30 3:05 PM."""
        return f"{self.day(at)} {format_time(at, 'short', tzinfo=self.tz, locale=self.lang)}"

    def duration(self, s: float) -> str:
        """0,4 s / 35 s / 12 min / 3,5 h."""
        return localize.duration(s, self.lang)

    def tick(self, s: float) -> str:
        """A round duration for an axis: 0,1 s / 10 s / 1 min / 1 h / 1 j."""
        for size, unit in ((86400, self._("unit_day")), (3600, "h"), (60, "min")):
            if s >= size:
                return f"{format_decimal(s / size, '0.#', locale=self.lang)} {unit}"
        return f"{format_decimal(s, '0.#', locale=self.lang)} s"

    def local_start(self, at: datetime, unit: timedelta) -> datetime:
        """The start (UTC) of the local hour or day holding `at`."""
        local = at.astimezone(self.tz).replace(minute=0, second=0, microsecond=0)
        if unit == DAY:
            local = datetime.combine(local.date(), datetime.min.time(), tzinfo=self.tz)
        return local.astimezone(timezone.utc)


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile (p in 0..100); None for no values."""
    vals = sorted(values)
    if not vals:
        return None
    return vals[max(0, min(len(vals) - 1, math.ceil(p / 100 * len(vals)) - 1))]


def _y_ticks(chart_max: float, t: Labels) -> tuple[float, list[tuple[float, str]]]:
    high, ticks = svg.linear_ticks(chart_max)
    return high, [(v, t.num(v)) for v in ticks]


def sends(rows: list[tuple], now: datetime, t: Labels, channels: list[str]) -> list[dict]:
    """Sends per local hour over 7 days, one chart per channel, stacked sent / failed / bounced."""
    end = t.local_start(now, HOUR) + HOUR
    start = end - 7 * DAY
    per: dict[str, dict[int, dict[str, int]]] = {c: defaultdict(lambda: defaultdict(int)) for c in channels}
    for bucket, channel, outcome, n in rows:
        i = int((bucket - start) // HOUR)
        if 0 <= i < 168:
            per.setdefault(channel, defaultdict(lambda: defaultdict(int)))[i][outcome] += n
    charts = []
    for channel, hours in sorted(per.items()):
        high, yt = _y_ticks(max([sum(h.values()) for h in hours.values()] or [0]), t)
        frame = svg.Frame(0, 168, 0, high)
        xt = [(i, t.short_day(start + i * HOUR)) for i in range(168) if (start + i * HOUR).astimezone(t.tz).hour == 0]
        chart = svg.new_chart(f"chart-sends-{channel}", t._("chart_sends", channel=channel), frame, yt, xt)
        for i, counts in sorted(hours.items()):
            x, w, y = frame.x(i), frame.x(i + 1) - frame.x(i) - 0.3, 0
            tip = f"{t.when(start + i * HOUR)} · " + ", ".join(
                t._("chart_n", label=t.word(f"chart_{o}"), n=t.num(counts.get(o, 0))) for o in SEND_OUTCOMES)
            for o in SEND_OUTCOMES:
                if counts.get(o):
                    svg.bar(chart, x, w, frame.y(y), frame.y(y + counts[o]), f"bar {o}", tip, counts[o], outcome=o)
                    y += counts[o]
        totals = {o: sum(h.get(o, 0) for h in hours.values()) for o in SEND_OUTCOMES}
        chart["legend"] = [(o, t.word(f"chart_{o}"), t.num(totals[o])) for o in SEND_OUTCOMES]
        charts.append(chart)
    return charts


def latency(alerts: list[dict], now: datetime, t: Labels) -> dict:
    """Publication → first send (any channel) of each alert of 30 days, log scale, p50 and p95 lines."""
    start = now - 30 * DAY
    pts = []
    for a in alerts:
        firsts = [f for f in (a["first_telegram_at"], a["first_email_at"]) if f is not None]
        if firsts and a["published_at"] is not None and a["detected_at"] is not None:
            pts.append((a, max((min(firsts) - a["published_at"]).total_seconds(), 0.0)))
    values = [v for _, v in pts]
    lo, hi, ticks = svg.log_ticks(min(values, default=1), max(values, default=60))
    frame = svg.Frame(start.timestamp(), now.timestamp(), lo, hi, log_y=True)
    xt = [(d.timestamp(), t.day(d, "MMMd")) for d in (t.local_start(now, DAY) - k * DAY for k in range(0, 30, 5))]
    chart = svg.new_chart("chart-latency", t._("chart_latency"), frame, [(v, t.tick(v)) for v in ticks], xt)
    for a, v in pts:
        tip = f"{a['title']} · {t.when(a['detected_at'])} · {t.duration(v)}"
        svg.point(chart, frame.x(a["detected_at"].timestamp()), frame.y(v), "pt", tip, round(v, 3))
    for p in (50, 95):
        value = percentile(values, p)
        if value is not None:
            y = frame.y(value)
            chart["lines"].append({"x1": frame.left, "y1": y, "x2": frame.right, "y2": y, "cls": f"p{p}"})
            # p50 labelled on the left, p95 on the right: equal values must not print on top of each other.
            chart["texts"].append({"x": frame.left + 4 if p == 50 else frame.right - 4, "y": y - 3,
                                   "text": f"p{p} {t.duration(value)}", "cls": f"tick p{p}",
                                   "anchor": "start" if p == 50 else "end"})
    chart["legend"] = [("pt", t._("chart_alerts"), t.num(len(pts)))] + [
        (f"p{p}", f"p{p}", t.duration(v)) for p in (50, 95) if (v := percentile(values, p)) is not None]
    return chart


def subscribers(rows: list[tuple], now: datetime, t: Labels) -> dict:
    """Sign-ups, confirmations, unsubscriptions and suppressions per local day over 30 days."""
    end = t.local_start(now, DAY) + DAY
    # The 30 local days up to today (noon of each is inside it whatever DST did in between).
    days = [t.local_start(end - k * DAY - 12 * HOUR, DAY) for k in range(29, -1, -1)]
    per: dict[str, list[int]] = {e: [0] * 30 for e in EVENTS}
    for bucket, _label, event, n in rows:
        local_day = t.local_start(bucket, DAY)
        if event in per and local_day in days:
            per[event][days.index(local_day)] += n
    high, yt = _y_ticks(max(max(v) for v in per.values()), t)
    frame = svg.Frame(0, 29, 0, high)
    chart = svg.new_chart("chart-subscribers", t._("chart_subscribers"), frame, yt,
                          [(i, t.day(d, "MMMd")) for i, d in enumerate(days) if i % 5 == 4])
    for e in EVENTS:
        coords = [(frame.x(i), frame.y(n)) for i, n in enumerate(per[e])]
        svg.polyline(chart, coords, f"line {e}")
        for i, n in enumerate(per[e]):
            if n:
                svg.point(chart, *coords[i], f"pt {e}", f"{t.day(days[i])} · " + t._("chart_n", label=t.word(f"chart_{e}"), n=t.num(n)), n, 2.5)
    chart["legend"] = [(e, t.word(f"chart_{e}"), t.num(sum(per[e]))) for e in EVENTS]
    return chart


def health(sources: list[dict], history: dict[int, list[dict]], t: Labels) -> dict:
    """One row per source: its last polls as cells (ok, not modified, error), newest on the right."""
    row_h, name_w = 14, 150
    height = svg.MARGIN["top"] + row_h * max(len(sources), 1) + 22
    frame = svg.Frame(0, HISTORY_SLOTS, 0, 1, width=svg.WIDTH, height=height,
                      margin={"left": name_w, "right": 12, "top": svg.MARGIN["top"], "bottom": 22})
    chart = svg.new_chart("chart-health", t.ngettext("chart_health", "chart_health_plural", HISTORY_SLOTS), frame, [], [])
    chart["lines"].clear()
    counts = {o: 0 for o in PollOutcome}
    for r, src in enumerate(sources):
        y = frame.top + r * row_h
        name = src["name"] if len(src["name"]) <= 24 else src["name"][:23] + "…"
        chart["texts"].append({"x": frame.left - 6, "y": y + row_h - 4, "text": name, "cls": "tick", "anchor": "end"})
        polls = history.get(src["id"], [])[-HISTORY_SLOTS:]
        offset = HISTORY_SLOTS - len(polls)
        for k, p in enumerate(polls):
            counts[p["outcome"]] = counts.get(p["outcome"], 0) + 1
            bits = [t.when(p["at"]), t.word(f"chart_poll_{p['outcome']}")]
            bits += [f"HTTP {p['status']}"] if p["status"] else []
            bits += [t.duration(p["duration_ms"] / 1000)] if p["duration_ms"] is not None else []
            bits += [p["error"]] if p["error"] else []
            x0, x1 = frame.x(offset + k), frame.x(offset + k + 1)
            svg.bar(chart, x0 + 0.5, x1 - x0 - 1, y + 1, y + row_h - 2, f"cell {p['outcome']}", " · ".join(bits), 1,
                    source=str(src["id"]))
    chart["legend"] = [(o.value, t.word(f"chart_poll_{o.value}"), t.num(counts[o])) for o in PollOutcome]
    return chart


def strip(polls: list[dict], t: Labels) -> list[dict]:
    """The cells of one source's poll history for a row of the sources page (x in 0..HISTORY_SLOTS)."""
    offset = HISTORY_SLOTS - len(polls[-HISTORY_SLOTS:])
    cells = []
    for k, p in enumerate(polls[-HISTORY_SLOTS:]):
        bits = [t.when(p["at"]), t.word(f"chart_poll_{p['outcome']}")] + ([f"HTTP {p['status']}"] if p["status"] else [])
        cells.append({"x": offset + k, "cls": p["outcome"], "title": " · ".join(bits + ([p["error"]] if p["error"] else []))})
    return cells


def overview(engine, cfg, lang: str, now: datetime) -> dict:
    """Every chart of the overview, read from the store and drawn (a blocking call: run it off the loop)."""
    from bot.store import dashboard, polls, stats

    t = Labels(lang, cfg.bot.timezone)
    channels = [c for c in ("email", "telegram") if getattr(cfg, c) is not None]
    watched = dashboard.health_sources(engine)
    return {
        "sends": sends(stats.series(engine, stats.DELIVERY, now - 7 * DAY - HOUR), now, t, channels),
        "latency": latency(dashboard.alert_latencies(engine, now - 30 * DAY), now, t),
        "subscribers": subscribers(stats.series(engine, stats.SUBSCRIBER, now - 31 * DAY), now, t),
        "health": health(watched, polls.recent(engine, [s["id"] for s in watched]), t),
    }
