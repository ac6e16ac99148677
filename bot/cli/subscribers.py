"""`flashbot subscribers add|remove|list|show|import|export|reactivate` and `flashbot stats`."""
from __future__ import annotations

import csv
import json
import sys
from datetime import timedelta
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from bot.store import bounces as bounce_store
from bot.store import dashboard, listing, utcnow
from bot.store import subscribers as subs
from bot.cli import err, out, state
from bot.cli.progress import bar

sub_app = typer.Typer(no_args_is_help=True, help="Manage email subscribers.")
BATCH = 5000
EXPORT_FIELDS = ["email", "status", "mode", "language", "topics", "origin", "created_at", "confirmed_at",
                 "max_per_day", "quiet_hours", "timezone"]


def _address(raw: str) -> str:
    try:
        return subs.normalize_email(raw)
    except subs.InvalidAddress:
        return raw.strip().lower()


def _check_choice(value: str | None, allowed: tuple[str, ...], name: str) -> None:
    if value is not None and value not in allowed:
        err.print(f"{name} must be one of: {', '.join(allowed)}", markup=False, soft_wrap=True)
        raise typer.Exit(2)


@sub_app.command("add")
def add(ctx: typer.Context, emails: list[str] = typer.Argument(..., help="Addresses to add (active at once)."),
        mode: str = typer.Option("both", "--mode", help="instant, digest or both."),
        language: str = typer.Option(None, "--language", help="A language with a catalog: ar, de, en, fr… (default: [bot] language)."),
        topics: str = typer.Option("", "--topics", help="Topics separated by ; or |.")) -> None:
    """Add addresses as active subscribers (the operator vouches for their consent)."""
    _check_choice(mode, subs.MODES, "--mode")
    _check_choice(language, subs.LANGUAGES, "--language")
    st = state(ctx)
    valid, bad = [], 0
    for raw in emails:
        try:
            valid.append(subs.normalize_email(raw))
        except subs.InvalidAddress as exc:
            err.print(f"{raw}: rejected: {exc}", markup=False, highlight=False, soft_wrap=True)
            bad += 1
    result = subs.add(st.engine, valid, mode, language or st.config.bot.language, subs.normalize_topics(topics))
    for email, outcome in result.items():
        out.print(f"{email}: {'added' if outcome == 'added' else 'already known (unchanged)'}", markup=False, highlight=False, soft_wrap=True)
    if bad:
        raise typer.Exit(1)


@sub_app.command("remove")
def remove(ctx: typer.Context, emails: list[str] = typer.Argument(...),
           erase: bool = typer.Option(False, "--erase", help="Erase the personal data instead of unsubscribing.")) -> None:
    """Unsubscribe addresses (queued deliveries are cancelled), or erase them with --erase."""
    engine, missing = state(ctx).engine, 0
    for raw in emails:
        result = subs.remove(engine, _address(raw), erase_data=erase)
        if result is None:
            err.print(f"{raw}: unknown address", markup=False, highlight=False, soft_wrap=True)
            missing += 1
        else:
            out.print(f"{raw}: {'already unsubscribed' if result == 'already' else result}", markup=False, highlight=False, soft_wrap=True)
    if missing:
        raise typer.Exit(1)


