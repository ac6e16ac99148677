"""`flashbot bounces list|show ID|reprocess`: what came back after the hand-off, and processing it again."""
from __future__ import annotations

from email.parser import BytesHeaderParser

import typer

from bot.cli import err, out, state
from bot.models import BounceKind, InboundState
from bot.store import bounces as inbox

bounce_app = typer.Typer(no_args_is_help=True, help="Bounces, complaints and mailto unsubscribes received.")


def _needs_bounces(st) -> None:
    if st.config.bounces is None:
        err.print("[bounces] is not configured: no return path, nothing is received (see docs/bounces.md)", markup=False)
        raise typer.Exit(2)


@bounce_app.command("list")
def list_cmd(ctx: typer.Context,
             state_: str = typer.Option(None, "--state", help="new, processed, unparsed, ignored or rejected."),
             kind: str = typer.Option(None, "--kind", help="hard, soft, complaint, autoreply, unsubscribe or other."),
             limit: int = typer.Option(50, "--limit", min=1, max=1000)) -> None:
    """The latest received bounce mails and events, newest first."""
    for value, allowed, name in ((state_, InboundState, "--state"), (kind, BounceKind, "--kind")):
        if value is not None and value not in {e.value for e in allowed}:
            err.print(f"{name} must be one of: {', '.join(e.value for e in allowed)}", markup=False)
            raise typer.Exit(2)
    rows = inbox.listing(state(ctx).engine, [state_] if state_ else None, [kind] if kind else None, limit)
    for r in rows:
        line = (f"#{r['id']} {r['received_at']:%Y-%m-%d %H:%M} {r['source']} {r['state']} {r['kind'] or '-'} "
                f"{r['status'] or '-'} delivery {r['delivery_id'] or '-'} {r['email'] or r['recipient'] or '-'}: {r['note'] or ''}")
        out.print(line, markup=False, highlight=False, soft_wrap=True)
    out.print(f"{len(rows)} shown")


@bounce_app.command("show")
def show(ctx: typer.Context, row_id: int = typer.Argument(..., metavar="ID")) -> None:
    """Everything about one received mail or event: what it was, what it did, its headers."""
    row = inbox.get(state(ctx).engine, row_id)
    if row is None:
        err.print(f"bounce {row_id}: unknown", markup=False)
        raise typer.Exit(1)
    for key in ("id", "source", "received_at", "state", "kind", "status", "diagnostic", "delivery_id", "subscriber_id",
                "email", "recipient", "envelope_to", "envelope_from", "size", "attempts", "processed_at", "note"):
        value = row.get(key)
        out.print(f"{key:>14}: {'' if value is None else value}", markup=False, highlight=False, soft_wrap=True)
    raw = row["raw"] or b""
    if row["source"] in ("smtp", "imap"):
        headers = BytesHeaderParser().parsebytes(raw[:65536])
        for name in ("From", "To", "Subject", "Date", "Message-ID", "Auto-Submitted", "Content-Type"):
            if headers.get(name):
                out.print(f"{name:>14}: {headers.get(name)}", markup=False, highlight=False, soft_wrap=True)
    else:
        out.print(raw[:4000].decode("utf-8", "replace"), markup=False, highlight=False, soft_wrap=True)


@bounce_app.command("reprocess")
def reprocess(ctx: typer.Context, ids: list[int] = typer.Argument(None, metavar="[ID]..."),
              unparsed: bool = typer.Option(False, "--unparsed", help="Every unparsed mail.")) -> None:
    """Process mails again (unparsed, rejected or ignored ones; a processed mail's effect is never applied twice)."""
    st = state(ctx)
    _needs_bounces(st)
    if not ids and not unparsed:
        err.print("give bounce ids or --unparsed", markup=False)
        raise typer.Exit(2)
    from bot.bounces.process import Processor

    n = inbox.requeue(st.engine, list(ids) if ids else None, unparsed)
    counts = Processor(st.config, st.engine).run_pending()
    out.print(f"{n} requeued; " + (", ".join(f"{v} {k}" for k, v in sorted(counts.items())) or "nothing processed"),
              markup=False, highlight=False)


def register(app: typer.Typer) -> None:
    """Add `bounces ...` to the CLI."""
    app.add_typer(bounce_app, name="bounces")
