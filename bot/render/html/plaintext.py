"""Feed HTML made safe for email (nh3 allowlist, absolute URLs, no chrome) and turned into plain text."""
from __future__ import annotations

import re
import textwrap
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from urllib.parse import urlsplit

from bot.render.html.allowlist import final_pass, first_pass
from bot.render.html.chrome import Removal, log_removals, remove_chrome
from bot.render.html.dom import BLOCK, Node, parse, serialize
from bot.text import unspaced

# Longer feed HTML is cut before cleaning (nh3 repairs the cut markup): no message shows more,
# and a hostile multi-megabyte item must not stall rendering.
MAX_HTML = 200_000


def _base(url: str | None) -> str | None:
    try:
        parts = urlsplit(url or "")
    except ValueError:
        return None
    return url if parts.scheme in ("http", "https") and parts.netloc else None


def sanitize(html: str | None, base_url: str | None = None, furniture: Iterable[str] = ()) -> str:
    """Allowlist-clean feed HTML: no active content, absolute http(s) URLs, no page chrome.

    furniture: the texts of blocks the item's feed repeats in most items (items.furniture).
    """
    clean, removed = explain(html, base_url, furniture)
    log_removals(removed, base_url)
    return clean


def explain(html: str | None, base_url: str | None = None,
            furniture: Iterable[str] = ()) -> tuple[str, list[Removal]]:
    """sanitize()'s result and what it removed as page chrome, in document order, with the rule for each."""
    if not html or not html.strip():
        return "", []
    clean, removed = _sanitize(html[:MAX_HTML], _base(base_url), frozenset(furniture or ()))
    return clean, list(removed)


# Digests render the same items for every subscriber: clean each article once.
@lru_cache(maxsize=128)
def _sanitize(html: str, base: str | None, furniture: frozenset[str]) -> tuple[str, tuple[Removal, ...]]:
    tree = parse(first_pass(html, base))
    removed = remove_chrome(tree, furniture, base)
    return final_pass(serialize(tree)), tuple(removed)


@dataclass
class Para:
    """One paragraph of plain text: hard lines plus the prefixes added by lists and quotes."""

    lines: list[str]
    first: str = ""
    rest: str = ""
    pre: bool = False
    tight: bool = False  # joined to the previous paragraph by a single newline (list items)


