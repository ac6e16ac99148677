"""Telegram's HTML subset: conversion from sanitized HTML, normalization, and the 4096-unit cut."""
from __future__ import annotations

import re
from html.parser import HTMLParser

from bot.render.html.dom import BLOCK, Node, parse

LIMIT = 4096  # Telegram's message length, counted in UTF-16 code units after entity parsing
CANON = {"b": "b", "strong": "b", "i": "i", "em": "i", "u": "u", "ins": "u", "s": "s",
         "strike": "s", "del": "s", "a": "a", "code": "code", "pre": "pre",
         "blockquote": "blockquote"}
HREF_SCHEMES = ("http://", "https://", "mailto:", "tg://")
ELLIPSIS = "…"

Token = tuple  # ("t", text) | ("s", tag, href or None) | ("e", tag)


def escape_text(s: str) -> str:
    """Escape text for Telegram HTML: & < > (the only characters it requires)."""
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def escape_attr(s: str) -> str:
    """Escape an attribute value for a double-quoted Telegram href."""
    return escape_text(s).replace('"', "&quot;")


def utf16_len(s: str) -> int:
    """Length as Telegram counts it: UTF-16 code units (astral characters such as emoji count 2)."""
    return len(s) + sum(1 for ch in s if ord(ch) > 0xFFFF)


def _can_open(tag: str, stack: list[str]) -> bool:
    # Telegram's nesting rules: nothing inside pre/code; b/i/u/s go anywhere else; a link holds
    # no link, code, pre or quote; quotes do not nest. Repeating an open style adds nothing.
    if any(t in ("pre", "code") for t in stack) or tag in stack:
        return False
    return not (tag in ("a", "code", "pre", "blockquote") and "a" in stack)


