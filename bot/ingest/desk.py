"""Hand-written alerts as items: an editor's draft (title, short text, link, category and topics,
photo, channels) checked and turned into the same Item a feed entry becomes.

The title goes through Flash Info detection like a feed title ("FLASH INFO : …" keeps its label
and loses it from the headline); a hand-written alert is Flash Info whatever its title says.
"""
from __future__ import annotations

import html
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from bot.config import Config
from bot.i18n import available
from bot.ingest.detect import Rules, classify
from bot.ingest.images import photo_url
from bot.ingest.parse import content_hash
from bot.models import Item

TITLE_MAX = 300
BODY_MAX = 2000  # a short text: the article follows on the site
TOPICS_MAX = 20
WORD_MAX = 100
_SPLIT = re.compile(r"[,;|\n]")
_NONCE = re.compile(r"[A-Za-z0-9]{16,64}")


@dataclass
class Draft:
    """What an editor wrote on the desk page or the command line."""

    title: str
    body: str = ""
    link: str | None = None
    category: str | None = None
    topics: list[str] = field(default_factory=list)
    language: str | None = None
    image_url: str | None = None
    image_alt: str | None = None
    email: bool = True
    telegram: list[str] | None = None  # chats to post to; None = every Telegram channel whose filters match
    nonce: str | None = None  # from the preview: sending the same preview twice sends one alert
    force: bool = False  # send even when the same story was alerted already (no cross-source dedupe)

    def targets(self) -> dict:
        """The channel choice stored with the item (bot.delivery.fanout reads it)."""
        return {"email": self.email, "telegram": self.telegram}


def split_words(text: str | list[str] | None) -> list[str]:
    """Topics from "a, b; c" (or a list): trimmed, one line each, deduplicated, in order."""
    parts = text if isinstance(text, list) else _SPLIT.split(text or "")
    out: list[str] = []
    for p in parts:
        word = " ".join(str(p).split())[:WORD_MAX]
        if word and word.casefold() not in (w.casefold() for w in out):
            out.append(word)
    return out


def problems(d: Draft, cfg: Config) -> list[str]:
    """What is wrong with a draft, as message keys (the catalogs word them); [] when it can go."""
    errors = []
    if not " ".join(d.title.split()):
        errors.append("desk_err_title")
    elif len(d.title) > TITLE_MAX:
        errors.append("desk_err_title_long")
    if len(d.body) > BODY_MAX:
        errors.append("desk_err_body_long")
    if d.link and photo_url(d.link) is None:
        errors.append("desk_err_link")
    if d.image_url and photo_url(d.image_url) is None:
        errors.append("desk_err_image")
    if d.language is not None and d.language not in available():
        errors.append("desk_err_language")
    if len(d.topics) > TOPICS_MAX:
        errors.append("desk_err_topics")
    known = [c.chat for c in cfg.telegram.targets()] if cfg.telegram else []
    if d.telegram and any(chat not in known for chat in d.telegram):
        errors.append("desk_err_chat")
    if not ((d.email and cfg.email) or (cfg.telegram and (d.telegram is None or d.telegram))):
        errors.append("desk_err_no_channel")
    return errors


def body_html(text: str) -> str:
    """The editor's plain text as HTML: blank lines part paragraphs, a single newline is a line break."""
    paras = [p.strip() for p in re.split(r"\n\s*\n", text.replace("\r\n", "\n")) if p.strip()]
    return "".join("<p>" + "<br>".join(html.escape(line.strip()) for line in p.split("\n")) + "</p>" for p in paras)


def to_item(d: Draft, cfg: Config, now: datetime, published: datetime | None = None) -> Item:
    """The Item of a checked draft (published now, or at `published` for a correction)."""
    title = " ".join(d.title.split())
    categories = split_words(([d.category] if d.category else []) + d.topics)
    _, label, headline = classify(title, categories, Rules.from_config(cfg.flash), all_flash=True)
    summary = body_html(d.body)
    nonce = d.nonce if d.nonce and _NONCE.fullmatch(d.nonce) else uuid.uuid4().hex
    return Item(
        key=f"desk:{nonce}", title=title, link=d.link or None, summary_html=summary,
        categories=categories, language=d.language or cfg.bot.language,
        published_at=published or now, updated_at=now if published else None,
        content_hash=content_hash(title, summary, ""), image_url=d.image_url or None,
        image_alt=" ".join((d.image_alt or "").split())[:300] or None,
        is_flash=True, label=label, headline=headline or title)


def from_row(row: dict) -> Draft:
    """The draft an editor starts from when correcting a stored hand-written alert."""
    text = re.sub(r"<br\s*/?>", "\n", row.get("summary_html") or "")
    text = re.sub(r"</p>\s*<p>", "\n\n", text)
    targets = row.get("targets") or {}
    return Draft(title=row.get("title") or "", body=html.unescape(re.sub(r"<[^>]+>", "", text)),
                 link=row.get("link"), topics=list(row.get("categories") or []), language=row.get("language"),
                 image_url=row.get("image_url"), image_alt=row.get("image_alt"),
                 email=targets.get("email", True), telegram=targets.get("telegram"))
