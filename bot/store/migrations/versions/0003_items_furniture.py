"""Content fidelity (issue #18; numbered step 3 before Alembic): items.furniture, the blocks a feed
repeats across its items (bot.render.html.furniture). Items stored before it have none ('[]').
Never edit this file once released.
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the column, '[]' for existing rows."""
    op.add_column("items", sa.Column("furniture", sa.JSON(), nullable=False, server_default=sa.text("'[]'")))


def downgrade() -> None:
    """Not supported: Flashbot never drops data."""
    raise NotImplementedError("Flashbot migrations only go forward")
