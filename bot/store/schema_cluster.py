"""The cluster's tables (several `flashbot run` processes on one PostgreSQL): the live instances and
the shared send rate. They share the schema's metadata: bot/store/migrate.py imports this module, so
a new database gets them with the others. A delivery's claim owner is `deliveries.claimed_by`
(bot/store/schema.py)."""
from __future__ import annotations

from sqlalchemy import Boolean, Column, Float, Integer, String, Table

from bot.store.schema import UTCDateTime, metadata

# One row per running `flashbot run` process (any machine): its roles and heartbeat. The live ones
# are listed by `flashbot stats` and the dashboard; `leader` marks the active scheduler.
instances = Table(
    "instances", metadata,
    Column("id", String(64), primary_key=True),  # host:pid:random, fresh at every start
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("roles", String(64), nullable=False),  # e.g. "scheduler,worker,web"
    Column("version", String(32), nullable=False, default=""),
    Column("leader", Boolean, nullable=False, default=False),
    Column("sent", Integer, nullable=False, default=0),  # deliveries this process recorded as sent
    Column("started_at", UTCDateTime()),
    Column("heartbeat_at", UTCDateTime()),
)

# Cluster-wide send rates: `next_at` (seconds since the epoch, the database's clock) is when the
# next message of that channel may go; workers reserve slots from it (bot/store/throttle.py).
throttle = Table(
    "throttle", metadata,
    Column("channel", String(32), primary_key=True),
    Column("next_at", Float, nullable=False, default=0.0),
)
