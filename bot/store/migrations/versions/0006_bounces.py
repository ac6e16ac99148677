"""Bounces after the hand-off (issue #12; numbered step 6 before Alembic): each delivery's outcome
(bounced | soft-bounced | complained) with its time and diagnostic, the reason a subscriber's status
changed, and the bounce_mails table (every bounce mail or provider event, stored as received before
it is processed). Existing rows get NULLs: nothing was known after the hand-off. Never edit this
file once released.
"""
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the nullable columns and the table."""
    op.add_column("deliveries", sa.Column("outcome", sa.String(length=16), nullable=True))
    op.add_column("deliveries", sa.Column("outcome_at", sa.DateTime(), nullable=True))
    op.add_column("deliveries", sa.Column("diagnostic", sa.Text(), nullable=True))
    op.add_column("subscribers", sa.Column("status_reason", sa.Text(), nullable=True))
    op.create_table(
        "bounce_mails",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("dedupe", sa.String(length=64), nullable=False),
        sa.Column("envelope_to", sa.Text(), nullable=True),
        sa.Column("envelope_from", sa.Text(), nullable=True),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=True),
        sa.Column("delivery_id", sa.Integer(), nullable=True),
        sa.Column("subscriber_id", sa.Integer(), nullable=True),
        sa.Column("recipient", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=True),
        sa.Column("diagnostic", sa.Text(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("processed_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["delivery_id"], ["deliveries.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["subscriber_id"], ["subscribers.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("dedupe"),
    )
    op.create_index("ix_bounce_mails_state", "bounce_mails", ["state", "id"], unique=False)
    op.create_index("ix_bounce_mails_received", "bounce_mails", ["received_at"], unique=False)


def downgrade() -> None:
    """Not supported: Flashbot never drops data."""
    raise NotImplementedError("Flashbot migrations only go forward")
