"""Web hardening (issue #13; numbered step 2 before Alembic): secret WebSub callback URLs, sign-up
requests (each keeps the choices only its own confirmation link activates), server-side admin sessions.

Subscriptions made at the old guessable callback URL (and any state a forged request could have set)
start over: the next renewal subscribes again at a secret URL. Never edit this file once released.
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the callback column and the two tables; reset push subscriptions."""
    op.add_column("sources", sa.Column("websub_callback", sa.String(length=64), nullable=True))
    sources = sa.table("sources", sa.column("hub_url"), sa.column("websub_state"), sa.column("websub_lease_until"))
    op.execute(sources.update().where(sources.c.hub_url.is_not(None))
               .values(websub_state=None, websub_lease_until=None))
    op.create_table(
        "signup_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subscriber_id", sa.Integer(), nullable=False),
        sa.Column("nonce", sa.String(length=32), nullable=False),
        sa.Column("mode", sa.String(length=8), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("topics", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("used_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["subscriber_id"], ["subscribers.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("subscriber_id", "nonce", name="uq_signup_requests_nonce"),
    )
    op.create_table(
        "admin_sessions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    """Not supported: Flashbot never drops data."""
    raise NotImplementedError("Flashbot migrations only go forward")
