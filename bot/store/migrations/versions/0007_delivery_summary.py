"""Millions on one node (issue #17; numbered step 7 before Alembic): the delivery log's summary tables
(delivery_groups, delivery_counts, subscriber_counts), filled from the rows there are, and the indexes
of the held alerts, the failures pages, summary mails and digest items.

The summary is filled by bot.store.summary_rebuild, the recount the store itself uses at run time
(too large to copy here). If a later revision changes a table that recount reads, it must still work
on a database at this revision: tests/test_migrations.py upgrades the databases of every release
before Alembic through all revisions, which catches it. Never edit this file once released.
"""
import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the tables and indexes, then count the delivery rows into the summary."""
    op.create_table(
        "delivery_groups",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subject", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=True),
        sa.Column("digest_id", sa.Integer(), nullable=True),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=True),
        sa.Column("last_row_at", sa.DateTime(), nullable=True),
        sa.Column("first_at", sa.DateTime(), nullable=True),
        sa.Column("last_at", sa.DateTime(), nullable=True),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("latency", sa.JSON(), nullable=True),
        sa.Column("recent", sa.JSON(), nullable=True),
        sa.Column("compacted_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["digest_id"], ["digests.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["item_id"], ["items.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("subject", "channel", "revision", name="uq_delivery_groups"),
    )
    op.create_index("ix_delivery_groups_item", "delivery_groups", ["item_id"], unique=False)
    op.create_index("ix_delivery_groups_digest", "delivery_groups", ["digest_id"], unique=False)
    op.create_index("ix_delivery_groups_created", "delivery_groups", ["created_at"], unique=False)
    op.create_table(
        "delivery_counts",
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), autoincrement=False, nullable=False),
        sa.Column("outcome", sa.String(length=16), autoincrement=False, nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("compacted", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["group_id"], ["delivery_groups.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("group_id", "state", "outcome"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "subscriber_counts",
        sa.Column("subscriber_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["subscriber_id"], ["subscribers.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("subscriber_id", "state"),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_items_alert_state", "items", ["alert_state", "detected_at"], unique=False)
    failed, summaries = sa.literal_column("state = 'failed'"), sa.literal_column("kind = 'summary'")
    op.create_index("ix_deliveries_failed", "deliveries", ["state", "id"], unique=False,
                    sqlite_where=failed, postgresql_where=failed)
    op.create_index("ix_deliveries_failed_item", "deliveries", ["item_id", "state", "id"], unique=False,
                    sqlite_where=failed, postgresql_where=failed)
    op.create_index("ix_deliveries_summary", "deliveries", ["id"], unique=False,
                    sqlite_where=summaries, postgresql_where=summaries)
    op.create_index("ix_digest_items_delivery", "digest_items", ["delivery_id"], unique=False)
    from bot.store import summary_rebuild

    summary_rebuild.rebuild(op.get_bind())


def downgrade() -> None:
    """Not supported: Flashbot never drops data."""
    raise NotImplementedError("Flashbot migrations only go forward")
