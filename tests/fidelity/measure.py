"""Content fidelity on the labelled corpus: the article's words kept in order, the marked chrome kept out.

Independent of the code under test: visible text comes from the standard library's HTMLParser, and
the chrome is what manifest.json marks by hand. Per item and per output (the mail's text part, its
HTML part, the Telegram post):

- expected words: every visible word of the item's HTML (as the feed gives it) outside the marked
  chrome, in order; kept: those found in order in the output (difflib alignment). A mail or a post
  cut for length is measured on the part it shows (up to its last article word).
- a chrome block reaches an output when its words appear there, contiguous, more often than in
  the article's own words; a chrome URL reaches it when the URL is in it at all.
- precision/recall of the chrome removal, in words: a true positive is a chrome word kept out, a
  false positive an article word lost, a false negative a chrome word that got through.
"""
from __future__ import annotations

import difflib
import html
import json
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

HERE = Path(__file__).parent
FEEDS = HERE / "feeds"
MANIFEST = HERE / "manifest.json"
# Never shown by a browser (fallback content of embeds included).
HIDDEN = {"script", "style", "noscript", "template", "head", "title", "iframe", "object", "embed", "applet",
          "svg", "math", "audio", "video", "canvas", "frameset", "frame", "noembed", "noframes"}
# Boundaries between words when the page is laid out (an image separates the text around it).
BREAKS = {"address", "article", "aside", "blockquote", "br", "caption", "center", "dd", "details", "div", "dl",
          "dt", "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6",
          "header", "hr", "img", "li", "main", "nav", "ol", "p", "pre", "section", "summary", "table",
          "tbody", "td", "tfoot", "th", "thead", "tr", "ul", "button", "select", "textarea", "input"}
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source", "track", "wbr"}
# A word: a run of letters/digits, or one character of a script written without spaces.
_UNSPACED = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u0e00-\u0eff\u1780-\u17ff\u1000-\u109f"
WORD = re.compile(f"[{_UNSPACED}]|[^\\W_{_UNSPACED}]+")


def tokens(text: str) -> list[str]:
    """The words of a text, case-folded."""
    return [w.casefold() for w in WORD.findall(text)]


class _Visible(HTMLParser):
    """Visible text of an HTML fragment; with `inside`, only the text within the element of that class."""

    def __init__(self, inside: str | None = None) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.hidden: list[str] = []
        self.inside, self.depth, self.open = inside, 0, False

    def handle_starttag(self, tag, attrs):
        if self.inside and not self.open and self.inside in (dict(attrs).get("class") or "").split():
            self.open, self.depth = True, 0
        if self.open and tag not in VOID:
            self.depth += 1
        if tag in HIDDEN and tag not in VOID:
            self.hidden.append(tag)
        if tag in BREAKS:
            self.parts.append(" ")

    def handle_endtag(self, tag):
        if self.hidden and self.hidden[-1] == tag:
            self.hidden.pop()
        if tag in BREAKS:
            self.parts.append(" ")
        if self.open and tag not in VOID:
            self.depth -= 1
            if self.depth == 0:
                self.open, self.inside = False, "\0done"

    def handle_data(self, data):
        if not self.hidden and (self.inside is None or self.open):
            self.parts.append(data)


def visible_text(fragment: str, inside: str | None = None) -> str:
    """The text a reader sees in the HTML, blocks apart, whitespace collapsed."""
    p = _Visible(inside)
    p.feed(fragment or "")
    p.close()
    return " ".join("".join(p.parts).split())


@dataclass
class Item:
    """One labelled corpus item: the feed entry and its hand-marked chrome."""

    id: str
    feed: str
    key: str
    platform: str
    chrome: list[dict]
    note: str = ""
    entry: object = None  # the parsed bot.models.Item
    article: list[str] = field(default_factory=list)  # expected words
    blocks: list[list[str]] = field(default_factory=list)  # words of each marked chrome text block
    urls: list[str] = field(default_factory=list)  # marked chrome URLs (pixels, icon share buttons)


def load() -> tuple[dict, list[Item]]:
    """The manifest's feeds and items, each item parsed from its feed and split into article and chrome."""
    from bot.ingest.parse import parse_feed
    from bot.models import Item as ModelItem

    manifest = json.loads(MANIFEST.read_text(encoding="utf-8"))
    parsed: dict[str, dict] = {}
    out = []
    for raw in manifest["items"]:
        feed = raw["feed"]
        if feed not in parsed and feed in manifest.get("pages", {}):
            page = manifest["pages"][feed]  # an article page's HTML, as a feed would carry it (the seed)
            html_text = (HERE / page["path"]).read_text(encoding="utf-8")
            parsed[feed] = {page["link"]: ModelItem(key=page["link"], title="", link=page["link"], content_html=html_text)}
        elif feed not in parsed:
            result = parse_feed((FEEDS / feed).read_bytes(), {}, manifest["feeds"][feed].get("url"))
            parsed[feed] = {i.key: i for i in result.items}
        source = manifest["feeds"].get(feed) or manifest["pages"][feed]
        item = Item(raw["id"], feed, raw["key"], source["platform"], raw.get("chrome", []), raw.get("note", ""))
        item.entry = parsed[feed][raw["key"]]
        _split(item)
        out.append(item)
    return manifest, out


