"""What a hand-written alert will look like before it leaves: the email (subject, HTML, text) and the
Telegram post of every chat it goes to, rendered by the code that renders the real messages (the
dashboard's desk page and `flashbot alert` show it before asking to send)."""
from __future__ import annotations

from dataclasses import dataclass, field

from bot.config import Config
from bot.delivery.fanout import telegram_chats
from bot.models import Item
from bot.render.renderer import RenderedEmail, Renderer, TelegramPost
from bot.i18n import pick_language
from bot.store.desk import DESK_NAME

PREVIEW_TOKEN = "apercu"  # stands for each subscriber's own token in the links of the email preview


@dataclass
class ChatPost:
    """The post one Telegram chat gets."""

    chat: str
    language: str
    post: TelegramPost


@dataclass
class Preview:
    """Everything that will leave; `email` is None when no mail goes out."""

    email: RenderedEmail | None
    language: str
    posts: list[ChatPost] = field(default_factory=list)


def as_row(item: Item, item_id: int = 0, revision: int = 0, published=None) -> dict:
    """The item as the delivery engine loads it (bot.store.outbox.load_item), for rendering."""
    return {"id": item_id, "title": item.title, "headline": item.headline, "label": item.label, "link": item.link,
            "summary_html": item.summary_html, "content_html": item.content_html, "categories": list(item.categories),
            "author": None, "language": item.language, "published_at": published or item.published_at,
            "updated_at": item.updated_at, "image_url": item.image_url, "image_alt": item.image_alt,
            "content_hash": item.content_hash, "is_flash": True, "revision": revision, "alert_state": "queued",
            "source_name": DESK_NAME, "source_category": None, "source_origin": "desk"}


def build(cfg: Config, renderer: Renderer, row: dict, targets: dict, update: bool = False,
          chats: list[str] | None = None) -> Preview:
    """The email and posts of an alert (or, with update=True, of its correction to `chats`)."""
    lang = pick_language(row.get("language"), cfg.bot.language)
    email = None
    if cfg.email is not None and targets.get("email", True):
        links = {p: f"{cfg.bot.public_url}/{p}/{PREVIEW_TOKEN}" for p in ("unsubscribe", "preferences")}
        email = renderer.email_alert(row, lang, links, update=update)
    posts = []
    if cfg.telegram is not None:
        languages = {t.chat: t.language or cfg.telegram.language or cfg.bot.language for t in cfg.telegram.targets()}
        for chat in chats if chats is not None else telegram_chats(cfg, row, targets.get("telegram")):
            post = renderer.telegram_message(row, update=update, language=languages.get(chat, cfg.bot.language),
                                             photos=cfg.telegram.photos and not update)
            posts.append(ChatPost(chat, languages.get(chat, cfg.bot.language), post))
    return Preview(email, lang, posts)
