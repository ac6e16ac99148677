"""`flashbot db upgrade` and `db current`: the schema's Alembic revision, and upgrading it."""
from __future__ import annotations

import typer

from bot.cli import err, out, state

db_app = typer.Typer(no_args_is_help=True, help="The database schema: which revision it is at, and upgrading it.")


def _engine(ctx: typer.Context):
    """An engine WITHOUT the automatic upgrade every other command does."""
    from bot.store.db import make_engine

    return make_engine(state(ctx).config.database_url)


def _fail(ctx: typer.Context, exc: Exception) -> None:
    from bot.store.db import display_url

    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    err.print(f"database: {display_url(state(ctx).config.bot.database)}: {reason[0] if reason else type(exc).__name__}",
              markup=False, highlight=False)
    raise typer.Exit(1)


@db_app.command("current")
def current(ctx: typer.Context) -> None:
    """Print the database's revision and this release's; exit 1 when the database is newer, 3 when it is behind."""
    from bot.store import migrate

    engine = _engine(ctx)
    try:
        st = migrate.status(engine)
    except Exception as exc:  # noqa: BLE001 - unreachable, refused, newer schema: one clear line
        _fail(ctx, exc)
    finally:
        engine.dispose()
    where = st["current"] or "empty (no schema yet)"
    out.print(f"database: {where}\nthis release: {st['head']} (head)", highlight=False)
    if st["pending"]:
        out.print(f"pending: {', '.join(st['pending'])} — run `flashbot db upgrade` (or start `flashbot run`)",
                  highlight=False)
        raise typer.Exit(3)
    out.print("up to date", highlight=False)


@db_app.command("upgrade")
def upgrade(ctx: typer.Context) -> None:
    """Create or upgrade the schema to this release's head (under a lock; never drops data)."""
    from bot.store import migrate

    engine = _engine(ctx)
    try:
        before, after = migrate.upgrade(engine)
    except Exception as exc:  # noqa: BLE001
        _fail(ctx, exc)
    finally:
        engine.dispose()
    if before == after:
        out.print(f"already at {after}; nothing to do", highlight=False)
    else:
        out.print(f"upgraded: {before or 'empty'} → {after}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add `db current` and `db upgrade` to the CLI."""
    app.add_typer(db_app, name="db")
