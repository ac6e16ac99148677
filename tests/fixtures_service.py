"""Service-area fixtures: a migrated database, configs built from dicts, rows inserted directly."""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import insert

from bot.config import parse_config
from bot.store import open_db
from bot.store.schema import items, sources, subscribers


def build_config(tmp_path: Path, database: str | None = None, **sections):
    """A validated Config whose database lives in tmp_path (or `database`, a URL); sections override the defaults."""
    data = {"bot": {"database": database or str(tmp_path / "svc.db"), "timezone": "Europe/Paris"}}
    for name, value in sections.items():
        if isinstance(value, dict) and isinstance(data.get(name), dict):
            data[name] = {**data[name], **value}
        else:
            data[name] = value
    return parse_config(data, tmp_path, env={})


@pytest.fixture
def svc_config(tmp_path, database):
    """Factory: svc_config(email={...}, digest={...}) -> Config."""
    return lambda **sections: build_config(tmp_path, database, **sections)


@pytest.fixture
def svc_engine(tmp_path, database):
    """A fresh migrated database (SQLite or PostgreSQL); at the end, the delivery summary must match the rows."""
    from fixtures_delivery import assert_summary_in_step

    engine = open_db(database or f"sqlite:///{tmp_path / 'svc.db'}")
    yield engine
    assert_summary_in_step(engine)
    engine.dispose()


def add_source(engine, name="src", **kw) -> int:
    """Insert a source row directly; returns its id."""
    values = {"name": name, "url": f"http://127.0.0.1/{name}.xml", "interval": 60, "origin": "config",
              "baselined": True, "created_at": datetime.now(timezone.utc), **kw}
    with engine.begin() as conn:
        return conn.execute(insert(sources).values(**values)).inserted_primary_key[0]


def add_item(engine, source_id, key, detected_at, is_flash=False, **kw) -> int:
    """Insert an item row directly; returns its id."""
    values = {"source_id": source_id, "key": key, "title": key, "headline": key, "link": f"http://x/{key}",
              "content_hash": key, "categories": [], "is_flash": is_flash, "detected_at": detected_at,
              "published_at": detected_at, "alert_state": "queued" if is_flash else "none", **kw}
    with engine.begin() as conn:
        return conn.execute(insert(items).values(**values)).inserted_primary_key[0]


def add_subscriber(engine, email, mode="both", language="fr", status="active", **kw) -> int:
    """Insert a subscriber row directly; returns its id."""
    values = {"email": email, "mode": mode, "language": language, "status": status, "topics": [],
              "origin": "operator", "token_nonce": "n0", "created_at": datetime.now(timezone.utc), **kw}
    with engine.begin() as conn:
        return conn.execute(insert(subscribers).values(**values)).inserted_primary_key[0]


class ServedApp:
    """An ASGI app served by a real uvicorn on 127.0.0.1 inside the running loop."""

    def __init__(self, app):
        import socket

        import uvicorn

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        self.task = None

    async def __aenter__(self):
        import asyncio

        self.task = asyncio.get_running_loop().create_task(self.server.serve(sockets=[self.sock]))
        while not self.server.started:
            await asyncio.sleep(0.01)
        return self

    async def __aexit__(self, *exc):
        self.server.should_exit = True
        await self.task
        self.sock.close()


SAMPLES = Path(__file__).resolve().parent.parent / "bot" / "demo" / "samples"
RSS_TYPE = {"Content-Type": "application/rss+xml; charset=utf-8"}


def flash_rss(entries: list[tuple[str, str]], extra: str = "") -> bytes:
    """An RSS feed of (guid, title) entries; titles starting with FLASH INFO are alerts."""
    body = "".join(
        f"<item><title>{title}</title><guid isPermaLink=\"false\">{guid}</guid>"
        f"<link>https://www.exemple.fr/{guid}</link><description>&lt;p&gt;Texte de {guid}.&lt;/p&gt;</description>"
        f"<category>Monde</category></item>" for guid, title in entries)
    return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom">'
            f"<channel><title>Le Quotidien</title><link>https://www.exemple.fr/</link>{extra}{body}</channel></rss>").encode()


class Stack:
    """Real local servers (feeds, SMTP, Telegram Bot API stand-in) and a config file pointing at them."""

    def __init__(self, tmp_path: Path, database: str | None = None):
        from bot.demo.feedserver import FeedServer
        from bot.demo.smtpserver import SMTPServer
        from bot.demo.telegram_api import BotAPIStandin

        self.dir = tmp_path
        self.feeds = FeedServer().start()
        self.smtp = SMTPServer().start()
        self.telegram = BotAPIStandin().start()
        self.config_path = tmp_path / "config.toml"
        self.database = database or "flashbot.db"  # a PostgreSQL URL, or SQLite next to the config

    def write_config(self, extra: str = "", interval: int = 60, web_port: int = 0, public_url: str | None = None,
                     retry: int = 1, email_extra: str = "", grace: float = 2) -> Path:
        """config.toml with one source (/feed.xml), email and Telegram on."""
        public = f'public_url = "{public_url}"\n' if public_url else ""
        self.config_path.write_text(f'''
[bot]
database = "{self.database}"
{public}
[[sources]]
name = "quotidien"
url = "{self.feeds.url('/feed.xml')}"
interval = {interval}

[email]
host = "127.0.0.1"
port = {self.smtp.port}
sender = "Flash Info <alertes@example.org>"
tls = "none"
{email_extra}

[telegram]
token = "{self.telegram.token}"
channel = "@flash"
api_url = "{self.telegram.base_url}"

[web]
host = "127.0.0.1"
port = {web_port}
admin_password = "demo-admin-pass"

[delivery]
retry_delays = [{retry}]
grace_seconds = {grace}
{extra}
''')
        return self.config_path

    def publish(self, entries: list[tuple[str, str]], extra: str = "") -> None:
        """Serve these entries at /feed.xml."""
        self.feeds.set("/feed.xml", flash_rss(entries, extra), headers=RSS_TYPE)

    def cli(self, *args: str, timeout: float = 60):
        """Run `flashbot --config <ours> ARGS` in a subprocess."""
        import subprocess
        import sys

        return subprocess.run([sys.executable, "-m", "bot", "--config", str(self.config_path), *args],
                              capture_output=True, text=True, timeout=timeout, cwd=self.dir)

    def sql(self, statement: str, params: dict | None = None) -> list[tuple]:
        """Run one SQL statement on the stack's database (SQLite file or PostgreSQL); rows if any."""
        from sqlalchemy import text

        from bot.store.db import make_engine

        url = self.database if "://" in self.database else f"sqlite:///{self.dir / self.database}"
        engine = make_engine(url)
        try:
            with engine.begin() as conn:
                result = conn.execute(text(statement), params or {})
                return [tuple(r) for r in result] if result.returns_rows else []
        finally:
            engine.dispose()

    def stop(self) -> None:
        """Stop every server."""
        self.feeds.stop()
        self.smtp.stop()
        self.telegram.stop()


@pytest.fixture
def svc_stack(tmp_path, database):
    """Feed server + SMTP server + Telegram stand-in + a config writer (see Stack)."""
    stack = Stack(tmp_path, database)
    yield stack
    stack.stop()
