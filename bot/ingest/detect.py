"""Flash Info detection: configurable rules over an item's title, categories and source.

A title prefix ("FLASH INFO", "URGENT", ...) matches case- and accent-insensitively at a word
boundary when a separator follows it: ":" "-" "–" "—" "|" "/" "•" or a closing bracket
("Flash info - …", "[URGENT] …"). A bare space also separates, but only when the prefix is
written in capitals ("URGENT Le président…"), so that "Urgent besoin de sang" or "Breaking Bad"
stay ordinary titles. "Flashback sur…" never matches (no word boundary). The matched prefix is
kept as the item's label and removed from the headline shown to readers.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from functools import lru_cache

from bot.config import FlashConfig
from bot.models import Item
from bot.text import fold, fold_map, unspaced

# Separators after a prefix; a hyphen only counts when followed by a space ("Flash-ball" is a word).
_SEP = re.compile(r"\s*(?:[:|/•·–—\])»]|-(?=\s|$))[\s:|/•·–—\-\])»]*")
_SPACE_SEP = re.compile(r"\s+")
# Decorations newsrooms put before the label: "🔴 FLASH INFO", "[URGENT]", "« ALERTE »".
_LEAD = re.compile(r"^[\W_]*?(?=\w)", re.UNICODE)


@dataclass(frozen=True)
class Rules:
    """Compiled detection rules from [flash]."""

    prefixes: tuple[tuple[str, str], ...]  # (folded, as configured), longest first
    categories: dict[str, str]  # folded -> as configured
    keywords: tuple[re.Pattern, ...]

    @classmethod
    def from_config(cls, flash: FlashConfig) -> "Rules":
        """Compile the rules of a [flash] section."""
        return _compile(tuple(flash.title_prefixes), tuple(flash.categories), tuple(flash.keywords))


@lru_cache(maxsize=32)
def _compile(prefixes: tuple[str, ...], categories: tuple[str, ...], keywords: tuple[str, ...]) -> Rules:
    pre = sorted({(fold(p), p.strip()) for p in prefixes if fold(p)}, key=lambda t: -len(t[0]))
    cats = {fold(c): c.strip() for c in categories if fold(c)}
    kws = tuple(re.compile(_keyword_pattern(fold(k))) for k in keywords if fold(k))
    return Rules(tuple(pre), cats, kws)


def _keyword_pattern(folded: str) -> str:
    # Whole words only ("séisme" not in "séismes"), except in scripts written without spaces
    # (地震 in 東京で地震), which have no word boundaries to look for.
    if unspaced(folded):
        return re.escape(folded)
    return r"(?<!\w)" + re.escape(folded) + r"(?!\w)"


def match_prefix(title: str, rules: Rules) -> tuple[str, str] | None:
    """(label, headline) when the title starts with a Flash prefix, else None."""
    lead = _LEAD.match(title)
    start = lead.end() if lead else 0
    folded, where = fold_map(title[start:])
    for pfold, label in rules.prefixes:
        if not folded.startswith(pfold):
            continue
        if len(folded) > len(pfold) and (folded[len(pfold)].isalnum() or folded[len(pfold)] == "_"):
            continue  # no word boundary: "Flashback"
        end = start + (where[len(pfold) - 1] + 1 if pfold else 0)
        rest = title[end:]
        sep = _SEP.match(rest)
        if sep is None and rest.strip():
            written = title[start:end]
            # A bare space separates only a label written in capitals ("URGENT Le …").
            if not (rest[0].isspace() and written.upper() == written and any(c.isalpha() for c in written)):
                continue
            sep = _SPACE_SEP.match(rest)
        headline = rest[sep.end():].strip() if sep else ""
        return label, headline
    return None


def classify(title: str, categories: list[str], rules: Rules, all_flash: bool = False) -> tuple[bool, str | None, str]:
    """(is_flash, label, headline) for a title and its categories."""
    title = " ".join((title or "").split())
    hit = match_prefix(title, rules)
    if hit:
        return True, hit[0], hit[1]
    for cat in categories:
        label = rules.categories.get(fold(cat))
        if label:
            return True, label, title
    if all_flash:
        return True, None, title
    folded = fold(title)
    if any(k.search(folded) for k in rules.keywords):
        return True, None, title
    return False, None, title


def detect(item: Item, flash: FlashConfig, all_flash: bool = False) -> Item:
    """A copy of item with is_flash, label and headline filled in."""
    is_flash, label, headline = classify(item.title, item.categories, Rules.from_config(flash), all_flash)
    if not headline:
        headline = _first_line(item.summary_html or item.content_html) or item.title
    return dataclasses.replace(item, is_flash=is_flash, label=label, headline=headline)


def _first_line(html: str) -> str:
    """The first non-empty line of an HTML fragment as text (for a title that is only a label)."""
    import html as htmllib

    text = re.sub(r"<(br|/p|/div|/h\d|/li)\b[^>]*>", "\n", html or "", flags=re.I)
    text = htmllib.unescape(re.sub(r"<[^>]+>", "", text))
    for line in text.splitlines():
        line = " ".join(line.split())
        if line:
            return line[:300]
    return ""
