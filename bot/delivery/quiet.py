"""Per-subscriber caps and quiet hours, as rules without I/O: whether an alert may go to a subscriber
now, and if not, when the alerts held back may go in one summary mail.

A subscriber's day and quiet hours are in their time zone (NULL: [bot] timezone), computed with
zoneinfo so that a day of 23 or 25 hours (DST changes) is still one day and 07:00 is 07:00 local.
The cap is `[delivery] max_alerts_per_day`, lowered by the subscriber's own `max_per_day`.
An alert over the cap or inside quiet hours is folded: the subscriber's next digest carries it, or,
for a subscriber without digests, a summary mail at the first moment an alert could reach them
again (the end of the quiet hours, or the next day when only the cap stopped it).
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

CAP_MAX = 1000
_HHMM = re.compile(r"^([01]?\d|2[0-3])[:h]([0-5]\d)$")
_RANGE = re.compile(r"^\s*(\S+)\s*(?:-|–|—|to|à)\s*(\S+)\s*$")


class LimitError(ValueError):
    """A cap, quiet-hours range or time zone that cannot be used (the message names the problem)."""


def parse_hhmm(text: str) -> str:
    """"7:00", "07:00" or "7h00" → "07:00"; LimitError otherwise."""
    m = _HHMM.match((text or "").strip())
    if not m:
        raise LimitError(f"{text!r} is not a time of day (HH:MM)")
    return f"{int(m.group(1)):02d}:{m.group(2)}"


def parse_quiet(start: str | None, end: str | None) -> tuple[str | None, str | None]:
    """Both empty → no quiet hours; both times → ("HH:MM", "HH:MM"); anything else → LimitError."""
    start, end = (start or "").strip(), (end or "").strip()
    if not start and not end:
        return None, None
    if not start or not end:
        raise LimitError("quiet hours need a start and an end")
    a, b = parse_hhmm(start), parse_hhmm(end)
    if a == b:
        raise LimitError("quiet hours must start and end at different times")
    return a, b


def parse_range(text: str | None) -> tuple[str | None, str | None]:
    """"23:00-07:00" (the CSV column) → ("23:00", "07:00"); empty → (None, None)."""
    if not (text or "").strip():
        return None, None
    m = _RANGE.match(text)
    if not m:
        raise LimitError(f"{text!r} is not a range like 23:00-07:00")
    return parse_quiet(m.group(1), m.group(2))


def parse_cap(text: str | int | None) -> int | None:
    """A subscriber's own daily cap: empty or 0 → None (no own cap); 1..CAP_MAX; LimitError otherwise."""
    value = str(text if text is not None else "").strip()
    if not value:
        return None
    if not value.isdigit() or int(value) > CAP_MAX:
        raise LimitError(f"{text!r} is not a number of alerts between 0 and {CAP_MAX}")
    return int(value) or None


@lru_cache(maxsize=1)
def zone_names() -> tuple[str, ...]:
    """Every IANA time zone name this system knows, sorted (the preferences page offers them)."""
    return tuple(sorted(available_timezones()))


def parse_zone(name: str | None) -> str | None:
    """A known IANA time zone name, or None for empty (the bot's zone); LimitError otherwise."""
    name = (name or "").strip()
    if not name:
        return None
    if len(name) > 64 or name not in zone_names():
        raise LimitError(f"unknown time zone {name!r}")
    return name


@lru_cache(maxsize=256)
def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _hm(text: str | None) -> time | None:
    return time(int(text[:2]), int(text[3:5])) if text else None


@dataclass(frozen=True)
class Limits:
    """One subscriber's limits, ready to apply."""

    cap: int  # 0 = no cap
    start: time | None  # quiet hours [start, end) local; None = none
    end: time | None
    tz: ZoneInfo

    @classmethod
    def of(cls, sub: Mapping, global_cap: int, default_tz: str) -> "Limits":
        """From a subscriber row (max_per_day, quiet_start, quiet_end, timezone) and the config."""
        own = sub.get("max_per_day") or 0
        cap = min(global_cap, own) if global_cap and own else global_cap or own
        start, end = _hm(sub.get("quiet_start")), _hm(sub.get("quiet_end"))
        if start is None or end is None or start == end:
            start = end = None
        return cls(cap, start, end, _zone(sub.get("timezone") or default_tz))

    def quiet(self, when: datetime) -> bool:
        """Whether `when` falls inside the quiet hours (wall-clock time in the subscriber's zone)."""
        if self.start is None:
            return False
        local = when.astimezone(self.tz).time()
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end  # across midnight, e.g. 23:00–07:00

    def _at(self, day: date, at: time) -> datetime:
        """That wall-clock time on that local day, as UTC (a time the clock skips counts after the jump)."""
        return datetime.combine(day, at, tzinfo=self.tz).astimezone(timezone.utc)

    def quiet_end(self, when: datetime) -> datetime:
        """The first end of the quiet hours after `when`."""
        day = when.astimezone(self.tz).date()
        for offset in range(3):
            end = self._at(day + timedelta(days=offset), self.end)
            if end > when:
                return end
        return when  # unreachable: an end time recurs daily

    def day_start(self, when: datetime) -> datetime:
        """Local midnight starting the subscriber's day at `when` (the cap counts from here)."""
        return self._at(when.astimezone(self.tz).date(), time(0))

    def next_day(self, when: datetime) -> datetime:
        """Local midnight starting the subscriber's next day."""
        return self._at(when.astimezone(self.tz).date() + timedelta(days=1), time(0))


@dataclass(frozen=True)
class Fold:
    """Why an alert is held back from a subscriber, and when a summary of it may go."""

    reason: str
    due: datetime


def gate(now: datetime, limits: Limits, sent_today: int) -> Fold | None:
    """None: send the alert now. A Fold: over the cap (`sent_today` alerts already today) or in quiet hours."""
    over = bool(limits.cap) and sent_today >= limits.cap
    quiet = limits.quiet(now)
    if not over and not quiet:
        return None
    due = limits.next_day(now) if over else now
    if limits.quiet(due):
        due = limits.quiet_end(due)
    if over:
        return Fold(f"folded: daily cap of {limits.cap} alert(s) reached", due)
    return Fold(f"folded: quiet hours {limits.start:%H:%M}–{limits.end:%H:%M} ({limits.tz.key})", due)
