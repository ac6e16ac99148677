"""${message}"""
import sqlalchemy as sa
from alembic import op
${imports if imports else ""}
revision = ${repr(up_revision)}
down_revision = ${repr(down_revision)}
branch_labels = ${repr(branch_labels)}
depends_on = ${repr(depends_on)}


def upgrade() -> None:
    """What this revision adds (never drop or rewrite data a running older release still reads)."""
    ${upgrades if upgrades else "pass"}


def downgrade() -> None:
    """Not supported: Flashbot never drops data."""
    raise NotImplementedError("Flashbot migrations only go forward")
