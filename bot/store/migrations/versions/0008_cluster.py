"""Cluster: the instances table (live processes, roles, heartbeats), the claim owner of a delivery
(`deliveries.claimed_by`, its lease is next_attempt_at) and the cluster-wide send rate (`throttle`)."""
import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the tables and the column; existing rows are untouched."""
    op.create_table(
        "instances",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("roles", sa.String(length=64), nullable=False),
        sa.Column("version", sa.String(length=32), nullable=False),
        sa.Column("leader", sa.Boolean(), nullable=False),
        sa.Column("sent", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "throttle",
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("next_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("channel"),
    )
    op.add_column("deliveries", sa.Column("claimed_by", sa.String(length=64), nullable=True))


def downgrade() -> None:
    """Not supported: Flashbot never drops data."""
    raise NotImplementedError("Flashbot migrations only go forward")
