"""The newsroom desk (issue #14; numbered step 4 before Alembic): lead images, hand-written alerts
(their chosen channels and the desk_log of who sent or corrected them), subscribers' daily caps,
quiet hours and time zones. Never edit this file once released.
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the nullable columns (NULL = no image, every channel, no cap, no quiet hours) and desk_log."""
    op.add_column("items", sa.Column("image_url", sa.Text(), nullable=True))
    op.add_column("items", sa.Column("image_alt", sa.Text(), nullable=True))
    op.add_column("items", sa.Column("targets", sa.JSON(), nullable=True))
    op.add_column("subscribers", sa.Column("max_per_day", sa.Integer(), nullable=True))
    op.add_column("subscribers", sa.Column("quiet_start", sa.String(length=5), nullable=True))
    op.add_column("subscribers", sa.Column("quiet_end", sa.String(length=5), nullable=True))
    op.add_column("subscribers", sa.Column("timezone", sa.String(length=64), nullable=True))
    op.create_table(
        "desk_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("editor", sa.String(length=200), nullable=False),
        sa.Column("via", sa.String(length=16), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["item_id"], ["items.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_desk_log_item", "desk_log", ["item_id"], unique=False)


def downgrade() -> None:
    """Not supported: Flashbot never drops data."""
    raise NotImplementedError("Flashbot migrations only go forward")