class _Tokenizer(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[Token] = []
        self.stack: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style"):
            self.skip += 1
        elif tag == "br":
            self.handle_data("\n")
        elif (canon := CANON.get(tag)) and _can_open(canon, self.stack):
            href = None
            if canon == "a":
                href = (dict(attrs).get("href") or "").strip()
                if not href.lower().startswith(HREF_SCHEMES):
                    return
            self.stack.append(canon)
            self.out.append(("s", canon, href))

    def handle_startendtag(self, tag, attrs):
        if tag == "br":
            self.handle_data("\n")

    def handle_endtag(self, tag):
        if tag in ("script", "style"):
            self.skip = max(0, self.skip - 1)
            return
        canon = CANON.get(tag)
        if canon in self.stack:
            while self.stack:
                top = self.stack.pop()
                self.out.append(("e", top))
                if top == canon:
                    break

    def handle_data(self, data):
        if self.skip or not data:
            return
        if self.out and self.out[-1][0] == "t":
            self.out[-1] = ("t", self.out[-1][1] + data)
        else:
            self.out.append(("t", data))

    def finish(self) -> list[Token]:
        self.close()
        while self.stack:
            self.out.append(("e", self.stack.pop()))
        return _drop_empty(self.out)


def _drop_empty(tokens: list[Token]) -> list[Token]:
    out: list[Token] = []
    for tok in tokens:
        if tok[0] == "e" and out and out[-1][0] == "s" and out[-1][1] == tok[1]:
            out.pop()  # an empty entity: Telegram does not need it
        else:
            out.append(tok)
    return out


def tokenize(html: str) -> list[Token]:
    """Parse (possibly sloppy) HTML into balanced Telegram tokens; other tags keep their text."""
    t = _Tokenizer()
    t.feed(html or "")
    return t.finish()


def serialize(tokens: list[Token]) -> str:
    """Tokens back to Telegram HTML with everything escaped."""
    parts = []
    for tok in tokens:
        if tok[0] == "t":
            parts.append(escape_text(tok[1]))
        elif tok[0] == "s":
            parts.append(f'<a href="{escape_attr(tok[2])}">' if tok[1] == "a" else f"<{tok[1]}>")
        else:
            parts.append(f"</{tok[1]}>")
    return "".join(parts)


def normalize(html: str) -> str:
    """Any HTML to valid Telegram HTML: allowed tags only, balanced, all text escaped."""
    return serialize(tokenize(html))


def visible_text(html: str) -> str:
    """The text Telegram shows after parsing the entities."""
    return "".join(t[1] for t in tokenize(html) if t[0] == "t")


def visible_len(html: str) -> int:
    """Message length as Telegram counts it (UTF-16 units of the visible text)."""
    return utf16_len(visible_text(html))


def _prefix_units(s: str, units: int) -> str:
    n = 0
    for i, ch in enumerate(s):
        n += 2 if ord(ch) > 0xFFFF else 1
        if n > units:
            return s[:i]
    return s


def cut(html: str, limit: int = LIMIT, tail: str = "") -> str:
    """Fit HTML into `limit` UTF-16 units: cut at a word boundary, add "…" then `tail` (HTML)."""
    tokens = tokenize(html)
    if utf16_len("".join(t[1] for t in tokens if t[0] == "t")) <= limit:
        return serialize(tokens)
    tail_tokens = tokenize(tail)
    budget = limit - utf16_len(ELLIPSIS) - utf16_len("".join(t[1] for t in tail_tokens if t[0] == "t"))
    out: list[Token] = []
    used = 0
    for tok in tokens:
        if tok[0] != "t":
            out.append(tok)
            continue
        size = utf16_len(tok[1])
        if used + size <= budget:
            out.append(tok)
            used += size
            continue
        piece = _prefix_units(tok[1], max(budget - used, 0))
        following = tok[1][len(piece):len(piece) + 1]
        if following and not following.isspace():
            # Mid-word: back off to the last space of this piece; a text without any space
            # at all (one endless word) is cut hard rather than dropped.
            backed = re.sub(r"\S*$", "", piece)
            if backed.strip() or any(t[0] == "t" and t[1].strip() for t in out):
                piece = backed
        out.append(("t", piece))
        break
    out = _trim_end(out)
    stack = [t[1] for t in out if t[0] == "s"]
    for t in out:
        if t[0] == "e":
            stack.remove(t[1])
    closing = [("e", tag) for tag in reversed(stack)]
    return serialize(_drop_empty(out + closing) + [("t", ELLIPSIS)] + tail_tokens)


def _trim_end(tokens: list[Token]) -> list[Token]:
    out = list(tokens)
    while out:
        last = out[-1]
        if last[0] == "t":
            text = last[1].rstrip(" \t\n,;:-–—(«\"'")
            if text:
                out[-1] = ("t", text)
                return out
            out.pop()
        elif last[0] == "s":
            out.pop()  # an entity opened right at the cut would be empty
        else:
            return out
    return out


class _Conv:
    """Sanitized HTML tree → Telegram HTML paragraphs."""

    def blocks(self, node: Node, stack: tuple[str, ...]) -> list[tuple[str, bool]]:
        out: list[tuple[str, bool]] = []
        inline: list[str] = []

        def flush() -> None:
            text = re.sub(r"[ \t]*\n[ \t]*", "\n", "".join(inline)).strip(" \n")
            inline.clear()
            if text:
                out.append((text, False))

        for c in node.children:
            if isinstance(c, str) or c.tag not in BLOCK:
                inline.append(self.inline(c, stack))
            else:
                flush()
                out.extend(self.block(c, stack))
        flush()
        return out

    def inline(self, c: Node | str, stack: tuple[str, ...]) -> str:
        if isinstance(c, str):
            return escape_text(c if "pre" in stack else re.sub(r"[ \t\r\n\f\v]+", " ", c))
        if c.tag == "br":
            return "\n"
        if c.tag == "img":
            return ""
        tag = CANON.get(c.tag)
        inner_stack = stack + (tag,) if tag and _can_open(tag, list(stack)) else stack
        inner = "".join(self.inline(k, inner_stack) for k in c.children)
        if inner_stack is stack or not inner.strip():
            return inner
        if tag == "a":
            href = c.attrs.get("href", "")
            if not href.lower().startswith(HREF_SCHEMES):
                return inner
            return f'<a href="{escape_attr(href)}">{inner}</a>'
        return f"<{tag}>{inner}</{tag}>"

    def block(self, c: Node, stack: tuple[str, ...]) -> list[tuple[str, bool]]:
        if c.tag in ("ul", "ol"):
            return self._list(c, stack)
        if c.tag == "hr":
            return []
        if c.tag == "tr":
            cells = [self.inline(k, stack).strip() for k in c.children if isinstance(k, Node)]
            row = " | ".join(x for x in cells if x)
            return [(row, True)] if row else []
        if c.tag == "pre" and _can_open("pre", list(stack)):
            text = escape_text(c.text().strip("\n"))
            return [(f"<pre>{text}</pre>", False)] if text.strip() else []
        if c.tag == "blockquote" and _can_open("blockquote", list(stack)):
            paras = self.blocks(c, stack + ("blockquote",))
            inner = _join(paras)
            return [(f"<blockquote>{inner}</blockquote>", False)] if inner else []
        paras = self.blocks(c, stack)
        if c.tag == "table" and paras:
            paras[0] = (paras[0][0], False)  # rows are lines of one paragraph, apart from the text before
        if c.tag in ("h1", "h2", "h3", "h4", "h5", "h6") and "b" not in stack:
            paras = [(f"<b>{p}</b>", tight) for p, tight in paras]
        return paras

    def _list(self, c: Node, stack: tuple[str, ...]) -> list[tuple[str, bool]]:
        out: list[tuple[str, bool]] = []
        start = c.attrs.get("start", "1")
        n = int(start) if start.isdigit() else 1
        for li in (k for k in c.children if isinstance(k, Node)):
            text = _join(self.blocks(li, stack)).replace("\n\n", "\n")
            if not text:
                continue
            mark = f"{n}. " if c.tag == "ol" else "• "
            n += 1
            out.append((mark + text, bool(out)))
        return out


def _join(paras: list[tuple[str, bool]]) -> str:
    parts: list[str] = []
    for i, (text, tight) in enumerate(paras):
        if i:
            parts.append("\n" if tight else "\n\n")
        parts.append(text)
    return "".join(parts)


def from_html(clean_html: str) -> str:
    """Sanitized HTML → Telegram HTML: allowed tags kept, others unwrapped, blocks as blank lines."""
    return normalize(_join(_Conv().blocks(parse(clean_html or ""), ())))
