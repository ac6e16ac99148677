"""The operator's view (issue #15; numbered step 5 before Alembic): the poll history ring, the stats
buckets, when each delivery finished and whether it bounced, one index for the list filters. Past
sends, failures and subscriber events are counted into the buckets so the charts and the Prometheus
counters start from the database's history. Never edit this file once released: it keeps its own
copy of the tables and values it reads (later code may change them).
"""
from collections import Counter
from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

STREAM = {"yield_per": 5000}  # rows are read in chunks: the deliveries table may hold millions


def upgrade() -> None:
    """Add the columns, tables and index, then fill finished_at and the stats buckets."""
    op.add_column("sources", sa.Column("poll_count", sa.Integer(), nullable=False, server_default=sa.text("0")))
    op.add_column("deliveries", sa.Column("finished_at", sa.DateTime(), nullable=True))
    op.add_column("deliveries", sa.Column("bounced", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_table(
        "poll_history",
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("slot", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["source_id"], ["sources.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("source_id", "slot"),
    )
    stats = op.create_table(
        "stats",
        sa.Column("bucket", sa.DateTime(), nullable=False),
        sa.Column("metric", sa.String(length=16), nullable=False),
        sa.Column("label", sa.String(length=64), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("bucket", "metric", "label", "outcome"),
    )
    op.drop_index("ix_subscribers_status", table_name="subscribers", if_exists=True)
    op.create_index("ix_subscribers_filters", "subscribers", ["status", "mode", "language", "origin"], unique=False)
    d = sa.table("deliveries", sa.column("state"), sa.column("channel"), sa.column("sent_at", sa.DateTime()),
                 sa.column("created_at", sa.DateTime()), sa.column("finished_at", sa.DateTime()))
    op.execute(d.update().where(d.c.state == "sent").values(finished_at=d.c.sent_at))
    conn = op.get_bind()
    counts = _delivery_counts(conn, d) + _subscriber_counts(conn)
    if counts:
        conn.execute(stats.insert(), counts)


def _bucket(at: datetime) -> datetime:
    """The start of the quarter hour holding `at` (stored naive UTC)."""
    return at.replace(minute=at.minute - at.minute % 15, second=0, microsecond=0)


def _rows(counts: Counter, metric: str) -> list[dict]:
    return [{"bucket": b, "metric": metric, "label": label, "outcome": outcome, "n": n}
            for (b, label, outcome), n in counts.items()]


def _delivery_counts(conn, d) -> list[dict]:
    """Sends at their sent time, failures at their creation (their end was not recorded)."""
    counts: Counter = Counter()
    q = sa.select(d.c.state, d.c.channel, d.c.sent_at, d.c.created_at).where(d.c.state.in_(["sent", "failed"]))
    for state, channel, sent, created in conn.execute(q.execution_options(**STREAM)):
        at = sent if state == "sent" else created
        if at is not None:
            counts[(_bucket(at), channel, state)] += 1
    return _rows(counts, "delivery")


def _subscriber_counts(conn) -> list[dict]:
    """Sign-ups, confirmations and departures at the subscribers' dates."""
    s = sa.table("subscribers", sa.column("status"), sa.column("created_at", sa.DateTime()),
                 sa.column("confirmed_at", sa.DateTime()), sa.column("unsubscribed_at", sa.DateTime()))
    counts: Counter = Counter()
    q = sa.select(s.c.status, s.c.created_at, s.c.confirmed_at, s.c.unsubscribed_at)
    for status, created, confirmed, left in conn.execute(q.execution_options(**STREAM)):
        gone = left if status in ("unsubscribed", "deleted") else None
        for at, event in ((created, "signup"), (confirmed, "confirm"), (gone, "unsubscribe")):
            if at is not None:
                counts[(_bucket(at), "", event)] += 1
    return _rows(counts, "subscriber")


def downgrade() -> None:
    """Not supported: Flashbot never drops data."""
    raise NotImplementedError("Flashbot migrations only go forward")
