"""The throttle table: `[email] rate_limit` for the whole cluster, not per process.

Every worker reserves its next few send slots with one UPDATE that pushes the channel's `next_at`
forward (the generic cell rate algorithm, kept in one row): next_at = max(next_at, now) + n / rate.
The database's clock is the only clock, so workers on machines whose clocks disagree still share
one rate; each gets back when its first slot starts, relative to that clock. (The single SQLite
process uses the same table: one code path, and its reservations survive a restart.)
"""
from __future__ import annotations

from sqlalchemy import Engine, text

_RESERVE = {
    "postgresql": text(
        "INSERT INTO throttle (channel, next_at) VALUES (:channel, extract(epoch from clock_timestamp()) + :span) "
        "ON CONFLICT (channel) DO UPDATE SET next_at = greatest(throttle.next_at, extract(epoch from clock_timestamp())) + :span "
        "RETURNING next_at - :span AS start, extract(epoch from clock_timestamp()) AS now"),
    "sqlite": text(
        "INSERT INTO throttle (channel, next_at) VALUES (:channel, ((julianday('now') - 2440587.5) * 86400.0) + :span) "
        "ON CONFLICT (channel) DO UPDATE SET next_at = max(throttle.next_at, ((julianday('now') - 2440587.5) * 86400.0)) + :span "
        "RETURNING next_at - :span AS start, ((julianday('now') - 2440587.5) * 86400.0) AS now"),
}


def reserve(engine: Engine, channel: str, count: int, rate: float) -> float:
    """Reserve `count` consecutive send slots at `rate` per second for the whole cluster; returns
    how many seconds from now the first slot starts (0 when it is free now)."""
    with engine.begin() as conn:
        row = conn.execute(_RESERVE[conn.dialect.name], {"channel": channel, "span": count / rate}).one()
    return max(float(row.start) - float(row.now), 0.0)

