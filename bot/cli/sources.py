"""`flashbot sources …` and `flashbot poll`: manage feeds and run ingest by hand."""
from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import typer
from rich.table import Table

from bot.cli import err, out, state
from bot.cli.progress import bar
from bot.models import NO_PROGRESS, Progress

sources_app = typer.Typer(no_args_is_help=True, help="List, add, remove, pause, resume, import and export feed sources.")


def _ago(when: datetime | None, now: datetime, tz: ZoneInfo) -> str:
    """'10:42:05 (3 min ago)' / '(in 45 s)' in the configured time zone."""
    if when is None:
        return "—"
    secs = int((when - now).total_seconds())
    span = abs(secs)
    human = f"{span} s" if span < 120 else f"{span // 60} min" if span < 7200 else f"{span // 3600} h"
    rel = f"in {human}" if secs > 0 else f"{human} ago"
    fmt = "%H:%M:%S" if abs(secs) < 20 * 3600 else "%Y-%m-%d %H:%M"
    return f"{when.astimezone(tz).strftime(fmt)} ({rel})"


def _status(row) -> str:
    if row["paused"]:
        return "[red]paused[/red]"
    if row["consecutive_failures"]:
        return f"[yellow]failing ×{row['consecutive_failures']}[/yellow]"
    if row["last_success_at"] is None:
        return "new"
    return "[green]ok[/green]"


def _hints(row) -> str:
    ttl = f"ttl {row['ttl_seconds'] // 60} min" if row["ttl_seconds"] else ""
    age = f"max-age {row['max_age']} s" if row["max_age"] else ""
    used = " (slows polling)" if row["respect_ttl"] and (ttl or age) else ""
    return (" / ".join(x for x in (ttl, age) if x) or "—") + used


def _synced(ctx: typer.Context):
    """Config and engine, with the config's [[sources]] synced into the database."""
    from bot.store.sources import sync_sources

    st = state(ctx)
    sync_sources(st.engine, st.config)
    return st.config, st.engine


@sources_app.command("list")
def list_cmd(ctx: typer.Context) -> None:
    """Show every source: status, last success, last error, next poll, TTL / max-age."""
    from bot.store import utcnow
    from bot.store.sources import list_sources

    cfg, engine = _synced(ctx)
    now, tz = utcnow(), ZoneInfo(cfg.bot.timezone)
    table = Table(title="Sources", show_lines=False)
    for col in ("name", "status", "url", "every", "last success", "last error", "next poll", "ttl / max-age"):
        table.add_column(col, overflow="fold")
    for row in list_sources(engine):
        error = row["pause_reason"] if row["paused"] else row["last_error"]
        table.add_row(row["name"], _status(row), row["url"], f"{row['interval']} s", _ago(row["last_success_at"], now, tz),
                      error or "—", "—" if row["paused"] else _ago(row["next_poll_at"], now, tz) if row["next_poll_at"] else "now",
                      _hints(row), style=None)
    out.print(table)


@sources_app.command("add")
def add_cmd(ctx: typer.Context, name: str, url: str,
            interval: int = typer.Option(60, "--interval", min=1, help="Seconds between polls."),
            all_flash: bool = typer.Option(False, "--all-flash", help="Every item of this source is Flash Info."),
            respect_ttl: bool = typer.Option(False, "--respect-ttl", help="Let <ttl>/max-age slow polling."),
            alert_on_first_poll: bool = typer.Option(False, "--alert-on-first-poll", help="Alert on items present at the first poll."),
            category: str = typer.Option(None, "--category", help="Category given to every item.")) -> None:
    """Add a feed (http(s) URL or local file path)."""
    from bot.ingest.fetch import is_http
    from bot.store.sources import SourceError, add_source

    cfg, engine = _synced(ctx)
    if not is_http(url) and not url.startswith("file://") and not cfg.resolve(url).is_file():
        err.print(f"{url}: not an http(s) URL and no such file", markup=False)
        raise typer.Exit(1)
    try:
        add_source(engine, name, url, interval, all_flash=all_flash, respect_ttl=respect_ttl,
                   alert_on_first_poll=alert_on_first_poll, category=category)
    except SourceError as exc:
        err.print(str(exc), markup=False)
        raise typer.Exit(1) from None
    out.print(f"added {name}: {url} (every {interval} s); its first poll records existing items without alerting"
              if not alert_on_first_poll else f"added {name}: {url} (every {interval} s)", markup=False)


def _one(ctx: typer.Context, name: str):
    from bot.store.sources import SourceError, get_source

    cfg, engine = _synced(ctx)
    try:
        return cfg, engine, get_source(engine, name)
    except SourceError as exc:
        err.print(str(exc), markup=False)
        raise typer.Exit(1) from None


@sources_app.command("remove")
def remove_cmd(ctx: typer.Context, name: str) -> None:
    """Remove a source added from the CLI or OPML, with its items."""
    from bot.store.sources import remove_source

    _cfg, engine, row = _one(ctx, name)
    if row["origin"] == "config":
        err.print(f"{name} comes from config.toml: delete its [[sources]] table there, or use `flashbot sources pause {name}`",
                  markup=False)
        raise typer.Exit(1)
    remove_source(engine, name)
    out.print(f"removed {name}", markup=False)


@sources_app.command("pause")
def pause_cmd(ctx: typer.Context, name: str) -> None:
    """Stop polling a source until `sources resume`."""
    from bot.store.sources import set_paused

    _cfg, engine, _row = _one(ctx, name)
    set_paused(engine, name, True)
    out.print(f"paused {name}", markup=False)


@sources_app.command("resume")
def resume_cmd(ctx: typer.Context, name: str) -> None:
    """Resume a paused source (its failure count is reset; it is polled at once)."""
    from bot.store.sources import set_paused

    _cfg, engine, _row = _one(ctx, name)
    set_paused(engine, name, False)
    out.print(f"resumed {name}", markup=False)


