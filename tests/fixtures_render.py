"""Render fixtures and helpers: a strict Telegram-HTML checker, a config, the seed article item."""
from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path

import pytest

from bot.config import parse_config

GOLDEN = Path(__file__).parent / "golden"
SEED_URL = "https://www.example-news.fr/2020/05/21/flash-info-haftar/"
TELEGRAM_TAGS = {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "a", "code", "pre",
                 "blockquote"}
_TOKEN = re.compile(r'<(/?)([a-z\-]+)((?:\s+[a-z\-]+="[^"<>]*")*)\s*>|&(?:lt|gt|amp|quot|#\d+|#x[0-9a-fA-F]+);|[^<>&]+')
_ATTR = re.compile(r'\s+([a-z\-]+)="([^"<>]*)"')


def telegram_problems(text: str) -> list[str]:
    """What Telegram's parse_mode=HTML would reject (unknown tag, stray < > &, bad nesting)."""
    problems: list[str] = []
    stack: list[str] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            problems.append(f"unparsable at {pos}: {text[pos:pos + 20]!r}")
            break
        pos = m.end()
        if not m.group(2):
            continue
        closing, tag, attrs = m.group(1) == "/", m.group(2), _ATTR.findall(m.group(3) or "")
        if tag not in TELEGRAM_TAGS:
            problems.append(f"tag not allowed: {tag}")
        elif closing:
            if not stack or stack[-1] != tag:
                problems.append(f"bad close </{tag}> (open: {stack})")
            else:
                stack.pop()
        else:
            names = [a for a, _ in attrs]
            if names != (["href"] if tag == "a" else []):
                problems.append(f"bad attributes on <{tag}>: {names}")
            if tag == "a" and not dict(attrs)["href"].startswith(("http://", "https://", "mailto:", "tg://")):
                problems.append(f"bad href {dict(attrs)['href']!r}")
            if any(t in ("pre", "code") for t in stack) or tag in stack or (
                    tag in ("a", "code", "pre", "blockquote") and "a" in stack):
                problems.append(f"<{tag}> nested in {stack}")
            stack.append(tag)
    if stack:
        problems.append(f"unclosed: {stack}")
    return problems


@pytest.fixture
def render_config(tmp_path):
    """A Config whose relative paths resolve in tmp_path; pass bot-section overrides."""
    def make(**bot):
        return parse_config({"bot": {"timezone": "Europe/Paris", **bot}}, tmp_path)
    return make


def seed_item(**over) -> dict:
    """The seed Flash Info article as an items row (HTML with its links and page chrome)."""
    item = {
        "id": 1, "source_id": 1, "key": SEED_URL,
        "title": "FLASH INFO : « Les attaques de Haftar contre les intérêts turcs en Libye auraient "
                 "de graves répercussions »",
        "headline": "« Les attaques de Haftar contre les intérêts turcs en Libye auraient de graves "
                    "répercussions »",
        "label": "FLASH INFO", "link": SEED_URL, "summary_html": "",
        "content_html": (GOLDEN / "seed_article.input.html").read_text(encoding="utf-8"),
        "categories": ["Flash Info", "International"], "author": "La rédaction",
        "published_at": datetime(2026, 11, 29, 6, 10, tzinfo=timezone.utc),
        "updated_at": datetime(2026, 11, 29, 6, 25, tzinfo=timezone.utc),
        "revision": 0, "is_flash": True, "source_name": "Example News",
    }
    item.update(over)
    return item


@pytest.fixture
def seed():
    """A factory for the seed article item (keyword overrides)."""
    return seed_item