def _split(item: Item) -> None:
    """Cut every marked chrome text out of the item's visible text (in order); the rest is the article."""
    entry = item.entry
    text = visible_text(entry.content_html or entry.summary_html)
    pos = 0
    kept: list[str] = []
    for mark in item.chrome:
        if "url" in mark:
            source = entry.content_html or entry.summary_html
            if mark["url"] not in html.unescape(source):
                raise AssertionError(f"{item.id}: marked chrome URL {mark['url']!r} is not in the item")
            item.urls.append(mark["url"])
            continue
        needle = " ".join(mark["text"].split())
        at = text.find(needle, pos)
        if at < 0:
            raise AssertionError(f"{item.id}: marked chrome text not found (in order): {needle[:80]!r}")
        kept.append(text[pos:at])
        item.blocks.append(tokens(needle))
        pos = at + len(needle)
    kept.append(text[pos:])
    item.article = tokens(" ".join(kept))


def kept_in_order(expected: list[str], got: list[str], cut: bool) -> tuple[int, int]:
    """(article words the output shows in order, article words it should show): a cut output up to its last one."""
    matcher = difflib.SequenceMatcher(None, expected, got, autojunk=False)
    matched = [i for a, _, n in matcher.get_matching_blocks() for i in range(a, a + n)]
    if not matched:
        return 0, (0 if cut else len(expected))
    shown = matched[-1] + 1 if cut else len(expected)
    return len(matched), shown


def occurrences(words: list[str], needle: list[str]) -> int:
    """How many times needle appears in words, contiguous but for link reference numbers ("story [3] at")."""
    if not needle:
        return 0
    found = 0
    for i in range(len(words)):
        j, k = i, 0
        while k < len(needle) and j < len(words):
            if words[j] == needle[k]:
                k += 1
            elif not (words[j].isdigit() and k > 0):
                break
            j += 1
        found += k == len(needle)
    return found


def leaked(item: Item, got: list[str], raw: str) -> list[str]:
    """The marked chrome that reaches an output (texts by their first words, URLs whole)."""
    out = [" ".join(b[:8]) for b in item.blocks if occurrences(got, b) > occurrences(item.article, b)]
    return out + [u for u in item.urls if u in html.unescape(raw)]


@dataclass
class Output:
    """One output of one item: how many article words it should show and shows in order, what chrome got in."""

    name: str
    expected: int
    kept: int
    leaked: list[str]
    chrome_words: int
    leaked_words: int
    missing: list[str] = field(default_factory=list)  # a few lost words, to say where


def _measure(item: Item, name: str, text: str, raw: str, cut: bool) -> Output:
    got = tokens(text)
    kept, shown = kept_in_order(item.article, got, cut)
    leaks = leaked(item, got, raw)
    chrome = sum(len(b) for b in item.blocks) + len(item.urls)
    leaked_words = sum(len(b) for b in item.blocks if " ".join(b[:8]) in leaks) + sum(1 for u in item.urls if u in leaks)
    missing = []
    if kept < shown:
        matcher = difflib.SequenceMatcher(None, item.article[:shown], got, autojunk=False)
        hit = {i for a, _, n in matcher.get_matching_blocks() for i in range(a, a + n)}
        missing = [item.article[i] for i in range(shown) if i not in hit][:12]
    return Output(name, shown, min(kept, shown), leaks, chrome, leaked_words, missing)


def evaluate(renderer, item: Item) -> list[Output]:
    """The item rendered as the alert mail (text and HTML parts) and the Telegram post, each measured."""
    from bot.render.html import telegram as tg
    from bot.render.html.plaintext import lead_html, to_text
    from bot.render.renderer import ALERT_MAX_CHARS

    links = {"unsubscribe": "https://flash.example/u/TOKEN", "preferences": "https://flash.example/p/TOKEN"}
    mail = renderer.email_alert(item.entry, None, links)
    post = renderer.telegram_post(item.entry)
    view = renderer.item_view(item.entry, renderer.cfg.bot.language)
    body, mail_cut = lead_html(view["body_clean"], ALERT_MAX_CHARS) if view["body_clean"] else ("", False)
    body_text = to_text(body)
    # The mail template collapses runs of blank lines; the article text is otherwise there as is.
    assert re.sub(r"\n{3,}", "\n\n", body_text).strip() in mail.text, f"{item.id}: the text part does not hold the article text"
    article_text = re.split(r"\n\n\[1\] ", body_text)[0]  # the reference list is URLs, not the article
    full_post = tg.from_html(view["body_clean"])
    post_body = tg.visible_text(post)
    return [
        _measure(item, "mail text part", article_text, mail.text, mail_cut),
        _measure(item, "mail HTML part", visible_text(mail.html, inside="body"), mail.html, mail_cut),
        _measure(item, "Telegram post", post_body, post, full_post not in post),
    ]