@sub_app.command("reactivate")
def reactivate(ctx: typer.Context, email: str) -> None:
    """Make an unsubscribed, suppressed or pending address active again."""
    result = subs.reactivate(state(ctx).engine, _address(email))
    if result is None:
        err.print(f"{email}: unknown address", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    out.print(f"{email}: {'already active' if result == 'already' else 'reactivated'}", markup=False, highlight=False, soft_wrap=True)


@sub_app.command("list")
def list_cmd(ctx: typer.Context, status: str = typer.Option(None, "--status"), mode: str = typer.Option(None, "--mode"),
             search: str = typer.Option(None, "--search", "-s", help="Part of the address."),
             limit: int = typer.Option(50, "--limit", min=1, max=1000), page: int = typer.Option(1, "--page", min=1)) -> None:
    """List subscribers, newest first, with filters."""
    _check_choice(status, subs.STATUSES, "--status")
    _check_choice(mode, subs.MODES, "--mode")
    result = listing.subscriber_page(state(ctx).engine, status, mode, None, None, search, limit, offset=(page - 1) * limit)
    rows, total = result.rows, result.total
    table = Table("id", "status", "mode", "lang", "topics", "origin", "created")
    table.add_column("email", no_wrap=True, overflow="fold")
    for r in rows:
        table.add_row(str(r["id"]), r["status"], r["mode"], r["language"], escape("; ".join(r["topics"])), r["origin"],
                      r["created_at"].strftime("%Y-%m-%d") if r["created_at"] else "", escape(r["email"] or "(erased)"))
    out.print(table)
    counted = f"more than {total}" if result.capped else str(total)
    pages = "" if result.capped else f" of {max(1, -(-total // limit))}"
    out.print(f"{counted} matching, page {page}{pages}")


@sub_app.command("show")
def show(ctx: typer.Context, email: str) -> None:
    """Everything about one subscriber, with delivery counts."""
    engine = state(ctx).engine
    row = subs.by_email(engine, _address(email))
    if row is None:
        err.print(f"{email}: unknown address", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    for key in ("id", "email", "status", "status_reason", "mode", "language", "topics", "origin", "bounces", "last_error",
                "created_at", "confirmed_at", "unsubscribed_at", "last_digest_at", "max_per_day", "quiet_start",
                "quiet_end", "timezone"):
        value = row[key]
        out.print(f"{key:>16}: {'; '.join(value) if isinstance(value, list) else ('' if value is None else value)}",
                  markup=False, highlight=False, soft_wrap=True)
    last = bounce_store.last_for_subscriber(engine, row["id"])
    if last:
        what = " ".join(str(v) for v in (last["kind"], last["status"], last["diagnostic"]) if v)
        out.print(f"{'last bounce':>16}: {last['received_at']:%Y-%m-%d %H:%M} {what} (bounce {last['id']}, delivery {last['delivery_id']})",
                  markup=False, highlight=False, soft_wrap=True)
    counts = subs.delivery_counts(engine, row["id"])
    out.print(f"{'deliveries':>16}: " + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"), markup=False, soft_wrap=True)


@sub_app.command("import")
def import_cmd(ctx: typer.Context, file: Path = typer.Argument(..., help="CSV with an email column (optional language, mode, topics, max_per_day, quiet_hours, timezone).")) -> None:
    """Import a CSV: validate, dedupe, insert in batches; known addresses are left untouched.

    The file is streamed (bot/cli/csvimport.py): memory stays flat whatever its size."""
    from bot.cli import csvimport

    st = state(ctx)
    try:
        total = csvimport.check(file)
    except (OSError, csvimport.BadFile) as exc:
        err.print(f"{file}: {exc}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    inserted = valid = 0
    rejects = csvimport.Rejects()
    try:
        with bar(ctx) as progress:
            progress.start("importing", total)
            for records, read in csvimport.batches(file, st.config.bot.language, rejects, BATCH):
                inserted += subs.insert_many(st.engine, records)
                valid += len(records)
                progress.advance(read)
        for line, reason in rejects:
            err.print(f"{file}:{line}: rejected: {reason}", markup=False, highlight=False, soft_wrap=True)
    finally:
        rejects.close()
    out.print(f"{inserted} added, {valid - inserted} already known, {rejects.count} rejected", markup=False, soft_wrap=True)


@sub_app.command("export")
def export_cmd(ctx: typer.Context, file: Path = typer.Argument(None, help="Output CSV (default: standard output)."),
               status: str = typer.Option(None, "--status", help="Only this status.")) -> None:
    """Export subscribers (with an address) as CSV, in the format `import` reads."""
    from bot.store.subscriber_batches import export_rows

    _check_choice(status, subs.STATUSES, "--status")
    engine = state(ctx).engine
    handle = file.open("w", newline="", encoding="utf-8") if file else sys.stdout
    n = 0
    try:
        writer = csv.writer(handle)
        writer.writerow(EXPORT_FIELDS)
        topics: dict[str, str] = {}  # topic lists repeat: each distinct JSON text is decoded once
        with bar(ctx) as progress:
            progress.start("exporting", listing.count_subscribers(engine, status))
            for email, st_, mode, lang, raw, origin, created, confirmed, cap, start, end, zone in export_rows(engine, status):
                if (joined := topics.get(raw)) is None:
                    joined = ";".join(json.loads(raw or "[]") or [])
                    if len(topics) < 4096:
                        topics[raw] = joined
                writer.writerow([email, st_, mode, lang, joined, origin, created.isoformat() if created else "",
                                 confirmed.isoformat() if confirmed else "", cap or "",
                                 f"{start}-{end}" if start and end else "", zone or ""])
                n += 1
                if n % 1000 == 0:
                    progress.advance(1000)
            progress.advance(n % 1000)
    finally:
        if file:
            handle.close()
    if file:
        out.print(f"{n} subscribers written to {file}", markup=False, highlight=False, soft_wrap=True)


def stats(ctx: typer.Context, hours: float = typer.Option(24, "--hours", min=0.01, help="Window for delivery counts.")) -> None:
    """Subscribers by status and mode, deliveries by channel and state, failing sources."""
    engine = state(ctx).engine
    counts = subs.counts(engine)
    table = Table("status", *subs.MODES, "total", title="Subscribers")
    for status in subs.STATUSES:
        row = counts.get(status, {})
        table.add_row(status, *(str(row.get(m, 0)) for m in subs.MODES), str(sum(row.values())))
    out.print(table)
    deliveries = dashboard.delivery_counts(engine, utcnow() - timedelta(hours=hours))
    states = sorted({s for v in deliveries.values() for s in v})
    dt = Table("channel", *states, title=f"Deliveries, last {hours:g} h")
    for channel, row in sorted(deliveries.items()):
        dt.add_row(channel, *(str(row.get(s, 0)) for s in states))
    out.print(dt if deliveries else f"Deliveries, last {hours:g} h: none")
    _instances(engine)
    failing = dashboard.failing_sources(engine)
    if not failing:
        out.print("Sources: all healthy")
        return
    st = Table("source", "state", "failures", "last error", title="Failing sources")
    for s in failing:
        st.add_row(escape(s["name"]), "paused" if s["paused"] else "failing", str(s["consecutive_failures"]),
                   escape(s["last_error"] or ""))
    out.print(st)


def _instances(engine) -> None:
    """The live `flashbot run` processes: roles, which one schedules, heartbeat, sent."""
    from bot.store import instances

    now = utcnow()
    rows = instances.live(engine, now)
    if not rows:
        out.print("Instances: none running (no heartbeat in the last 30 s)")
        return
    it = Table("instance", "roles", "started", "heartbeat", "sent", title="Instances")
    for r in rows:
        roles = r["roles"] + (" (active scheduler)" if r["leader"] else "")
        age = max((now - r["heartbeat_at"]).total_seconds(), 0)
        it.add_row(escape(r["id"]), roles, r["started_at"].strftime("%Y-%m-%d %H:%M:%S UTC"), f"{age:.0f} s ago", str(r["sent"]))
    out.print(it)


def register(app: typer.Typer) -> None:
    """Add `subscribers ...` and `stats` to the CLI."""
    app.add_typer(sub_app, name="subscribers")
    app.command("stats")(stats)
