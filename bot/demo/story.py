"""`flashbot demo`: the whole story on 127.0.0.1 with no network and no account.

A feed server with the bundled French samples, a WebSub hub, an SMTP server saving every message as
.eml and .html, and a Telegram Bot API stand-in; then the REAL service (`bot.service`) runs against
them: baseline, a new Flash Info item pushed, a correction, the newsletter, and a report.
"""
from __future__ import annotations

import asyncio
import contextlib
import email.utils
import logging
import re
import shutil
import signal
import socket
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from rich.console import Console
from rich.table import Table
from sqlalchemy import select

from bot import digest, logs
from bot.service import loop
from bot.config import load_config
from bot.service.daemon import Service, StartupError
from bot.store import open_db
from bot.store import subscribers as subs
from bot.store.schema import items, sources
from bot.demo.feedserver import FeedServer
from bot.demo.hub import Hub
from bot.demo.smtpserver import SMTPServer
from bot.demo.telegram_api import BotAPIStandin

SAMPLES = Path(__file__).parent / "samples"
TOPIC = "https://www.redaction-exemple.fr/feed/"  # the samples' rel="self"
ADMIN_PASSWORD = "demo-admin"
SUBSCRIBERS = [  # (address, mode, language): French, English, and an Arabic reader (right-to-left mails)
    ("alice@exemple.fr", "both", "fr"), ("bob@example.com", "instant", "en"),
    ("chloe@exemple.fr", "digest", "fr"), ("karim@example.com", "both", "ar"),
]
RSS = {"Content-Type": "application/rss+xml; charset=utf-8"}
console = Console()


# The samples are dated around this instant; the demo moves every date by the same amount so the
# newest item is "just published" and latencies from publication mean something.
SAMPLES_NOW = email.utils.parsedate_to_datetime("Sat, 29 Nov 2025 11:25:00 +0100")
_DATE = re.compile(r"<(pubDate|lastBuildDate)>([^<]+)</\1>")
_shift: list[timedelta] = []  # fixed once per process: the same item keeps the same date in every copy


def _redate(text: str) -> str:
    if not _shift:
        _shift.append(datetime.now(timezone.utc) - SAMPLES_NOW)

    def move(m: re.Match) -> str:
        try:
            when = email.utils.parsedate_to_datetime(m.group(2)) + _shift[0]
        except (TypeError, ValueError):
            return m.group(0)
        return f"<{m.group(1)}>{email.utils.format_datetime(when)}</{m.group(1)}>"
    return _DATE.sub(move, text)


def _feed(name: str, hub: Hub, edit: tuple[str, str] | None = None) -> bytes:
    """A sample feed declaring our hub, dated relative to now (and optionally with one edit applied)."""
    text = _redate((SAMPLES / name).read_text(encoding="utf-8"))
    text = text.replace(f'href="{TOPIC}"/>', f'href="{TOPIC}"/>\n  <atom:link rel="hub" href="{hub.url}"/>', 1)
    if edit:
        text = text.replace(*edit)
    return text.encode("utf-8")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(workdir: Path, feeds: FeedServer, smtp: SMTPServer, tg: BotAPIStandin, port: int) -> Path:
    """The demo's config.toml: everything on 127.0.0.1."""
    path = workdir / "config.toml"
    path.write_text(f'''# Written by `flashbot demo`: every server here is a local stand-in.
[bot]
database = "flashbot.db"
public_url = "http://127.0.0.1:{port}"

[[sources]]
name = "redaction"
url = "{feeds.url('/flash.xml')}"
interval = 2

[[sources]]
name = "depeches"
url = "{feeds.url('/depeches.atom')}"
interval = 2

[email]
host = "127.0.0.1"
port = {smtp.port}
sender = "Flash Info <alertes@redaction-exemple.fr>"
tls = "none"

[telegram]
token = "{tg.token}"
channel = "@flash_demo"
api_url = "{tg.base_url}"

[web]
host = "127.0.0.1"
port = {port}
admin_password = "{ADMIN_PASSWORD}"

[delivery]
retry_delays = [2]
grace_seconds = 3
''', encoding="utf-8")
    return path


