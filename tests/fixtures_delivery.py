"""Delivery fixtures: a real SMTP server on 127.0.0.1, a config aimed at it, and row helpers."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from sqlalchemy import insert, select

from bot.config import parse_config
from bot.store import open_db, utcnow
from bot.store.schema import deliveries, items, sources, subscribers
from bot.demo.smtpserver import SMTPServer

SECRET = "delivery-test-secret-key-0123456789"
SENDER = "Flash Info <alertes@example.org>"


def make_delivery_config(tmp_path: Path, smtp_port: int | None, telegram: dict | None = None, email: dict | None = None,
                         database: str | None = None, **delivery):
    """A validated Config: email to 127.0.0.1:smtp_port (tls none), a fixed secret, fast retries;
    `database` is a PostgreSQL URL (the `database` fixture) or None for SQLite in tmp_path."""
    data: dict = {
        "bot": {"database": database or str(tmp_path / "delivery.db"), "public_url": "https://news.example.org"},
        "web": {"secret_key": SECRET},
        "delivery": {"retry_delays": [1, 2], "max_attempts": 4, "bounce_limit": 2, "batch_size": 50, **delivery},
    }
    if smtp_port is not None:
        data["email"] = {"host": "127.0.0.1", "port": smtp_port, "sender": SENDER, "tls": "none", "timeout": 5,
                         "concurrency": 4, **(email or {})}
    if telegram:
        data["telegram"] = telegram
    return parse_config(data, tmp_path, env={})


def add_item(engine, title: str = "FLASH INFO — Séisme au large de Nice", *, categories=(), source_category=None,
             summary: str = "<p>Un séisme de magnitude 5 a été ressenti <a href=\"https://news.example.org/a\">sur la côte</a>.</p>",
             link: str = "https://news.example.org/2026/seisme", alert_state: str = "none", source: str = "src") -> int:
    """Insert a source (once) and a Flash Info item; returns the item id."""
    with engine.begin() as conn:
        src = conn.execute(select(sources.c.id).where(sources.c.name == source)).scalar()
        if src is None:
            src = conn.execute(insert(sources).values(name=source, url="http://127.0.0.1/feed.xml", category=source_category,
                                                      created_at=utcnow())).inserted_primary_key[0]
        headline = title.split("—", 1)[-1].strip()
        return conn.execute(insert(items).values(
            source_id=src, key=f"{title}-{link}", title=title, headline=headline, label="FLASH INFO", link=link,
            summary_html=summary, content_html="", categories=list(categories), content_hash=hashlib.sha256(title.encode()).hexdigest(),
            revision=0, is_flash=True, alert_state=alert_state, norm_title=headline.lower(), detected_at=utcnow(),
            published_at=utcnow(),
        )).inserted_primary_key[0]


def add_subscribers(engine, emails, *, mode: str = "both", language: str = "fr", topics=None, status: str = "active") -> list[int]:
    """Insert subscribers (active by default); returns their ids in order."""
    now = utcnow()
    rows = [{"email": e, "status": status, "mode": mode, "language": language, "topics": list(topics or []),
             "origin": "operator", "token_nonce": hashlib.md5(e.encode()).hexdigest()[:12], "created_at": now,
             "confirmed_at": now} for e in emails]
    with engine.begin() as conn:
        return [conn.execute(insert(subscribers).values(**r)).inserted_primary_key[0] for r in rows]


def rows_of(engine, item_id: int | None = None, **where) -> list[dict]:
    """Delivery rows (as dicts), optionally of one item and filtered by column values."""
    q = select(deliveries).order_by(deliveries.c.id)
    if item_id is not None:
        q = q.where(deliveries.c.item_id == item_id)
    for k, v in where.items():
        q = q.where(deliveries.c[k] == v)
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(q).mappings()]


class GatedSMTP(SMTPServer):
    """The real SMTP stand-in answering DATA for only `allowed` messages: the rest wait (their connections
    stay open) until the test raises the gate, so a fan-out stops at a known point on any machine."""

    allowed = 0
    admitted = 0

    async def handle_DATA(self, server, session, envelope):
        import asyncio

        while self.admitted >= self.allowed:  # checked and counted with no await in between: exact
            await asyncio.sleep(0.01)
        self.admitted += 1
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def smtp_server():
    """A started SMTPServer on 127.0.0.1:<ephemeral>; stopped after the test."""
    with SMTPServer() as server:
        yield server


@pytest.fixture
def delivery_config(tmp_path, smtp_server, database):
    """Config with email to the test server (SQLite or PostgreSQL: see fixtures_db)."""
    return make_delivery_config(tmp_path, smtp_server.port, database=database)


@pytest.fixture
def delivery_engine(delivery_config):
    """The migrated database of delivery_config; at the end, the summary must match the rows."""
    engine = open_db(delivery_config.database_url)
    yield engine
    assert_summary_in_step(engine)
    engine.dispose()


def assert_summary_in_step(engine) -> None:
    """Every group's live counts equal its rows (the invariant every delivery write keeps)."""
    from bot.store import summary_rebuild

    with engine.connect() as conn:
        assert summary_rebuild.verify(conn) == {}
