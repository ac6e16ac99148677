"""`flashbot deliveries` (what happened to every message), `flashbot compact` (the log's housekeeping now)
and `flashbot preview ITEM` (rendered output)."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from zoneinfo import ZoneInfo

import typer
from rich.markup import escape
from rich.table import Table

from bot.cli import err, out, state
from bot.cli.progress import bar
from bot.models import DeliveryState

STATES = [s.value for s in DeliveryState]
RETRY_BATCH = 1000


def _when(value, tz: ZoneInfo) -> str:
    return value.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S") if value else "—"


def deliveries(
    ctx: typer.Context,
    item: int = typer.Option(None, "--item", help="Only this item."),
    limit: int = typer.Option(20, "--limit", min=1, help="Failures shown."),
    retry: list[int] = typer.Option(None, "--retry", help="Requeue this failed delivery id now (repeatable)."),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Requeue every failed delivery (of --item, if given)."),
    resume: str = typer.Option(None, "--resume", help="Resume a paused channel (email or telegram)."),
) -> None:
    """Counts per item × channel × state, paused channels, then the failures with their errors."""
    from bot.store import channels as channel_store
    from bot.store import delivery_log

    st = state(ctx)
    cfg, engine = st.config, st.engine
    tz = ZoneInfo(cfg.bot.timezone)
    if resume:
        resumed = channel_store.resume_channel(engine, resume)
        out.print(f"channel {resume} resumed" if resumed else f"channel {resume} was not paused", highlight=False)
    if retry or retry_failed:
        asked, queued = _retry(ctx, engine, retry or [], retry_failed, item)
        out.print(f"{queued} of {asked} deliveries queued again", highlight=False)
    _counts_table(delivery_log.counts(engine, item_id=item), delivery_log.outcomes(engine, item_id=item))
    for ch in channel_store.channel_states(engine):
        if ch["paused"]:
            out.print(f"[red]channel {ch['channel']} is PAUSED[/red] since {_when(ch['updated_at'], tz)}: "
                      f"{ch['last_error'] or ''} (resume: flashbot deliveries --resume {ch['channel']})", highlight=False)
    off = cfg.channels_off()
    if off:
        out.print(f"off (no config section): {', '.join(off)}", highlight=False)
    rows = delivery_log.failures(engine, limit=limit, item_id=item)
    if not rows:
        out.print("no failures")
        return
    table = Table(title="Failures and retries (newest first)")
    for col in ("id", "item", "channel", "recipient", "state", "tries", "next attempt", "error"):
        table.add_column(col, overflow="fold")
    for r in rows:
        target = f"#{r['item_id']}" if r["item_id"] is not None else f"digest {r['digest_id']}"
        table.add_row(str(r["id"]), target, r["channel"], r["recipient"], r["state"], str(r["attempts"]),
                      _when(r["next_attempt_at"], tz) if r["state"] == "retry" else "—", r["last_error"] or "")
    out.print(table)


def _retry(ctx: typer.Context, engine, ids: list[int], failed: bool, item: int | None) -> tuple[int, int]:
    """Requeue the given ids and, with `failed`, every failed row (of `item`), in batches of 1,000 with a
    progress bar; returns (rows asked for, rows queued). Rows of people who left are never revived."""
    from bot.store import outbox, reports

    batches = [ids[i:i + RETRY_BATCH] for i in range(0, len(ids), RETRY_BATCH)]
    if failed:
        batches += list(reports.failed_ids(engine, item, RETRY_BATCH))
    asked = queued = 0
    with bar(ctx) as progress:
        progress.start("requeueing", sum(len(b) for b in batches))
        for batch in batches:
            queued += outbox.retry_deliveries(engine, batch)
            asked += len(batch)
            progress.advance(len(batch))
    return asked, queued


AFTER = ["refused", "bounced", "soft-bounced", "complained"]  # refused at sending; the rest came back later


def _counts_table(rows: list[dict], after: dict[tuple, dict[str, int]]) -> None:
    if not rows:
        out.print("no deliveries yet")
        return
    grouped: dict[tuple, dict[str, int]] = defaultdict(dict)
    titles: dict[tuple, str] = {}
    for r in rows:
        key = (r["item_id"], r["digest_id"], r["channel"])
        grouped[key][r["state"]] = r["count"]
        titles[key] = r["title"] or (f"digest {r['digest_id']}" if r["digest_id"] else "")
    table = Table(title="Deliveries per item and channel")
    shown = [o for o in AFTER if any(v.get(o) for v in after.values())]  # only what happened: the table stays narrow
    for col in ["item", "title", "channel", *STATES, *shown]:
        table.add_column(col, justify="right" if col in STATES + shown else "left", overflow="fold")
    for key, counts in grouped.items():
        item_id, digest_id, channel = key
        label = f"#{item_id}" if item_id is not None else f"digest {digest_id}" if digest_id else "summary mails"
        back = after.get(key, {})
        table.add_row(label, titles[key][:60], channel, *(str(counts.get(s, 0) or "") for s in STATES),
                      *(str(back.get(o, 0) or "") for o in shown))
    out.print(table)


def preview(
    ctx: typer.Context,
    item: int = typer.Argument(..., help="Item id (see the dashboard or `flashbot deliveries`)."),
    folder: Path = typer.Option(Path("preview"), "--out", help="Folder to write the files to."),
    language: str = typer.Option(None, "--language", help="A language with a catalog: ar, de, en, fr… (default: bot.language)."),
    update: bool = typer.Option(False, "--update", help="The correction variant instead of the alert."),
    explain: bool = typer.Option(False, "--explain", help="Also list what was removed from the article as page chrome, and why."),
) -> None:
    """Write the alert email (HTML, text, full .eml) and the Telegram post to files and print their paths."""
    from bot import tokens
    from bot.delivery.compose import Composer
    from bot.render.renderer import Renderer
    from bot.store import outbox

    st = state(ctx)
    cfg, engine = st.config, st.engine
    from bot.i18n import available

    lang = language or cfg.bot.language
    if lang not in available():
        err.print(f"--language: expected one of {', '.join(available())}, got {lang!r}", markup=False)
        raise typer.Exit(2)
    with engine.connect() as conn:
        row = outbox.load_item(conn, item)
    if row is None:
        err.print(f"no item {item}", markup=False)
        raise typer.Exit(1)
    renderer = Renderer(cfg)
    composer = Composer(cfg, renderer, tokens.secret_key(engine, cfg.web.secret_key))
    kind = "update" if update else "alert"
    fake = {"id": 0, "item_id": item, "digest_id": None, "channel": "email", "recipient": "0", "subscriber_id": 0,
            "revision": row["revision"] if update else 0, "kind": kind,
            "subscriber": {"id": 0, "email": "preview@example.invalid", "status": "active", "language": lang, "token_nonce": "preview"}}
    email = composer.email(fake, row)
    links = {p: tokens.link(cfg.bot.public_url, p, "PREVIEW") for p in (tokens.UNSUBSCRIBE, tokens.PREFERENCES)}
    rendered = renderer.email_alert(row, lang, links, update=update)
    post = renderer.telegram_post(row, update=update, language=cfg.telegram.language if cfg.telegram else None)
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"item-{item}-{kind}-{lang}"
    files = {
        folder / f"{stem}.html": rendered.html.encode("utf-8"),
        folder / f"{stem}.txt": f"Subject: {rendered.subject}\n\n{rendered.text}".encode("utf-8"),
        folder / f"{stem}.eml": email.body,
        folder / f"item-{item}-{kind}-telegram.html": post.encode("utf-8"),
    }
    for path, data in files.items():
        path.write_bytes(data)
        out.print(str(path), highlight=False, soft_wrap=True)
    if explain:
        _explain(item, renderer.removed_chrome(row))


def _explain(item: int, removed: list) -> None:
    """The blocks the article lost as page chrome, each with the rule and the signal that removed it."""
    from bot.render.html.chrome import RULES

    if not removed:
        out.print(f"item #{item}: nothing was removed from the article as page chrome", highlight=False)
        return
    table = Table(title=f"Removed from item #{item} as page chrome ({len(removed)} blocks)")
    for col in ("#", "rule", "signal", "what the reader would have seen"):
        table.add_column(col, overflow="fold")
    for n, r in enumerate(removed, 1):
        table.add_row(str(n), r.rule, escape(r.why), escape(r.text) or "—")  # feed text is never markup
    out.print(table)
    for rule in dict.fromkeys(r.rule for r in removed):
        out.print(f"  {rule}: {RULES[rule]}", highlight=False, markup=False)


def compact(
    ctx: typer.Context,
    vacuum: bool = typer.Option(False, "--vacuum", help="Also rewrite the file once (VACUUM) so it can shrink "
                                "from now on; needs free disk the size of the file and blocks writers meanwhile."),
    batch: int = typer.Option(None, "--batch", min=1, help="Rows per transaction (default: sized to hold the "
                              "database lock about 50 ms at a time)."),
) -> None:
    """Compact the delivery log and prune now (what `flashbot run` does every hour), then give freed space back."""
    from bot.store import compaction, maintenance

    st = state(ctx)
    cfg, engine = st.config, st.engine
    pacer = compaction.Pacer(batch=batch, smallest=batch, largest=batch) if batch else compaction.Pacer()
    report = compaction.compact(engine, cfg.delivery.detail_days, pacer=pacer)
    out.print(f"compacted {report.rows} deliveries of {report.groups} alert or digest groups older than "
              f"{cfg.delivery.detail_days} days ({report.batches} batches, longest {report.slowest_batch_s:.3f} s)", highlight=False)
    pruned = maintenance.prune(engine, cfg.bot.retention_days, pacer=pacer)
    out.print(f"pruned after {cfg.bot.retention_days} days: {pruned['deliveries']} deliveries, {pruned['items']} items, "
              f"{pruned['digests']} digest runs", highlight=False)
    if vacuum:
        done = maintenance.vacuum(engine)
        if done:
            out.print(f"vacuumed: {done['bytes_before']:,} → {done['bytes_after']:,} bytes; freed space is now "
                      "handed back after each compaction", highlight=False)
        return
    freed = maintenance.reclaim(engine)
    if freed.get("vacuum_needed"):
        out.print(f"{freed['free_pages']} free pages are kept for reuse: this file predates incremental "
                  "auto_vacuum; run `flashbot compact --vacuum` once to let it shrink", highlight=False)
    elif freed:
        out.print(f"freed {freed['freed_pages']} pages", highlight=False)


def register(app: typer.Typer) -> None:
    """Add `deliveries`, `compact` and `preview` to the CLI."""
    app.command()(deliveries)
    app.command()(compact)
    app.command()(preview)
