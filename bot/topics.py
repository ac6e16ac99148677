"""Subscriber topic filters: which items a subscriber with chosen topics wants (pure functions)."""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from bot.text import contains_phrase, words

_TAG = re.compile(r"<[^>]*>")
_ENTITY = re.compile(r"&(#?\w+);")


def normalize(text: str | None) -> str:
    """Comparison form of a topic or category (bot.text.words): 'Élysée-Côte' → 'elysee cote'."""
    return words(text)


def _plain(html: str | None) -> str:
    # Tags become spaces so words on both sides of a tag stay apart; entities become spaces too
    # (an &nbsp; or &amp; is never part of a topic word).
    return _ENTITY.sub(" ", _TAG.sub(" ", html or ""))


class ItemTopics:
    """The normalized facets of one item that topics are matched against (built once per item)."""

    def __init__(self, item: Mapping):
        cats = list(item.get("categories") or [])
        if item.get("source_category"):
            cats.append(item["source_category"])
        self.categories = {c for c in map(normalize, cats) if c}
        self.text = normalize(" ".join([
            item.get("title") or "", item.get("headline") or "", _plain(item.get("summary_html")),
        ]))

    def matches(self, topics: Iterable[str] | None) -> bool:
        """True when topics is empty (everything) or any topic is a category or a word/phrase of the item."""
        wanted = [normalize(t) for t in (topics or []) if isinstance(t, str)]
        wanted = [t for t in wanted if t]
        if not wanted:
            return True
        return any(t in self.categories or contains_phrase(self.text, t) for t in wanted)


def wants(topics: Iterable[str] | None, item: Mapping) -> bool:
    """Does a subscriber with these topics want this item? (See ItemTopics.matches.)"""
    return ItemTopics(item).matches(topics)