async def _until(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await asyncio.to_thread(predicate):
            return True
        await asyncio.sleep(0.05)
    return False


def _rows(engine, query) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def _step(text: str) -> None:
    console.print(f"[bold cyan]›[/] {text}", highlight=False)


async def story(workdir: Path, hub: Hub, feeds: FeedServer, smtp: SMTPServer, tg: BotAPIStandin, serve: bool) -> int:
    """Run the real service through baseline → push → correction → digest, then report."""
    port = _free_port()
    cfg = load_config(write_config(workdir, feeds, smtp, tg, port))
    engine = open_db(cfg.database_url)
    for address, mode, language in SUBSCRIBERS:
        subs.add(engine, [address], mode=mode, language=language)
    service = Service(cfg, engine)
    try:
        lines = await service.start()
    except StartupError as exc:
        console.print(f"[red]cannot start: {exc}[/]")
        return 1
    try:
        _step("the real service started (bot.service), against local stand-ins:")
        for line in lines:
            console.print(f"    {line}", highlight=False, markup=False)
        baselined = lambda: all(r["baselined"] for r in _rows(engine, select(sources.c.baselined)))  # noqa: E731
        await _until(baselined, 15)
        pushed = await asyncio.to_thread(_wait_push, hub)
        _step(f"baseline recorded ({len(_rows(engine, select(items.c.id)))} items, no alert); "
              + ("WebSub push subscription active" if pushed else "no WebSub subscription: polling only"))
        feeds.set("/flash.xml", _feed("flash-suite.xml", hub), headers=RSS)
        if pushed:
            await asyncio.to_thread(hub.publish, TOPIC, _feed("flash-suite.xml", hub), RSS["Content-Type"])
        _step("published a new FLASH INFO item (and an URGENT one)")
        await _until(lambda: len(tg.posts) >= 2 and len(smtp.messages) >= 6, 20)
        await asyncio.sleep(1)
        fix = ("200 pompiers mobilisés", "250 pompiers mobilisés")
        feeds.set("/flash.xml", _feed("flash-suite.xml", hub, fix), headers=RSS)
        if pushed:
            await asyncio.to_thread(hub.publish, TOPIC, _feed("flash-suite.xml", hub, fix), RSS["Content-Type"])
        _step("published a correction: 200 → 250 pompiers")
        await _until(lambda: len(tg.edits) >= 1 and len(smtp.messages) >= 9, 15)
        result = await asyncio.to_thread(digest.send_now, engine, cfg)
        service.rt.delivery.wake()
        _step(f"newsletter queued for {result['queued']} subscriber(s)")
        await _until(lambda: len(smtp.messages) >= 9 + result["queued"], 15)
        await asyncio.sleep(0.6)  # the outbox writes outcomes in batches every 0.5 s
        report(engine, cfg, workdir, tg, smtp, service.web_url)
        if serve:
            await _serve_forever(service.web_url)
    finally:
        await service.shutdown()
        engine.dispose()
    return 0


def _wait_push(hub: Hub) -> bool:
    try:
        hub.wait_subscribed(TOPIC, 1, 8)
        return True
    except TimeoutError:
        return False


async def _serve_forever(url: str | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
    console.print(f"\n[bold]Serving {url} — Ctrl-C to stop.[/]")
    await stop.wait()


def _secs(a, b) -> str:
    return f"{(b - a).total_seconds():.2f} s" if a and b else "—"


def report(engine, cfg, workdir: Path, tg: BotAPIStandin, smtp: SMTPServer, url: str | None) -> None:
    """Print what happened and where to look."""
    alerted = _rows(engine, select(items).where(items.c.alert_state == "queued").order_by(items.c.id))
    table = Table(title="Flash Info items (latency from detection)", title_justify="left")
    table.add_column("item", ratio=3)
    for col in ("rev.", "→ Telegram", "→ 1st mail", "→ last mail"):
        table.add_column(col, no_wrap=True)
    for it in alerted:
        table.add_row(it["headline"][:60], str(it["revision"]), _secs(it["detected_at"], it["first_telegram_at"]),
                      _secs(it["detected_at"], it["first_email_at"]), _secs(it["detected_at"], it["last_email_at"]))
    console.print(table)
    console.print(f"[bold]Telegram[/] (stand-in, channel {', '.join(t.chat for t in cfg.telegram.targets())}): "
                  f"{len(tg.posts)} post(s), {len(tg.edits)} edit(s)")
    for kind, posts in (("post", tg.posts), ("edit", tg.edits)):
        for p in posts:
            text = " ".join(line.strip() for line in p.plain.splitlines() if line.strip())
            console.print(f"  {kind} #{p.message_id}: {text[:110]}…", highlight=False, markup=False)
    mail = Table(title=f"Emails ({len(smtp.messages)})", title_justify="left")
    mail.add_column("file")
    mail.add_column("to")
    mail.add_column("subject")
    for n, m in enumerate(smtp.messages, 1):
        mail.add_row(f"{n:04d}.eml", ", ".join(m.rcpt_tos), str(m.parsed()["Subject"])[:70])
    console.print(mail)
    console.print(f"[bold]Where to look[/]\n  mail folder: {(workdir / 'mail').resolve()} (.eml and .html)\n"
                  f"  dashboard:   {url}/admin  (password: {ADMIN_PASSWORD})\n"
                  f"  sign-up:     {url}/\n  config:      {(workdir / 'config.toml').resolve()}", highlight=False)


async def _main(workdir: Path, serve: bool) -> int:
    for leftover in ("flashbot.db", "flashbot.db-wal", "flashbot.db-shm", "mail"):
        path = workdir / leftover
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    workdir.mkdir(parents=True, exist_ok=True)
    with Hub() as hub, FeedServer() as feeds, SMTPServer(save_dir=workdir / "mail") as smtp, BotAPIStandin() as tg:
        feeds.set("/flash.xml", _feed("flash.xml", hub), headers=RSS)
        feeds.set("/depeches.atom", (SAMPLES / "depeches.atom").read_bytes(),
                  headers={"Content-Type": "application/atom+xml; charset=utf-8"})
        return await story(workdir, hub, feeds, smtp, tg, serve)


def main(workdir: Path, serve: bool = False, log_format: str = "text") -> int:
    """Run the demo; returns the exit status (0 when the story completed)."""
    logs.setup(log_format, level=logging.WARNING)
    started = time.monotonic()
    code = loop.run(_main(Path(workdir), serve))
    if not serve:
        console.print(f"[green]demo finished in {time.monotonic() - started:.1f} s[/]")
    return code
