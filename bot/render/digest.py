"""Digest emails assembled from per-item fragments rendered (and CSS-inlined) once.

When every subscriber's item list is different, each digest is a different page; rendering each
from scratch (item views, Jinja2, text wrapping, CSS inlining of the whole page) is what made the
worst case slow (figures in BENCHMARKS.md).
Here an item's entry is rendered once per language into an HTML fragment, its CSS-inlined form and
a text fragment; a page shell (title, intro, footer) is rendered and inlined once per language,
day, item count and links; a digest is then string joins. The whole-page path stays for operator
template overrides and as the reference the fast path is tested against (byte-identical output).
"""
from __future__ import annotations

import re
import secrets
import threading
from collections import OrderedDict
from collections.abc import Mapping
from datetime import date, datetime, timezone
from operator import attrgetter
from typing import Any, Callable, NamedTuple

from markupsafe import Markup

from bot import i18n

# Templates whose override (bot.templates folder) disables the fragment path: the page must keep
# the shape the fragments assume (one `body` holding sections and entries, CSS from the base).
DIGEST_TEMPLATES = ("email_base.html", "email_digest.html", "email_digest.txt", "email_footer.txt",
                    "email_digest_section.html", "email_digest_section.txt",
                    "email_digest_entry.html", "email_digest_entry.txt")
# Every field item_view reads. With an id and a content_hash (which covers title, summary and
# content) the big HTML fields are left out of the cache key.
_SMALL = ("id", "revision", "content_hash", "link", "label", "headline", "published_at",
          "updated_at", "is_flash", "author", "source_name")
_BIG = ("title", "summary_html", "content_html")
ENTRY_CACHE = 4096  # (item, language) entries kept: a day of items in every language, many times
SHELL_CACHE = 256  # (language, day, item count, links) page shells kept
# Link values that neither Jinja2's escaping nor the HTML serializer changes: such links can be
# put into an already rendered shell by plain replacement (compose uses new placeholders per build).
_PLAIN_LINK = re.compile(r"[A-Za-z0-9_:/.%@?=#+~,;!*()$-]*")
_EPOCH = datetime.min.replace(tzinfo=timezone.utc)
_SORT_KEY = attrgetter("sort_key")


def collapse_blank_lines(text: str) -> str:
    """At most one blank line in a row: re.sub(r"\n{3,}", "\n\n", text), faster on a digest
    (each pass shortens every run of 3+ newlines by a third and never below two)."""
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text


class Joined(str):
    """A string that remembers the parts it was joined from (each a shared, cached fragment), so the
    MIME build can encode each part once for every digest holding it (bot/delivery/mime.py)."""

    parts: tuple[str, ...]

    @classmethod
    def of(cls, parts: list[str]) -> "Joined":
        """"".join(parts), keeping the parts."""
        out = cls("".join(parts))
        out.parts = tuple(parts)
        return out


class Fragment:
    """One rendered part of a digest body (a section heading or an entry), in both formats."""

    __slots__ = ("html", "text", "inlined", "collapsed", "lead", "trail")

    def __init__(self, html: str, text: str) -> None:
        self.html, self.text = html, text
        self.inlined: str | None = None  # the CSS-inlined HTML, computed on first fast use
        self.collapsed = collapse_blank_lines(text)  # the text part's own blank lines, collapsed once
        self.lead, self.trail = _newlines(self.collapsed, False), _newlines(self.collapsed, True)


class Entry(NamedTuple):
    """An item prepared for digests in one language."""

    view: dict[str, Any]
    group: str | None  # the section it goes under; None for Flash Info
    sort_key: datetime
    fragment: Fragment


class Shell(NamedTuple):
    """A digest page around a body token: raw HTML, inlined HTML split at the body, text, subject,
    and the link tokens standing for the links ({} when the real links are in the page)."""

    html: str
    inlined: tuple[str, str] | None
    text: str
    subject: str
    tokens: dict[str, str]


class _LRU(OrderedDict):
    """A small bounded least-recently-used map."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def hit(self, key: Any) -> Any:
        value = self.get(key)
        if value is not None:
            self.move_to_end(key)
        return value

    def put(self, key: Any, value: Any) -> Any:
        self[key] = value
        if len(self) > self.size:
            self.popitem(last=False)
        return value


def item_key(item: Any, lang: str) -> tuple | None:
    """A hashable key for everything that shapes an item's entry, or None if it has none."""
    get = item.get if isinstance(item, (dict, Mapping)) else lambda name: getattr(item, name, None)
    fields = tuple(map(get, _SMALL))
    if fields[0] is None or not fields[2]:  # no id or content hash: the content itself is the key
        fields += tuple(map(get, _BIG))
    categories = get("categories")
    key = (lang, fields, tuple(categories) if isinstance(categories, list) else categories)
    try:
        hash(key)
    except TypeError:  # odd field values (a dict, a list inside a list): render without caching
        return None
    return key


