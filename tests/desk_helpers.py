"""A newsroom for desk, channel and pace tests: real local servers (feeds, SMTP, the Telegram stand-in),
a config aimed at them, a database, the one pipeline with an injected clock, and the real delivery
engine. Not a fixture plugin: tests build one with `Newsroom(tmp_path, ...)` and stop it."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import select

from bot import pipeline
from bot.clock import FixedClock
from bot.config import parse_config
from bot.delivery.channels import build_channels
from bot.delivery.engine import DeliveryEngine
from bot.demo.feedserver import FeedServer
from bot.demo.smtpserver import SMTPServer
from bot.demo.telegram_api import BotAPIStandin
from bot.ingest.fetch import make_client
from bot.render.renderer import Renderer
from bot.store import open_db
from bot.store.schema import deliveries, items
from bot.store.sources import sync_sources

RSS_TYPE = {"Content-Type": "application/rss+xml; charset=utf-8"}
# A moment in the past: rows queued "now" by the injected clock are due for the real-clock engine.
START = datetime(2026, 3, 27, 9, 0, tzinfo=timezone.utc)


def feed(entries: list[dict], language: str = "fr", title: str = "Le Quotidien") -> bytes:
    """RSS 2.0: each entry has guid, title, optional link, description (HTML), categories."""
    def esc(s: str) -> str:
        return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    body = "".join(
        f"<item><title>{esc(e['title'])}</title><guid isPermaLink=\"false\">{e['guid']}</guid>"
        f"<link>{e.get('link', 'https://www.exemple.fr/' + e['guid'])}</link>"
        + "".join(f"<category>{esc(c)}</category>" for c in e.get("categories", []))
        + f"<description>{esc(e.get('description', '<p>Texte de ' + e['guid'] + '.</p>'))}</description></item>"
        for e in entries)
    return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>{title}</title>'
            f"<link>https://www.exemple.fr/</link><language>{language}</language>{body}</channel></rss>").encode()


class Newsroom:
    """Servers, config, database, clock; `poll()`, `send()` and `deliver()` drive the real code."""

    def __init__(self, tmp_path: Path, *, sources: tuple[str, ...] = ("quotidien",), telegram: dict | None = None,
                 email: dict | None = None, **sections):
        self.dir = tmp_path
        self.feeds = FeedServer().start()
        self.smtp = SMTPServer().start()
        self.telegram = BotAPIStandin().start()
        tg = {"token": self.telegram.token, "api_url": self.telegram.base_url, "timeout": 5, **(telegram or {"channel": "@flash"})}
        data = {"bot": {"database": str(tmp_path / "newsroom.db"), "timezone": "Europe/Paris",
                        "public_url": "https://news.example.org"},
                "web": {"secret_key": "newsroom-secret-key-0123456789", "admin_password": "desk-pass"},
                "sources": [{"name": s, "url": self.feeds.url(f"/{s}.xml"), "interval": 3600} for s in sources],
                "email": {"host": "127.0.0.1", "port": self.smtp.port, "sender": "Flash Info <alertes@example.org>",
                          "tls": "none", "timeout": 5, **(email or {})},
                "telegram": tg, "delivery": {"retry_delays": [1], "max_attempts": 2}, "fetch": {"timeout": 5}}
        for name, value in sections.items():
            data[name] = {**data.get(name, {}), **value}
        self.data = data
        self.cfg = parse_config(data, tmp_path, env={})
        self.engine = open_db(self.cfg.database_url)
        sync_sources(self.engine, self.cfg)
        self.clock = FixedClock(START)

    def pipe(self, client=None) -> pipeline.Pipeline:
        """The pipeline on this newsroom's clock."""
        return pipeline.Pipeline(self.cfg, self.engine, client=client, clock=self.clock)

    def publish(self, source: str, entries: list[dict], language: str = "fr") -> None:
        """Serve these entries as the source's feed."""
        self.feeds.set(f"/{source}.xml", feed(entries, language), headers=RSS_TYPE)

    async def poll(self) -> int:
        """Poll every source once at the clock's time; rows queued."""
        async with make_client(self.cfg.fetch) as client:
            return sum(q for _, q in await pipeline.cycle(self.pipe(client)))

    async def deliver(self) -> dict:
        """One pass of the real delivery engine (everything due by the real clock)."""
        channels = build_channels(self.cfg)
        try:
            return await DeliveryEngine(self.engine, self.cfg, channels, Renderer(self.cfg)).run_due()
        finally:
            for ch in channels.values():
                await ch.close()

    def rows(self, **where) -> list[dict]:
        """Delivery rows (optionally filtered by column values), in id order."""
        q = select(deliveries).order_by(deliveries.c.id)
        for k, v in where.items():
            q = q.where(deliveries.c[k] == v)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    def item(self, item_id: int) -> dict:
        """One items row."""
        with self.engine.connect() as conn:
            return dict(conn.execute(select(items).where(items.c.id == item_id)).mappings().one())

    def mails_to(self, address: str) -> list:
        """Parsed messages received for one address, in order."""
        return [m.parsed() for m in self.smtp.messages if address in m.rcpt_tos]

    def write_config(self) -> Path:
        """This newsroom's config as a config.toml (for `flashbot` in a subprocess); its path."""
        path = self.dir / "config.toml"
        path.write_text(toml(self.data), encoding="utf-8")
        return path

    def cli(self, *args: str, input: str | None = None, timeout: float = 60):
        """Run `flashbot --config <ours> ARGS` in a subprocess."""
        return subprocess.run([sys.executable, "-m", "bot", "--config", str(self.write_config()), *args], input=input,
                              capture_output=True, text=True, timeout=timeout, cwd=self.dir,
                              env={**os.environ, "COLUMNS": "200"})

    def stop(self) -> None:
        """Stop every server and close the database."""
        self.engine.dispose()
        for server in (self.feeds, self.smtp, self.telegram):
            server.stop()


def toml(data: dict) -> str:
    """A config dict as TOML (tables, arrays of tables, strings, numbers, booleans and lists)."""
    def value(v) -> str:
        return json.dumps(v, ensure_ascii=False) if not isinstance(v, bool) else str(v).lower()

    lines: list[str] = []

    def table(name: str, body: dict, array: bool = False) -> None:
        lines.append(f"[[{name}]]" if array else f"[{name}]")
        nested = {k: v for k, v in body.items() if isinstance(v, dict) or (isinstance(v, list) and v and isinstance(v[0], dict))}
        lines.extend(f"{k} = {value(v)}" for k, v in body.items() if k not in nested)
        for k, v in nested.items():
            for entry in (v if isinstance(v, list) else [v]):
                table(f"{name}.{k}", entry, isinstance(v, list))

    for name, body in data.items():
        for entry in (body if isinstance(body, list) else [body]):
            table(name, entry, isinstance(body, list))
    return "\n".join(lines) + "\n"
