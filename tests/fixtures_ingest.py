"""Ingest fixtures: a real feed server on 127.0.0.1, configs from dicts, a migrated database."""
from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import parse_config
from bot.store import open_db
from bot.demo.feedserver import FeedServer

SAMPLES = Path(__file__).resolve().parent.parent / "bot" / "demo" / "samples"


def rss(items: list[dict], title: str = "Le Quotidien", extra: str = "", ttl: int | None = None) -> bytes:
    """A small RSS 2.0 feed; each item dict has title, guid and optional link/description/category."""
    parts = []
    for it in items:
        cats = "".join(f"<category>{c}</category>" for c in it.get("categories", []))
        parts.append(
            f"<item><title>{it['title']}</title><guid isPermaLink=\"false\">{it['guid']}</guid>"
            f"<link>{it.get('link', 'https://www.exemple.fr/a/' + it['guid'])}</link>{cats}"
            f"<description>{it.get('description', 'Texte de ' + it['guid'])}</description>"
            f"<pubDate>Sat, 29 Nov 2025 10:00:00 +0100</pubDate></item>"
        )
    ttl_tag = f"<ttl>{ttl}</ttl>" if ttl else ""
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom">'
        f"<channel><title>{title}</title><link>https://www.exemple.fr/</link><language>fr</language>{ttl_tag}{extra}"
        + "".join(parts) + "</channel></rss>"
    ).encode("utf-8")


def build_ingest_config(tmp_path: Path, sources: list[dict] | None = None, database: str | None = None, **sections):
    """A validated Config with its database in tmp_path (or `database`, a URL); sections are merged over defaults."""
    data = {"bot": {"database": database or str(tmp_path / "ingest.db")}, "fetch": {"timeout": 3}, "sources": sources or []}
    for name, value in sections.items():
        data[name] = {**data.get(name, {}), **value} if isinstance(value, dict) else value
    return parse_config(data, tmp_path, env={})


@pytest.fixture
def feed_server():
    """A started FeedServer; stopped after the test."""
    with FeedServer() as server:
        yield server


@pytest.fixture
def ingest_config(tmp_path, database):
    """Factory: ingest_config(sources=[...], flash={...}, fetch={...}) -> Config."""
    return lambda sources=None, **sections: build_ingest_config(tmp_path, sources, database, **sections)


@pytest.fixture
def ingest_engine(tmp_path, database):
    """A fresh migrated database (SQLite or PostgreSQL) at the place ingest_config uses."""
    engine = open_db(database or f"sqlite:///{tmp_path / 'ingest.db'}")
    yield engine
    engine.dispose()
