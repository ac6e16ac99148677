"""The delivery summary's tables (bot/store/summary.py): counts kept beside the delivery log.

Written in the same transaction as every change of the rows they count (schema step 7), so that no
page counts the log and compaction, which deletes finished rows, changes no number. They share the
schema's metadata: importing bot.store (bot/store/db.py does) creates them with the others.
"""
from __future__ import annotations

from sqlalchemy import JSON, Column, ForeignKey, Index, Integer, String, Table, UniqueConstraint

from bot.store.schema import UTCDateTime, metadata


def ts(name: str, **kw) -> Column:
    """A UTC timestamp column."""
    return Column(name, UTCDateTime(), **kw)


# One group per alert (or correction, or digest run, or all summary mails) and channel: when it was
# queued, its sends and latency histogram, its latest finish and the finishes of its last minute.
delivery_groups = Table(
    "delivery_groups", metadata,
    Column("id", Integer, primary_key=True),
    Column("subject", Integer, nullable=False),  # the item id, minus the digest id, or 0 (summary mails)
    Column("item_id", Integer, ForeignKey("items.id", ondelete="CASCADE")),
    Column("digest_id", Integer, ForeignKey("digests.id", ondelete="CASCADE")),
    Column("channel", String(32), nullable=False),
    Column("revision", Integer, nullable=False, default=0),
    ts("created_at"),  # its first row was queued
    ts("last_row_at"),  # its latest row was queued
    ts("first_at"),  # first send
    ts("last_at"),  # latest send
    ts("finished_at"),  # latest row to become sent, failed or cancelled
    Column("latency", JSON),  # {"<bucket upper bound in s>": sends}: queued → sent
    Column("recent", JSON),  # {"<unix second>": rows finished}: the last RECENT_SECONDS of finishes
    ts("compacted_at"),  # when compaction last swept its rows
    UniqueConstraint("subject", "channel", "revision", name="uq_delivery_groups"),
    Index("ix_delivery_groups_item", "item_id"),
    Index("ix_delivery_groups_digest", "digest_id"),
    Index("ix_delivery_groups_created", "created_at"),
)

# How many rows of a group are in each state and outcome ("" none; "bounced": the address was
# refused), `compacted` of them with no row left.
delivery_counts = Table(
    "delivery_counts", metadata,
    Column("group_id", Integer, ForeignKey("delivery_groups.id", ondelete="CASCADE"), primary_key=True),
    Column("state", String(16), primary_key=True, autoincrement=False),
    Column("outcome", String(16), primary_key=True, autoincrement=False, default=""),
    Column("n", Integer, nullable=False, default=0),  # rows in this state, compacted ones included
    Column("compacted", Integer, nullable=False, default=0),  # of which compacted: counted, no row left
    sqlite_with_rowid=False,
)

# Per subscriber and state: compacted deliveries (their rows are gone; `subscribers show` adds them).
subscriber_counts = Table(
    "subscriber_counts", metadata,
    Column("subscriber_id", Integer, ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True,
           autoincrement=False),
    Column("state", String(16), primary_key=True),
    Column("n", Integer, nullable=False, default=0),
    sqlite_with_rowid=False,
)
