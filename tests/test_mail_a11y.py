"""Accessible mails, in French and Arabic: lang and dir, layout tables marked presentational (we use none),
alt text on every image, and body text contrast of at least 4.5:1 (WCAG 2.x AA), read from the inlined styles."""
from __future__ import annotations

import re
from datetime import datetime, timezone
from email import message_from_bytes
from email.policy import default
from html.parser import HTMLParser

import pytest
from fixtures_render import seed_item
from test_i18n_render import ARABIC_ITEM

from bot.config import parse_config
from bot.render.renderer import Renderer
from bot.web.context import make_env
from bot.web.mailer import build_message

LINKS = {"unsubscribe": "https://news.example/u/T", "preferences": "https://news.example/p/T"}
DAY = datetime(2026, 11, 29, 6, 0, tzinfo=timezone.utc)
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
_HEX = re.compile(r"#([0-9a-fA-F]{3}|[0-9a-fA-F]{6})\b")


def luminance(hex_color: str) -> float:
    """Relative luminance (WCAG 2.x) of #rgb / #rrggbb."""
    h = hex_color.lstrip("#")
    h = "".join(c * 2 for c in h) if len(h) == 3 else h
    channels = [int(h[i:i + 2], 16) / 255 for i in (0, 2, 4)]
    r, g, b = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(fg: str, bg: str) -> float:
    """The WCAG contrast ratio of two colours."""
    hi, lo = sorted((luminance(fg), luminance(bg)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def _declared(style: str, names: tuple[str, ...]) -> str | None:
    for decl in style.split(";"):
        name, _, value = decl.partition(":")
        if name.strip().lower() in names:
            found = _HEX.search(value)
            assert found or value.strip() in ("inherit", "transparent"), f"colour the test cannot read: {decl!r}"
            return found.group(0) if found else None
    return None


class Audit(HTMLParser):
    """Walks a mail's HTML: every text run with its effective colour and background, every image, every table."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[tuple[str, str, str]] = [("#root", "#000000", "#ffffff")]  # (tag, colour, background)
        self.runs: list[tuple[str, str, str]] = []
        self.images: list[dict] = []
        self.tables: list[dict] = []
        self.html_attrs: dict = {}

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "html":
            self.html_attrs = a
        if tag == "img":
            self.images.append(a)
        if tag == "table":
            self.tables.append(a)
        _, color, bg = self.stack[-1]
        style = a.get("style") or ""
        color = _declared(style, ("color",)) or color
        bg = _declared(style, ("background", "background-color")) or bg
        if tag not in VOID:
            self.stack.append((tag, color, bg))

    def handle_endtag(self, tag):
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i][0] == tag:
                del self.stack[i:]
                break

    def handle_data(self, data):
        if data.strip() and self.stack[-1][0] not in ("title", "style", "head"):
            _, color, bg = self.stack[-1]
            self.runs.append((" ".join(data.split())[:60], color, bg))


def audit(html: str) -> Audit:
    a = Audit()
    a.feed(html)
    return a


def _mails(lang: str, tmp_path) -> dict[str, str]:
    cfg = parse_config({"bot": {"timezone": "Europe/Paris"},
                        "email": {"sender": "Flash Info <alertes@example.org>"}}, tmp_path)
    r = Renderer(cfg)
    item = seed_item(**ARABIC_ITEM) if lang == "ar" else seed_item()
    out = {"alert": r.email_alert(item, lang, LINKS).html,
           "update": r.email_alert(seed_item(revision=1), lang, LINKS, update=True).html,
           "digest": r.email_digest([item, seed_item(id=2, is_flash=False, label=None)], lang, LINKS, date=DAY).html}
    for kind in ("confirm", "already"):
        mail = build_message(cfg, make_env(cfg), "reader@example.org", lang, kind, "https://news.example/c/T")
        msg = message_from_bytes(mail.data, policy=default)  # the exact bytes that are sent
        assert msg["Content-Language"] == lang
        out[kind] = msg.get_body(("html",)).get_content()
    return out


@pytest.mark.parametrize("lang, direction", [("fr", "ltr"), ("ar", "rtl")])
def test_mails_are_accessible(tmp_path, lang, direction):
    for kind, html in _mails(lang, tmp_path).items():
        a = audit(html)
        assert (a.html_attrs.get("lang"), a.html_attrs.get("dir")) == (lang, direction), kind
        assert all(t.get("role") == "presentation" for t in a.tables), (kind, a.tables)
        assert all("alt" in img for img in a.images), (kind, a.images)
        low = [(text, fg, bg, round(contrast(fg, bg), 2)) for text, fg, bg in a.runs if contrast(fg, bg) < 4.5]
        assert low == [], (kind, low)
        assert len(a.runs) >= 4, kind  # the audit saw the text


def test_the_contrast_check_can_fail():
    """Control: the old footer grey on the page background (4.4:1) is caught, the new one passes."""
    page = '<html lang="fr" dir="ltr"><body style="background: #f3f4f6;"><div style="color: {};">Se désinscrire</div></body></html>'
    assert contrast("#6b7280", "#f3f4f6") < 4.5 and audit(page.format("#6b7280")).runs[0][1:] == ("#6b7280", "#f3f4f6")
    assert contrast("#4b5563", "#f3f4f6") >= 4.5
    assert round(contrast("#000000", "#ffffff"), 1) == 21.0 and round(contrast("#777", "#fff"), 2) == 4.48