@dataclass
class _Conv:
    refs: dict[str, int] = field(default_factory=dict)
    with_refs: bool = True

    def blocks(self, node: Node, pre: bool = False) -> list[Para]:
        out: list[Para] = []
        inline: list[str] = []

        def flush() -> None:
            para = self._para("".join(inline), pre)
            inline.clear()
            if para:
                out.append(para)

        for c in node.children:
            if isinstance(c, str) or (c.tag not in BLOCK):
                inline.append(self.inline(c, pre))
            else:
                flush()
                out.extend(self.block(c, pre))
        flush()
        return out

    @staticmethod
    def _para(text: str, pre: bool) -> Para | None:
        text = _place_refs(text)
        if pre:
            lines = text.strip("\n").split("\n")
            return Para(lines, pre=True) if text.strip() else None
        lines = [ln.strip() for ln in text.split("\n")]
        while lines and not lines[-1]:
            lines.pop()
        while lines and not lines[0]:
            lines.pop(0)
        return Para(lines) if lines else None

    def inline(self, c: Node | str, pre: bool) -> str:
        if isinstance(c, str):
            return c if pre else re.sub(r"[ \t\r\n\f\v]+", " ", c)
        if c.tag == "br":
            return "\n"
        if c.tag == "img":
            alt = " ".join(c.attrs.get("alt", "").split())
            return f"[{alt}]" if alt else ""
        inner = "".join(self.inline(k, pre) for k in c.children)
        if c.tag == "a" and self.with_refs:
            return inner + self._ref(c.attrs.get("href", ""), inner)
        return inner

    def _ref(self, href: str, text: str) -> str:
        shown = " ".join(text.split())
        if not href or not shown:
            return f" {href}" if href and not shown else ""
        bare = href.split("://", 1)[-1].removeprefix("mailto:").rstrip("/")
        if shown.rstrip("/") in (href.rstrip("/"), bare):
            return ""  # the link text is the URL already
        n = self.refs.setdefault(href, len(self.refs) + 1)
        return f"{_REF_OPEN}[{n}]{_REF_CLOSE}"

    def block(self, c: Node, pre: bool) -> list[Para]:
        tag = c.tag
        if tag == "hr":
            return [Para(["* * *"])]
        if tag in ("ul", "ol"):
            return self._list(c, pre)
        if tag == "tr":
            cells = [" ".join(_place_refs(self.inline(k, pre)).split()) for k in c.children if isinstance(k, Node)]
            cells = [x for x in cells if x]
            return [Para([" | ".join(cells)], tight=True)] if cells else []
        paras = self.blocks(c, pre or tag == "pre")
        if tag == "table" and paras:
            paras[0].tight = False  # rows are lines of one paragraph, apart from the text before
        if tag == "blockquote":
            for p in paras:
                p.first, p.rest = "> " + p.first, "> " + p.rest
        elif tag in ("h1", "h2") and len(paras) == 1 and not paras[0].pre:
            width = min(max(len(x) for x in paras[0].lines), 72)
            paras[0].lines.append(("=" if tag == "h1" else "-") * width)
        elif tag == "dd":
            for p in paras:
                p.first, p.rest = "    " + p.first, "    " + p.rest
        return paras

    def _list(self, c: Node, pre: bool) -> list[Para]:
        out: list[Para] = []
        start = c.attrs.get("start", "1")
        n = int(start) if start.isdigit() else 1
        for li in (k for k in c.children if isinstance(k, Node)):
            paras = self.blocks(li, pre) if li.tag == "li" else self.block(li, pre)
            if not paras:
                continue
            mark = f"{n}. " if c.tag == "ol" else "- "
            n += 1
            pad = " " * len(mark)
            for i, p in enumerate(paras):
                p.first = (mark if i == 0 else pad) + p.first
                p.rest = pad + p.rest
                p.tight = i == 0 and bool(out)
            out.extend(paras)
        return out


# French spacing: never wrap between « and the word after it, or before » : ; ? !
_GLUE = re.compile(r"(?<=«) | (?=[»:;?!])")
_GLUE_CHAR = "\ue000"  # a private-use stand-in for the glued space while wrapping
# A link reference while a paragraph is assembled: where it attaches to its word, and where it ends.
_REF_OPEN, _REF_CLOSE = "\ue001", "\ue002"
_REFS = f"((?:{_REF_OPEN}\\[\\d+\\]{_REF_CLOSE})+)"
_SPACED_WORD = r"[^\W_]"  # a letter or digit of a script written with spaces (checked against unspaced())


def _starts_spaced_word(text: str) -> bool:
    return bool(text) and re.match(_SPACED_WORD, text) is not None and not unspaced(text[0])


def _place_refs(text: str) -> str:
    """References on the word they belong to, glued to it, and followed by a space before a word."""
    if _REF_OPEN not in text:
        return text
    # Spaces ending the link text go after its reference: "Tumblr [5] for", not "Tumblr  [5]for".
    text = re.sub(r"(\s+)" + _REFS, r"\2\1", text)

    # A link that ends inside a word (alternativ<a>e</a>… or R<a>elay</a>) refers from the word's end.
    def after_word(m: re.Match) -> str:
        rest = m.group(2)
        if unspaced(rest[0]) or (m.start() > 0 and unspaced(text[m.start() - 1])):
            return m.group(0)
        return rest + m.group(1)

    text = re.sub(r"(?<=[^\W_])" + _REFS + r"([^\W_]+)", after_word, text).replace(_REF_OPEN, _GLUE_CHAR)
    # A reference is followed by a space (or punctuation), never glued to the next word.
    pieces = text.split(_REF_CLOSE)
    return "".join(p + (" " if i < len(pieces) - 1 and _starts_spaced_word(pieces[i + 1]) else "")
                   for i, p in enumerate(pieces))