@sources_app.command("import")
def import_cmd(ctx: typer.Context, file: Path = typer.Argument(..., help="OPML file."),
               interval: int = typer.Option(60, "--interval", min=1, help="Seconds between polls.")) -> None:
    """Add every feed of an OPML file (feeds already present, by URL, are skipped).

    The file is parsed as it is read and added in batches, so memory stays flat whatever its size."""
    from bot.cli.csvimport import Seen
    from bot.ingest.opml import OPMLError, iter_opml
    from bot.store.source_batches import add_many

    _cfg, engine = _synced(ctx)
    added, present, batch, seen = 0, 0, [], Seen()  # seen: the file's URLs, on disk (a URL listed twice counts once)

    def flush() -> None:
        nonlocal added, present
        earlier = seen.first_lines([s.url for s in batch])
        fresh = {}
        for s in batch:
            if s.url not in earlier and s.url not in fresh:
                fresh[s.url] = s
        seen.add([(url, 0) for url in fresh])
        a, p = add_many(engine, [(s.name, s.url, s.category) for s in fresh.values()], interval, "opml")
        added, present = added + a, present + p
        batch.clear()

    def feeds():
        with file.open("rb") as handle:
            yield from iter_opml(iter(lambda: handle.read(1 << 16), b""))

    try:
        total = sum(1 for _ in feeds())  # a first read checks the whole file: a broken one adds nothing
        with bar(ctx) as progress:
            progress.start("importing sources", total)
            for src in feeds():
                batch.append(src)
                if len(batch) >= 1000:
                    progress.advance(len(batch))
                    flush()
            progress.advance(len(batch))
            flush()
    except OSError as exc:
        err.print(f"{file}: cannot read: {exc.strerror}", markup=False)
        raise typer.Exit(1) from None
    except OPMLError as exc:
        err.print(f"{file}: {exc}", markup=False)
        raise typer.Exit(1) from None
    finally:
        seen.close()
    out.print(f"imported {added} source(s) from {file}, {present} already present", markup=False)


@sources_app.command("export")
def export_cmd(ctx: typer.Context, output: Path = typer.Option(None, "--output", "-o", help="File (default: stdout).")) -> None:
    """Write all sources as OPML 2.0."""
    from bot.ingest.opml import build_opml
    from bot.store.sources import list_sources

    _cfg, engine = _synced(ctx)
    data = build_opml(list_sources(engine))
    if output:
        output.write_bytes(data)
        err.print(f"wrote {output}", markup=False)
    else:
        typer.echo(data.decode("utf-8"), nl=False)


SHOWN = ("flash", "held", "update", "duplicate", "new")


def _report_table(reports) -> Table:
    """New items of a poll with a Flash column (baseline items are only counted)."""
    table = Table(title="New items")
    for col in ("source", "event", "Flash", "headline"):
        table.add_column(col, overflow="fold")
    for rep in reports:
        for ev in rep.events:
            if ev.kind in SHOWN:
                flash = "[bold red]FLASH[/bold red]" if ev.is_flash else ""
                table.add_row(rep.source, ev.kind, flash, ev.title)
    return table


def _print_reports(reports) -> None:
    for rep in reports:
        res = rep.result
        if rep.error:
            line = f"[red]✗ {rep.source}[/red]: {rep.error}"
        elif res.not_modified:
            line = f"· {rep.source}: not modified ({'HTTP 304' if res.status == 304 else 'file unchanged'})"
        else:
            base = sum(e.kind == "baseline" for e in rep.events)
            news = sum(e.kind in SHOWN for e in rep.events)
            extra = f", {base} recorded as baseline (first poll: no alert)" if base else ""
            line = f"✓ {rep.source}: {res.n_items} items, {news} new{extra}"
        out.print(line, highlight=False)
    if any(e.kind in SHOWN for r in reports for e in r.events):
        out.print(_report_table(reports))
    if any(e.kind in ("flash", "update") for r in reports for e in r.events):
        out.print("alerts queued: the running `flashbot run` sends them (or start it)", highlight=False)


async def _poll(cfg, engine, once: bool, progress: Progress = NO_PROGRESS):
    from bot import pipeline
    from bot.ingest.fetch import make_client

    async with make_client(cfg.fetch) as client:
        # The same pipeline as `flashbot run`: alerts are fanned out as soon as they are stored, and a
        # running service (another process) notices the new rows within a second.
        pipe = pipeline.Pipeline(cfg, engine, client)
        if once:
            return [report for report, _ in await pipeline.cycle(pipe, progress=progress)]
        while True:  # until Ctrl-C: poll what is due, report, wait a second
            reports = [report for report, _ in await pipeline.cycle(pipe, due_only=True)]
            if reports:
                _print_reports(reports)
            await asyncio.sleep(1)


def poll_cmd(ctx: typer.Context, once: bool = typer.Option(False, "--once", help="Poll every active source once and exit.")) -> None:
    """Poll sources, detect Flash Info, store items and queue their alerts (`flashbot run` sends them)."""
    cfg, engine = _synced(ctx)
    try:
        if once:
            with bar(ctx) as progress:
                reports = asyncio.run(_poll(cfg, engine, once, progress))
        else:
            reports = asyncio.run(_poll(cfg, engine, once))
    except KeyboardInterrupt:
        raise typer.Exit(0) from None
    if not reports:
        out.print("no active source to poll (see `flashbot sources list`)")
        return
    _print_reports(reports)
    if all(r.error for r in reports):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add `sources` and `poll` to the CLI."""
    app.add_typer(sources_app, name="sources")
    app.command("poll")(poll_cmd)
