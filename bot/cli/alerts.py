"""`flashbot held`, `approve ITEM`, `cancel ITEM`: the editorial hold from the command line (same pipeline as the dashboard)."""
from __future__ import annotations

from zoneinfo import ZoneInfo

import typer
from rich.markup import escape
from rich.table import Table

from bot.cli import err, out, state


def held(ctx: typer.Context) -> None:
    """Alerts waiting for an editor's approval (`[flash] require_approval`)."""
    from bot.store import dashboard

    st = state(ctx)
    tz = ZoneInfo(st.config.bot.timezone)
    rows = dashboard.held_items(st.engine)
    if not rows:
        out.print("no alert waits for approval")
        return
    table = Table("item", "source", "detected", "title", title="Held alerts")
    for r in rows:
        when = r["detected_at"].astimezone(tz).strftime("%Y-%m-%d %H:%M:%S") if r["detected_at"] else "—"
        table.add_row(str(r["id"]), escape(r["source_name"]), when, escape(r["title"] or ""))
    out.print(table)


def approve(ctx: typer.Context, item: int = typer.Argument(..., help="Item id (see `flashbot held`).")) -> None:
    """Approve a held alert: its deliveries are queued now and a running `flashbot run` sends them at once."""
    from bot import pipeline
    from bot.service import loop

    st = state(ctx)
    queued = loop.run(pipeline.approve(pipeline.Pipeline(st.config, st.engine), item))
    if queued is None:
        err.print(f"item {item} is not waiting for approval", markup=False)
        raise typer.Exit(1)
    out.print(f"item {item} approved: {queued} delivery row(s) queued", highlight=False)


def cancel(ctx: typer.Context, item: int = typer.Argument(..., help="Item id (held or being sent).")) -> None:
    """Cancel an alert: held or not, its unsent deliveries are cancelled (sent ones stay sent)."""
    from bot.store import outbox

    st = state(ctx)
    n = outbox.cancel_item(st.engine, item)
    out.print(f"item {item} cancelled: {n} unsent delivery row(s) cancelled", highlight=False)


def register(app: typer.Typer) -> None:
    """Add `held`, `approve` and `cancel` to the CLI."""
    app.command()(held)
    app.command()(approve)
    app.command()(cancel)
