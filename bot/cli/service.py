"""`flashbot run [--once]`, `demo [--serve]`, `digest --preview|--send`, `check`."""
from __future__ import annotations

import asyncio
from pathlib import Path

import typer
from rich.table import Table

from bot.config import ConfigError
from bot.service import loop
from bot.cli import err, out, state
from bot.cli.progress import bar


def _logging(ctx: typer.Context, cfg=None) -> None:
    from bot import logs

    fmt = state(ctx).log_format
    try:
        logs.setup(fmt, secrets=logs.config_secrets(cfg) if cfg is not None else ())
    except ValueError as exc:
        err.print(str(exc), markup=False)
        raise typer.Exit(2) from None


def _bounces_line(res: dict | None) -> str:
    """'; bounces: processed 2, rejected 1 (IMAP: 3 fetched)' for `run --once` with [bounces]."""
    if res is None:
        return ""
    done = ", ".join(f"{k} {v}" for k, v in sorted(res.get("processed", {}).items())) or "nothing waiting"
    imap = res.get("imap")
    where = f" (IMAP: {imap['fetched']} fetched)" if imap else (f" (IMAP failed: {res['imap_error']})" if "imap_error" in res else "")
    return f"; bounces: {done}{where}"


def run(ctx: typer.Context, once: bool = typer.Option(False, "--once", help="Poll every source once, deliver what is due, exit (for cron).")) -> None:
    """Run the service: polling, delivery, digest, WebSub and web pages (SIGTERM/Ctrl-C stops it cleanly)."""
    st = state(ctx)
    cfg = st.config
    _logging(ctx, cfg)
    engine = st.engine
    if once:
        from bot.service.once import run_once

        try:
            with bar(ctx) as progress:
                result = run_once(cfg, engine, progress=progress)
        except ConfigError as exc:  # e.g. bot.templates names a missing folder
            err.print(str(exc), markup=False, highlight=False)
            raise typer.Exit(2) from None
        if result.get("skipped"):
            out.print("another flashbot instance is running; nothing done (it will deliver)")
            return
        sent = result["delivery"]
        out.print(f"polled {result['sources']} source(s) ({result['errors']} failed), {result['events']} new event(s), "
                  f"{result['queued']} delivery row(s) queued, {result['digest']} digest(s) queued; "
                  f"delivery: {', '.join(f'{k} {v}' for k, v in sent.items()) or 'nothing due'}"
                  + _bounces_line(result.get("bounces")), highlight=False)
        return
    from bot.service.daemon import StartupError, serve

    def ready(lines: list[str]) -> None:
        if st.log_format == "text":  # JSON logs already carry the summary as `startup` events
            out.print("[bold]Flashbot running[/bold] (SIGTERM or Ctrl-C stops it)", highlight=False)
            for line in lines:
                out.print(f"  {line}", highlight=False, soft_wrap=True, markup=False)

    try:
        code = loop.run(serve(cfg, engine, on_ready=ready))
    except StartupError as exc:
        err.print(f"cannot start: {exc}", markup=False, highlight=False)
        raise typer.Exit(1) from None
    except ConfigError as exc:
        err.print(str(exc), markup=False, highlight=False)
        raise typer.Exit(2) from None
    raise typer.Exit(code)


def demo(ctx: typer.Context, serve_: bool = typer.Option(False, "--serve", help="Keep running to browse the pages (Ctrl-C stops)."),
         workdir: Path = typer.Option(Path("demo-out"), "--dir", help="Work folder (config, database, mail).")) -> None:
    """The whole pipeline on 127.0.0.1: sample feeds, embedded SMTP and Telegram stand-in; no network, no account."""
    from bot.demo import story as demo_mod

    raise typer.Exit(demo_mod.main(workdir, serve=serve_, log_format=state(ctx).log_format))


def digest(
    ctx: typer.Context,
    preview: bool = typer.Option(False, "--preview", help="Render one subscriber's digest to a file (nothing is sent)."),
    send: bool = typer.Option(False, "--send", help="Queue and send the digest now."),
    email: str = typer.Option(None, "--email", help="Subscriber to preview (default: the first digest subscriber)."),
    out_file: Path = typer.Option(Path("digest-preview.html"), "--out", help="HTML file of the preview (text next to it)."),
) -> None:
    """Preview or send the daily newsletter."""
    if preview == send:
        err.print("choose one of --preview or --send")
        raise typer.Exit(2)
    st = state(ctx)
    cfg = st.config
    _logging(ctx, cfg)
    from bot import digest as digest_mod

    if send:
        from bot.service.runtime import open_runtime

        async def go(progress):
            rt = await open_runtime(cfg, st.engine, lock_wait=0, check=False)
            try:
                result = await asyncio.to_thread(digest_mod.send_now, st.engine, cfg, progress=progress)
                if rt is None:  # another instance holds the lock: its delivery engine sends the rows
                    return result, None
                return result, await rt.delivery.run_due(horizon=30, progress=progress)
            finally:
                if rt is not None:
                    await rt.close()
        with bar(ctx) as progress:
            result, sent = loop.run(go(progress))
        if result.get("skipped"):
            err.print(result["skipped"])
            raise typer.Exit(1)
        if sent is None:
            out.print(f"digest {result['run_key']}: {result['queued']} queued; the running flashbot instance "
                      "(or the next `run --once`) sends them",
                      highlight=False)
            return
        out.print(f"digest {result['run_key']}: {result['queued']} queued, {result['empty']} with nothing new; "
                  f"sent: {sent.get('sent', 0)}", highlight=False)
        return
    paths = digest_mod.write_preview(st.engine, cfg, email, out_file)
    if paths is None:
        err.print(f"no subscriber {email}", markup=False)
        raise typer.Exit(1)
    html, text, count = paths
    out.print(f"{count} item(s); HTML: {html}  text: {text}", highlight=False)


def check(ctx: typer.Context, offline: bool = typer.Option(False, "--offline", help="Config and database only, no network."),
          timeout: float = typer.Option(10, "--timeout", help="Seconds per network check.")) -> None:
    """Validate the config and test connectivity (SMTP EHLO, Telegram getMe, each source); a verdict per part."""
    from bot.service.checks import run_checks

    st = state(ctx)
    cfg = st.config
    _logging(ctx, cfg)
    verdicts = asyncio.run(run_checks(cfg, offline=offline, timeout=timeout))
    table = Table("part", "verdict", "detail")
    colors = {"ok": "green", "off": "dim", "warn": "yellow", "FAIL": "bold red"}
    for part, verdict, detail in verdicts:
        table.add_row(part, f"[{colors[verdict]}]{verdict}[/]", detail.replace("[", r"\["))
    out.print(table)
    failed = [p for p, v, _ in verdicts if v == "FAIL"]
    out.print(f"[bold red]{len(failed)} problem(s): {', '.join(failed)}[/]" if failed else "[green]all good[/]")
    raise typer.Exit(1 if failed else 0)


def register(app: typer.Typer) -> None:
    """Add the service commands to the CLI."""
    app.command()(run)
    app.command()(demo)
    app.command()(digest)
    app.command()(check)
