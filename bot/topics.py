"""Subscriber topic filters: which items a subscriber with chosen topics wants (pure functions)."""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping

_TAG = re.compile(r"<[^>]*>")
_ENTITY = re.compile(r"&(#?\w+);")
_NON_WORD = re.compile(r"[^0-9a-z]+")


def normalize(text: str | None) -> str:
    """Lower-case, accents stripped, every run of non-alphanumerics one space: 'Élysée-Côte' → 'elysee cote'."""
    if not text:
        return ""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    return _NON_WORD.sub(" ", bare).strip()


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
        self.categories = {normalize(c) for c in cats if c and normalize(c)}
        words = " ".join([
            item.get("title") or "", item.get("headline") or "", _plain(item.get("summary_html")),
        ])
        # Padded with spaces so a phrase only matches on word boundaries.
        self.text = f" {normalize(words)} "

    def matches(self, topics: Iterable[str] | None) -> bool:
        """True when topics is empty (everything) or any topic is a category or a word/phrase of the item."""
        wanted = [normalize(t) for t in (topics or []) if isinstance(t, str)]
        wanted = [t for t in wanted if t]
        if not wanted:
            return True
        return any(t in self.categories or f" {t} " in self.text for t in wanted)


def wants(topics: Iterable[str] | None, item: Mapping) -> bool:
    """Does a subscriber with these topics want this item? (See ItemTopics.matches.)"""
    return ItemTopics(item).matches(topics)