def _wrap(p: Para, width: int) -> str:
    if not p.pre and width > 0:
        p = Para([_GLUE.sub(_GLUE_CHAR, x) for x in p.lines], p.first, p.rest, p.pre, p.tight)
    return _wrap_lines(p, width).replace(_GLUE_CHAR, " ")


def _wrap_lines(p: Para, width: int) -> str:
    lines: list[str] = []
    for i, line in enumerate(p.lines):
        lead = p.first if i == 0 else p.rest
        if p.pre or width <= 0 or not line:
            lines.append((lead + line).rstrip() if line else lead.rstrip())
            continue
        # Long words (URLs) are never broken; they overflow the line instead.
        lines.extend(textwrap.wrap(line, width=max(width, len(lead) + 20), initial_indent=lead,
                                   subsequent_indent=p.rest, break_long_words=False,
                                   break_on_hyphens=False) or [lead.rstrip()])
    return "\n".join(lines)


def _join(paras: list[Para], width: int) -> str:
    out: list[str] = []
    prev: Para | None = None
    for p in paras:
        if prev is not None:
            if p.tight:
                out.append("\n")
            else:
                quote = re.match(r"^(?:> )*", p.first).group(0) if prev.rest.startswith(">") else ""
                out.append("\n" + quote.rstrip() + "\n")
        out.append(_wrap(p, width))
        prev = p
    return "".join(out)


def to_text(html: str | None, base_url: str | None = None, width: int = 72, refs: bool = True,
            furniture: Iterable[str] = ()) -> str:
    """Plain text keeping every word (link text stays; URLs listed as [n] references at the end)."""
    conv = _Conv(with_refs=refs)
    body = _join(conv.blocks(parse(sanitize(html, base_url, furniture))), width)
    if conv.refs:
        body += "\n\n" + "\n".join(f"[{n}] {url}" for url, n in conv.refs.items())
    return body.strip("\n")


def paragraphs(html: str | None, base_url: str | None = None) -> list[str]:
    """The text paragraphs of the HTML, unwrapped, without link references."""
    conv = _Conv(with_refs=False)
    return [" ".join(x for x in p.lines if x) if not p.pre else "\n".join(p.lines)
            for p in conv.blocks(parse(sanitize(html, base_url)))]


def cut_words(text: str, n: int, ellipsis: str = "…") -> str:
    """At most n characters, cut at a word boundary, with an ellipsis when something was cut."""
    if len(text) <= n:
        return text
    room = max(n - len(ellipsis), 1)
    head = text[:room + 1]
    cut = head.rsplit(None, 1)[0] if " " in head.strip() else text[:room]
    return cut[:room].rstrip(" ,;:.-–—(«\"'") + ellipsis


@lru_cache(maxsize=512)
def lead(html: str | None, n: int = 300, base_url: str | None = None) -> str:
    """A short plain-text lead: the first whole paragraphs fitting in n characters (else one cut)."""
    out: list[str] = []
    size = 0
    for p in paragraphs(html, base_url):
        if out and size + len(p) + 2 > n:
            break
        out.append(p)
        size += len(p) + 2
    text = "\n\n".join(out)
    return cut_words(text, n)


def lead_html(clean_html: str, n: int) -> tuple[str, bool]:
    """The first top-level blocks of sanitized HTML up to about n text characters; (html, was_cut)."""
    root = parse(clean_html)
    while len([c for c in root.children if isinstance(c, Node)]) == 1 and not any(
            isinstance(c, str) and c.strip() for c in root.children):
        only = next(c for c in root.children if isinstance(c, Node))
        if only.tag not in ("div", "span"):
            break
        root = only
    kept, size = [], 0
    for c in root.children:
        length = len(c if isinstance(c, str) else c.text())
        if kept and size + length > n:
            return "".join(serialize(k) for k in kept), True
        kept.append(c)
        size += length
    return clean_html, False
