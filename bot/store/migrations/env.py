"""Alembic environment: bot.store.migrate hands over an open connection (it holds the upgrade lock)."""
from alembic import context

from bot.store import schema_cluster, schema_summary  # noqa: F401 - their tables join the metadata
from bot.store.schema import metadata


def run() -> None:
    """Run the pending revisions on the connection given in the Alembic config's attributes."""
    conn = context.config.attributes["connection"]
    # SQLite alters tables by copying them ("batch" mode); PostgreSQL alters them in place.
    context.configure(connection=conn, target_metadata=metadata, render_as_batch=conn.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


run()
