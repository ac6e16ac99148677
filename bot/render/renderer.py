"""Jinja2 rendering of alert emails, correction emails, digests and Telegram posts."""
from __future__ import annotations

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
    "telegram_update.html", "email_footer.txt", *DIGEST_TEMPLATES,
})
ALERT_MAX_CHARS = 12000  # longer articles are shown as their lead with a "read more" link
UPDATE_LEAD_CHARS = 1200
DIGEST_LEAD_CHARS = 280
SUBJECT_MAX = 200
HEADLINE_MAX = 500
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
        return {
            "headline": one_line(headline_of(item), HEADLINE_MAX),
            "label": label,
            "badge": label.upper() if label else (i18n.translator(lang).gettext("flash") if _get(item, "is_flash") else ""),
            "link": link,
            "author": one_line(_get(item, "author", ""), 200),
            "source": one_line(_get(item, "source_name", ""), 200),
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
        ctx = {**self._common(lang, links), "item": view, "update": update, "was_cut": was_cut,
               "body_html": Markup(body), "body_text": to_text(body)}
        name = "email_update" if update else "email_alert"
        return self._email(name, self._subject(view, lang, update), ctx)

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

    def email_digest(self, items: list[Any], language: str | None, links: Mapping[str, str],
                     date: date | datetime | None = None) -> RenderedEmail:
        """The daily digest: Flash Info first, then the rest grouped by category/source."""
        lang = i18n.pick_language(language, self.cfg.bot.language)
        day = date.astimezone(self.tz).date() if isinstance(date, datetime) else date
        subject, html, text = self.digests.render(list(items), lang, self._common(lang, links)["links"],
                                                  day or datetime.now(self.tz).date())
        return RenderedEmail(subject, html, text)
