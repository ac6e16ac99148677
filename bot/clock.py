"""The current time, injectable: the service reads the system clock, tests pass a FixedClock.

Ingest entry points (poll_due, poll_all, refresh_source, …) and the scheduler take a `clock`
(None means SYSTEM) because time moves while they run; the store functions they call take the
`now` they were given, so one poll records one moment.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone


class Clock:
    """The system clock: timezone-aware UTC."""

    def now(self) -> datetime:
        """The current time."""
        return datetime.now(timezone.utc)


class FixedClock(Clock):
    """A clock that stands still until told to move (tests)."""

    def __init__(self, at: datetime):
        self.at = _aware(at)

    def now(self) -> datetime:
        """The time it was set to."""
        return self.at

    def set(self, at: datetime) -> datetime:
        """Jump to `at`."""
        self.at = _aware(at)
        return self.at

    def advance(self, seconds: float) -> datetime:
        """Move forward by `seconds` and return the new time."""
        self.at += timedelta(seconds=seconds)
        return self.at


def _aware(at: datetime) -> datetime:
    if at.tzinfo is None:
        raise ValueError("a clock needs a timezone-aware datetime")
    return at


SYSTEM = Clock()
