"""Jinja2 rendering of alert emails, correction emails, digests and Telegram posts."""
from __future__ import annotations

import html as html_lib
import re
import unicodedata
from collections.abc import Mapping
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import css_inline
from jinja2 import (BaseLoader, ChoiceLoader, Environment, FileSystemLoader, StrictUndefined,
                    TemplateNotFound, select_autoescape)
from markupsafe import Markup

import bot
from bot import i18n
from bot.render.html import telegram as tg
from bot.config import Config, ConfigError
from bot.render.html.chrome import Removal
from bot.render.html.images import limit_images
from bot.render.html.plaintext import cut_words, explain, lead, lead_html, sanitize, to_text
from bot.render.digest import DIGEST_TEMPLATES, Digests

BUNDLED = bot.templates_dir()
# The only names ever rendered or included: a template name never comes from outside.
TEMPLATES = frozenset({
    "email_base.html", "email_article.html", "email_alert.html", "email_alert.txt", "email_update.html",
    "email_update.txt", "email_digest.html", "email_digest.txt", "telegram_post.html",
    "telegram_update.html", "email_footer.txt", "email_summary.html", "email_summary.txt", *DIGEST_TEMPLATES,
})
ALERT_MAX_CHARS = 12000  # longer articles are shown as their lead with a "read more" link
UPDATE_LEAD_CHARS = 1200
DIGEST_LEAD_CHARS = 280
SUBJECT_MAX = 200
HEADLINE_MAX = 500
CAPTION_LIMIT = 1024  # Telegram's photo caption, in UTF-16 units after entity parsing
PHOTO_WIDTH = 560  # the email photo's width attribute: the card's content width (640 - 2 × 24 - margins)
# A mail with images and less text than this is "image-only" to spam filters (SpamAssassin's
# HTML_IMAGE_ONLY_04…32 fire up to 3,200 bytes of words): the photo needs the text of a real article.
PHOTO_MIN_TEXT = 3600
_INVISIBLE = re.compile("[\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff]")  # bidi controls, BOM


class Strings:
    """`t.key` / `t["key"]` in templates written before the catalogs: the same as `_("key")`."""

    def __init__(self, lang: str) -> None:
        self._t = i18n.translator(lang)

    def __getattr__(self, key: str) -> str:
        if key.startswith("__"):
            raise AttributeError(key)
        return self._t.gettext(key)

    __getitem__ = __getattr__


class RenderedEmail(NamedTuple):
    """One rendered email: a one-line subject and the two alternative parts."""

    subject: str
    html: str
    text: str


class TelegramPost(NamedTuple):
    """A channel post: its Telegram HTML, and the photo to send it as the caption of (None: a text post)."""

    text: str
    photo: str | None = None


class _KnownNames(BaseLoader):
    """Refuses any template name outside TEMPLATES (no path traversal, no arbitrary files)."""

    def __init__(self, inner: BaseLoader) -> None:
        self.inner = inner

    def get_source(self, environment, template):
        if template not in TEMPLATES:
            raise TemplateNotFound(template)
        return self.inner.get_source(environment, template)


def folder_names(folder: Path) -> set[str]:
    """The template names an override folder defines."""
    return {p.name for p in folder.iterdir()} if folder.is_dir() else set()


def one_line(text: Any, limit: int | None = None) -> str:
    """Text safe for a header or a title: no control/bidi characters, one line, optionally cut."""
    s = _INVISIBLE.sub("", str(text or ""))
    s = "".join(" " if unicodedata.category(c) in ("Cc", "Zl", "Zp") else c for c in s)
    s = " ".join(s.split())
    return cut_words(s, limit) if limit else s


def safe_url(url: Any) -> str | None:
    """The URL when it is an absolute http(s) URL without whitespace, else None."""
    url = str(url or "").strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc or re.search(r"[\s<>\"]", url):
        return None
    return url


def _get(item: Any, key: str, default: Any = None) -> Any:
    value = item.get(key, default) if isinstance(item, Mapping) else getattr(item, key, default)
    return default if value is None else value


def _when(value: Any) -> datetime | None:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _categories(value: Any) -> list[str]:
    values = [value] if isinstance(value, str) else value if isinstance(value, (list, tuple)) else []
    return [c for c in (one_line(v, 100) for v in values) if c]


def visible_chars(page: str) -> int:
    """Characters of text a reader sees in an HTML page (head, tags and repeated spaces left out)."""
    body = re.sub(r"(?is)<head\b.*?</head>|<style\b.*?</style>", " ", page)
    return len(" ".join(html_lib.unescape(re.sub(r"<[^>]*>", " ", body)).split()))


def _without_image(body: str, url: str) -> str:
    """The sanitized body without its <img> tags showing `url` (the lead photo is shown above it)."""
    src = re.escape(str(Markup.escape(url)))
    return re.sub(rf'<img\b[^>]*\bsrc="{src}"[^>]*>', "", body)


def headline_of(item: Any) -> str:
    """The title without its Flash label (detect's headline when it set one)."""
    headline = one_line(_get(item, "headline", ""))
    if headline:
        return headline
    title, label = one_line(_get(item, "title", "")), one_line(_get(item, "label", ""))
    if label and title.lower().startswith(label.lower()):
        title = title[len(label):].lstrip(" :-–—|·•").strip()
    return title