class Digests:
    """Builds digests for a Renderer: `render(items, lang, links, day) -> (subject, html, text)`."""

    def __init__(self, renderer: Any, fast: bool, clean_subject: Callable[[str], str]) -> None:
        self.r = renderer
        self.fast = fast
        self.clean_subject = clean_subject  # one line, cut: done once per shell, not per digest
        self._hex = token = secrets.token_hex(8)
        self.token = f"FLASHBOTBODY{token}"  # alphanumeric: HTML parsing and inlining keep it as is
        self._marks = (f"FLASHBOTFROM{token}", f"FLASHBOTTO{token}")
        self.entries = _LRU(ENTRY_CACHE)
        self._by_object: dict[tuple[int, str], tuple[Any, tuple, Entry]] = {}  # (id, lang) → (item, marks, entry)
        self.headings = _LRU(ENTRY_CACHE)
        self.shells = _LRU(SHELL_CACHE)
        self._lock = threading.Lock()  # the caches are OrderedDicts: one digest at a time

    # --- parts ---------------------------------------------------------------------------------
    def _fragment(self, name: str, ctx: dict[str, Any]) -> Fragment:
        html = self.r.env.get_template(f"{name}.html").render(ctx)
        return Fragment(html, self.r.env.get_template(f"{name}.txt").render(ctx))

    def entry(self, item: Any, lang: str) -> Entry:
        """The item's entry in this language (cached per item content and language)."""
        # The same item mapping comes back in every digest of a batch: its key is kept by identity,
        # checked against the fields any change of content updates (revision and content hash).
        mark = (id(item), lang)
        known = self._by_object.get(mark)
        get = item.get if isinstance(item, (dict, Mapping)) else lambda name: getattr(item, name, None)
        if known is not None and known[0] is item and known[1] == (get("revision"), get("content_hash")):
            return known[2]
        entry = self._entry(item, lang)
        if len(self._by_object) >= ENTRY_CACHE:
            self._by_object.clear()
        self._by_object[mark] = (item, (get("revision"), get("content_hash")), entry)
        return entry

    def _entry(self, item: Any, lang: str) -> Entry:
        key = item_key(item, lang)
        hit = self.entries.hit(key) if key else None
        if hit:
            return hit
        view = self.r.digest_view(item, lang)
        fragment = self._fragment("email_digest_entry", {**self.r._common(lang, None), "v": view})
        other = i18n.translator(lang).gettext("other")
        group = None if view["badge"] else (view["categories"] or [view["source"] or other])[0]
        entry = Entry(view, group, view["sort_key"] or _EPOCH, fragment)
        return self.entries.put(key, entry) if key else entry

    def heading(self, name: str, lang: str) -> Fragment:
        """A section heading (cached per name and language)."""
        key = (lang, name)
        return self.headings.hit(key) or self.headings.put(
            key, self._fragment("email_digest_section", {**self.r._common(lang, None), "name": name}))

    def sections(self, items: list[Any], lang: str) -> list[tuple[str, list[Entry]]]:
        """Flash Info first, then one section per category (or source) in order of appearance,
        each newest first."""
        flash: list[Entry] = []
        groups: dict[str, list[Entry]] = {}
        for item in items:
            e = self.entry(item, lang)
            if e.group is None:
                flash.append(e)
            else:
                groups.setdefault(e.group, []).append(e)
        newest_first = lambda entries: sorted(entries, key=_SORT_KEY, reverse=True)  # noqa: E731
        return ([(i18n.translator(lang).gettext("digest_flash"), newest_first(flash))] if flash else []) + \
            [(name, newest_first(entries)) for name, entries in groups.items()]

    def _page(self, lang: str, links: Mapping[str, str], day: date, count: int,
              body: tuple[str, str], sections: list) -> tuple[str, str, str]:
        t = i18n.translator(lang)
        when = i18n.format_day(day, lang)
        ctx = {**self.r._common(lang, links), "count": count, "title": t.gettext("digest_title", date=when),
               "sections": [(name, [e.view for e in entries]) for name, entries in sections]}
        html = self.r.env.get_template("email_digest.html").render({**ctx, "body": Markup(body[0])})
        text = self.r.env.get_template("email_digest.txt").render({**ctx, "body": body[1]})
        return html, text, self.clean_subject(t.gettext("digest_subject", name=self.r.cfg.bot.name, date=when))

    def shell(self, lang: str, links: Mapping[str, str], day: date, count: int) -> Shell:
        """The page around the body token, rendered and CSS-inlined once per key (links as tokens
        when they are plain, so the per-build placeholder links do not defeat the cache)."""
        plain = all(_PLAIN_LINK.fullmatch(v) for v in links.values())
        key = (lang, day, count) if plain else (lang, day, count, tuple(sorted(links.items())))
        hit = self.shells.hit(key)
        if hit:
            return hit
        tokens = {name: f"FLASHBOTLINK{n}X{self._hex}" for n, name in enumerate(links)} if plain else {}
        html, text, subject = self._page(lang, tokens or links, day, count, (self.token, self.token), [])
        inlined = self.r.inline(html)
        parts = inlined.split(self.token)
        ok = len(parts) == 2 and html.count(self.token) == 1 and text.count(self.token) == 1
        return self.shells.put(key, Shell(html, (parts[0], parts[1]) if ok else None, text, subject, tokens))

    def _inlined(self, fragment: Fragment, shell: Shell) -> str | None:
        """The fragment as the whole-page inlining would write it: inlined inside the page."""
        if fragment.inlined is None:
            start, end = self._marks
            out = self.r.inline(shell.html.replace(self.token, start + fragment.html + end))
            if out.count(start) != 1 or out.count(end) != 1:
                return None
            fragment.inlined = out[out.index(start) + len(start):out.index(end)]
        return fragment.inlined

    # --- whole digest --------------------------------------------------------------------------
    def render(self, items: list[Any], lang: str, links: Mapping[str, str], day: date) -> tuple[str, str, str]:
        """(subject, html, text) of one digest (thread-safe)."""
        with self._lock:
            return self._render(items, lang, links, day)

    def _render(self, items: list[Any], lang: str, links: Mapping[str, str], day: date) -> tuple[str, str, str]:
        sections = self.sections(items, lang)
        parts = [f for name, entries in sections for f in (self.heading(name, lang), *(e.fragment for e in entries))]
        if self.fast and parts:
            shell = self.shell(lang, links, day, len(items))
            inlined = [self._inlined(f, shell) for f in parts] if shell.inlined else [None]
            if None not in inlined:
                head, tail, text = shell.inlined[0], shell.inlined[1], shell.text
                for name, token in shell.tokens.items():
                    head, tail, text = (s.replace(token, links[name]) for s in (head, tail, text))
                html = Joined.of([head, *inlined, tail])
                pre, _, post = text.partition(self.token)
                return shell.subject, html, _text(pre, parts, post)
        text_body = "".join(f.text for f in parts)
        html, text, subject = self._page(lang, links, day, len(items), ("".join(f.html for f in parts), text_body), sections)
        return subject, self.r.inline(html), collapse_blank_lines(text).strip() + "\n"


def _newlines(text: str, end: bool) -> int:
    return len(text) - len(text.rstrip("\n") if end else text.lstrip("\n"))


def _text(pre: str, bodies: list[Fragment], post: str) -> str:
    """collapse_blank_lines(pre + "".join(texts) + post).strip() + "\n", kept as its parts (Joined) so the
    MIME build encodes each item's text once: each part's own runs are collapsed already, and a run
    of blank lines across two parts is cut to two newlines at the start of the second."""
    first = collapse_blank_lines(pre).lstrip()
    parts, trail = [first], _newlines(first, True)
    for f in bodies:
        part, extra = f.collapsed, trail + f.lead - 2
        if extra > 0:
            part = part[extra:]
        if not part.strip("\n"):  # a part of blank lines only: its run reaches further; do it whole
            return _whole(pre, bodies, post)
        parts.append(part)
        trail = f.trail
    last = collapse_blank_lines(post).rstrip() + "\n"
    extra = trail + _newlines(last, False) - 2
    last = last[extra:] if extra > 0 else last
    if not first or not last.strip("\n"):
        return _whole(pre, bodies, post)
    return Joined.of([*parts, last])


def _whole(pre: str, bodies: list[Fragment], post: str) -> str:
    return collapse_blank_lines(pre + "".join(f.collapsed for f in bodies) + post).strip() + "\n"