class Renderer:
    """Renders items for each channel from bundled templates, overridable by `bot.templates`."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.tz = ZoneInfo(cfg.bot.timezone)
        self.images = cfg.email.remote_images if cfg.email else "keep"  # [email] remote_images
        loaders = []
        if cfg.bot.templates:
            folder = cfg.resolve(cfg.bot.templates)
            if not folder.is_dir():
                raise ConfigError(f"bot.templates: folder not found: {folder}")
            loaders.append(FileSystemLoader(str(folder)))
        loaders.append(FileSystemLoader(str(BUNDLED)))
        self.env = Environment(
            loader=_KnownNames(ChoiceLoader(loaders)), undefined=StrictUndefined,
            autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=True),
            trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
        i18n.install(self.env)
        self._inliner = css_inline.CSSInliner(load_remote_stylesheets=False, keep_style_tags=False)
        overridden = folder_names(cfg.resolve(cfg.bot.templates)) if cfg.bot.templates else set()
        # Overridden digest templates may not have the shape the fragment path relies on.
        self.digests = Digests(self, not overridden & set(DIGEST_TEMPLATES), lambda s: one_line(s, SUBJECT_MAX))

    def inline(self, html: str) -> str:
        """The HTML page with its stylesheet moved into style attributes (mail clients drop <style>)."""
        return self._inliner.inline(html)

    # --- views -------------------------------------------------------------------------------
    def _common(self, lang: str, links: Mapping[str, str] | None) -> dict[str, Any]:
        rtl = i18n.direction(lang) == "rtl"
        ctx: dict[str, Any] = {"t": Strings(lang), "lang": lang, "dir": "rtl" if rtl else "ltr", "bot_name": self.cfg.bot.name,
                               # mail clients know few logical CSS properties: the sides are chosen here
                               "start": "right" if rtl else "left", "end": "left" if rtl else "right"}
        if links is not None:
            missing = [k for k in ("unsubscribe", "preferences") if not links.get(k)]
            if missing:
                raise ValueError(f"links is missing {', '.join(missing)}")
            ctx["links"] = dict(links)
        return ctx

    def item_view(self, item: Any, lang: str) -> dict[str, Any]:
        """The template variables describing one item (all feed data cleaned or sanitized)."""
        link = safe_url(_get(item, "link"))
        furniture = _get(item, "furniture", ())  # blocks the feed repeats in most items (see furniture.py)
        body = sanitize(_get(item, "content_html", ""), link, furniture) or \
            sanitize(_get(item, "summary_html", ""), link, furniture)
        body = limit_images(body, self.images)
        label = one_line(_get(item, "label", ""), 60)
        published, updated = _when(_get(item, "published_at")), _when(_get(item, "updated_at"))
        image = safe_url(_get(item, "image_url"))
        desk = _get(item, "source_origin") == "desk"  # a hand-written alert names no feed
        return {
            "headline": one_line(headline_of(item), HEADLINE_MAX),
            "label": label,
            "badge": label.upper() if label else (i18n.translator(lang).gettext("flash") if _get(item, "is_flash") else ""),
            "link": link,
            "author": one_line(_get(item, "author", ""), 200),
            "source": "" if desk else one_line(_get(item, "source_name", ""), 200),
            "image": {"url": image, "width": PHOTO_WIDTH,
                      "alt": one_line(_get(item, "image_alt", "") or headline_of(item), 300)} if image else None,
            "categories": _categories(_get(item, "categories", [])),
            "published": i18n.format_when(published, lang, self.tz) if published else "",
            "updated": i18n.format_when(updated, lang, self.tz) if updated else "",
            "revision": int(_get(item, "revision", 0) or 0),
            "body_clean": body,
        }

    def removed_chrome(self, item: Any) -> list[Removal]:
        """What the item's article loses as page chrome, in order, each with its rule (preview --explain)."""
        link = safe_url(_get(item, "link"))
        furniture = _get(item, "furniture", ())
        clean, removed = explain(_get(item, "content_html", ""), link, furniture)
        # item_view shows the summary when the content is empty once cleaned.
        return removed if clean else explain(_get(item, "summary_html", ""), link, furniture)[1]

    def digest_view(self, item: Any, lang: str) -> dict[str, Any]:
        """item_view plus the digest's short lead and sort key (the article body is dropped)."""
        view = self.item_view(item, lang)
        view["lead"] = lead(view.pop("body_clean"), DIGEST_LEAD_CHARS)
        view["sort_key"] = _when(_get(item, "published_at"))
        return view

    def _subject(self, view: dict[str, Any], lang: str, update: bool) -> str:
        subject = " — ".join(x for x in (view["badge"], view["headline"]) if x) or self.cfg.bot.name
        if update:
            subject = f"{i18n.translator(lang).gettext('update_prefix')} {subject}"
        return one_line(subject, SUBJECT_MAX)

    def _email(self, name: str, subject: str, ctx: dict[str, Any]) -> RenderedEmail:
        html = self.env.get_template(f"{name}.html").render(ctx)
        text = self.env.get_template(f"{name}.txt").render(ctx)
        html = self.inline(html)
        text = re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"
        return RenderedEmail(one_line(subject, SUBJECT_MAX), html, text)

    # --- public API ----------------------------------------------------------------------------
    def email_alert(self, item: Any, language: str | None, links: Mapping[str, str],
                    update: bool = False) -> RenderedEmail:
        """The alert email (or, with update=True, the short correction email) for one item."""
        lang = i18n.pick_language(language, self.cfg.bot.language)
        view = self.item_view(item, lang)
        limit = UPDATE_LEAD_CHARS if update else ALERT_MAX_CHARS
        body, was_cut = lead_html(view["body_clean"], limit) if view["body_clean"] else ("", False)
        name, subject = ("email_update" if update else "email_alert"), self._subject(view, lang, update)
        photo, view["image"] = view["image"], None
        ctx = {**self._common(lang, links), "item": view, "update": update, "was_cut": was_cut,
               "body_html": Markup(body), "body_text": to_text(body)}
        bare = self._email(name, subject, ctx)
        if photo is None or (self.cfg.email is not None and not self.cfg.email.lead_image) \
                or visible_chars(bare.html) < PHOTO_MIN_TEXT:
            return bare  # no photo, switched off, or too little text: no image-only mail
        view["image"] = photo  # under the headline, and not a second time in the article
        ctx["body_html"] = Markup(_without_image(body, photo["url"]))
        return self._email(name, subject, ctx)

    def telegram_post(self, item: Any, update: bool = False, language: str | None = None) -> str:
        """The channel post (in `language`, else [bot] language): valid Telegram HTML of at most 4096 UTF-16 units."""
        lang = i18n.pick_language(language, self.cfg.bot.language)
        view = self.item_view(item, lang)
        template = self.env.get_template("telegram_update.html" if update else "telegram_post.html")
        body = tg.from_html(view["body_clean"])

        def render(body_html: str) -> str:
            out = template.render({**self._common(lang, None), "item": view, "update": update,
                                   "body": Markup(body_html)})
            return re.sub(r"\n{3,}", "\n\n", tg.normalize(out)).strip()

        post = render(body)
        if tg.visible_len(post) > tg.LIMIT:
            # Measure the template around a one-character body (keeps its separators).
            budget = tg.LIMIT - (tg.visible_len(render("x")) - 1)
            if budget > 200:  # room for a meaningful part of the article
                post = render(tg.cut(body, budget))
        if tg.visible_len(post) > tg.LIMIT:
            tail = f'\n\n<a href="{tg.escape_attr(view["link"])}">{tg.escape_text(view["link"])}</a>' \
                if view["link"] else ""
            post = tg.cut(post, tg.LIMIT, tail)
        return post

    def telegram_message(self, item: Any, update: bool = False, language: str | None = None,
                         photos: bool = True) -> TelegramPost:
        """The post, as the caption of the item's photo when it has one and the post fits a caption."""
        post = self.telegram_post(item, update=update, language=language)
        image = safe_url(_get(item, "image_url")) if photos else None
        if image and tg.visible_len(post) <= CAPTION_LIMIT:
            return TelegramPost(post, image)
        return TelegramPost(post)

    def telegram_caption(self, item: Any, update: bool = False, language: str | None = None) -> str:
        """The post cut to a photo caption (a correction edits the caption of a photo post)."""
        post = self.telegram_post(item, update=update, language=language)
        if tg.visible_len(post) <= CAPTION_LIMIT:
            return post
        link = safe_url(_get(item, "link"))
        tail = f'\n\n<a href="{tg.escape_attr(link)}">{tg.escape_text(link)}</a>' if link else ""
        return tg.cut(post, CAPTION_LIMIT, tail if tg.visible_len(tail) < CAPTION_LIMIT // 2 else "")

    def email_summary(self, items: list[Any], language: str | None, links: Mapping[str, str]) -> RenderedEmail:
        """One mail of the alerts a subscriber's daily cap or quiet hours held back, newest last."""
        lang = i18n.pick_language(language, self.cfg.bot.language)
        views = [self.digest_view(it, lang) for it in items]
        views.sort(key=lambda v: v["sort_key"] or datetime.min.replace(tzinfo=timezone.utc))
        ctx = {**self._common(lang, links), "views": views, "count": len(views)}
        subject = i18n.translator(lang).ngettext("summary_subject", "summary_subject_plural", len(views),
                                                 name=self.cfg.bot.name)
        return self._email("email_summary", subject, ctx)

    def email_digest(self, items: list[Any], language: str | None, links: Mapping[str, str],
                     date: date | datetime | None = None) -> RenderedEmail:
        """The daily digest: Flash Info first, then the rest grouped by category/source."""
        lang = i18n.pick_language(language, self.cfg.bot.language)
        day = date.astimezone(self.tz).date() if isinstance(date, datetime) else date
        subject, html, text = self.digests.render(list(items), lang, self._common(lang, links)["links"],
                                                  day or datetime.now(self.tz).date())
        return RenderedEmail(subject, html, text)
