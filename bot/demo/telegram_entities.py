"""Telegram's `parse_mode=HTML` rules as the Bot API stand-in enforces them.

Modelled on tdlib's `parse_html` (the code behind the real Bot API) and the Bot API's
"Formatting options": same tags, same entity decoding, same error wording. In `strict` mode
(the default) it is deliberately stricter than Telegram where Telegram silently tolerates a
producer's bug: a bare `&` or `>`, an unknown named entity (`&nbsp;`), a non-http(s) link and
entities nested against the documented rules are rejected instead of being posted as-is.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

MAX_LENGTH = 4096  # UTF-16 code units, counted on the text after entity parsing

# tag -> Bot API MessageEntity type
TAGS = {
    "b": "bold", "strong": "bold", "i": "italic", "em": "italic",
    "u": "underline", "ins": "underline", "s": "strikethrough", "strike": "strikethrough",
    "del": "strikethrough", "a": "text_link", "code": "code", "pre": "pre",
    "blockquote": "blockquote", "tg-spoiler": "spoiler", "span": "spoiler",
    "tg-emoji": "custom_emoji",
}
NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
# Entities that cannot sit inside a link or custom emoji (Bot API: "can't contain each other").
OPAQUE = {"code", "pre", "text_link", "custom_emoji"}
URL_SCHEMES = ("http://", "https://", "tg://", "mailto:")

_ENTITY = re.compile(r"&(?:#([0-9]{1,7})|#[xX]([0-9a-fA-F]{1,6})|([a-zA-Z][a-zA-Z0-9]{0,31}));")
_NAME = re.compile(r"[a-zA-Z0-9-]*")
_ATTR_NAME = re.compile(r"[a-zA-Z0-9_-]*")
_UNQUOTED = re.compile(r"[^\s>\"'=<`]*")


class EntityError(ValueError):
    """The text cannot be parsed; str() is Telegram's description after "can't parse entities: "."""


@dataclass
class Parsed:
    """Plain text and Bot API MessageEntity dicts (offsets in UTF-16 code units)."""

    text: str
    entities: list[dict] = field(default_factory=list)


@dataclass
class _Open:
    tag: str
    kind: str
    start: int  # UTF-16 offset in the output text
    attrs: dict
    at: int  # byte offset of the start tag, for messages


def utf16_len(text: str) -> int:
    """Length as Telegram counts it: UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def _decode(src: str, i: int, strict: bool) -> tuple[str, int] | None:
    """Decode the character reference at src[i] == '&'; None means a literal '&'."""
    m = _ENTITY.match(src, i)
    if m is None:
        return None
    dec, hexa, name = m.groups()
    if name is not None:
        if name.lower() in NAMED and name == name.lower():
            return NAMED[name], m.end()
        if strict:
            raise EntityError(f'Unsupported HTML entity "{m.group(0)}" at byte offset {_bytes(src, i)}')
        return None
    cp = int(dec) if dec is not None else int(hexa, 16)
    if cp == 0 or cp > 0x10FFFF or 0xD800 <= cp <= 0xDFFF:
        if strict:
            raise EntityError(f"Invalid character reference at byte offset {_bytes(src, i)}")
        return None
    return chr(cp), m.end()


def _bytes(src: str, i: int) -> int:
    return len(src[:i].encode("utf-8"))


def _attributes(src: str, i: int, tag: str, at: int, strict: bool) -> tuple[dict, int]:
    """Parse `name="value"` pairs up to '>'; return them and the index after '>'."""
    attrs: dict[str, str] = {}
    n = len(src)
    while True:
        while i < n and src[i].isspace():
            i += 1
        if i >= n:
            raise EntityError(f"Unclosed start tag at byte offset {at}")
        if src[i] == ">":
            return attrs, i + 1
        name = _ATTR_NAME.match(src, i).group(0).lower()
        if not name:
            raise EntityError(f'Empty attribute name in the tag "{tag}" at byte offset {at}')
        i += len(name)
        while i < n and src[i].isspace():
            i += 1
        if i < n and src[i] == "=":
            i += 1
            while i < n and src[i].isspace():
                i += 1
            if i < n and src[i] in "\"'":
                end = src.find(src[i], i + 1)
                if end < 0:
                    raise EntityError(f"Unclosed start tag at byte offset {at}")
                raw, i = src[i + 1:end], end + 1
            else:
                raw = _UNQUOTED.match(src, i).group(0)
                i += len(raw)
            attrs[name] = _decode_text(raw, strict)
        else:
            attrs[name] = ""  # boolean attribute, e.g. <blockquote expandable>


def _decode_text(raw: str, strict: bool) -> str:
    """Decode character references inside an attribute value."""
    out, i = [], 0
    while i < len(raw):
        got = _decode(raw, i, strict) if raw[i] == "&" else None
        if got:
            out.append(got[0])
            i = got[1]
        else:
            out.append(raw[i])
            i += 1
    return "".join(out)


def _check_start(tag: str, attrs: dict, stack: list[_Open], at: int, strict: bool) -> None:
    """Attribute and nesting rules for a start tag (Bot API "Formatting options")."""
    if tag == "span" and attrs.get("class") != "tg-spoiler":
        raise EntityError(f'Tag "span" must have class "tg-spoiler" at byte offset {at}')
    if tag == "tg-emoji" and not attrs.get("emoji-id", "").isdigit():
        raise EntityError(f'Expected custom emoji identifier in the tag "tg-emoji" at byte offset {at}')
    if tag == "a" and strict:
        href = attrs.get("href", "")
        if href and not href.lower().startswith(URL_SCHEMES):
            raise EntityError(f'Wrong URL "{href}" in the tag "a" at byte offset {at}')
    if strict and stack:
        _check_nesting(tag, stack, at)


def _check_nesting(tag: str, stack: list[_Open], at: int) -> None:
    """Bot API nesting rules: code/pre hold nothing (but pre > code), no nested blockquote/links."""
    kind, kinds = TAGS[tag], {o.kind for o in stack}
    if kinds & {"code", "pre"}:
        if kind == "code" and stack[-1].kind == "pre":
            return
        blocker = next(o for o in stack if o.kind in ("code", "pre"))
        raise EntityError(f'Entity "{blocker.tag}" can\'t contain entity "{tag}" at byte offset {at}')
    if kind == "blockquote" and "blockquote" in kinds:
        raise EntityError(f"Blockquote entities can't be nested at byte offset {at}")
    if kind in OPAQUE and kinds & {"text_link", "custom_emoji"}:
        blocker = next(o for o in stack if o.kind in ("text_link", "custom_emoji"))
        raise EntityError(f'Entity "{blocker.tag}" can\'t contain entity "{tag}" at byte offset {at}')


def _entity(o: _Open, end: int) -> dict | None:
    """The MessageEntity dict for a closed tag; empty entities vanish as in Telegram."""
    if end <= o.start:
        return None
    ent = {"type": o.kind, "offset": o.start, "length": end - o.start}
    if o.kind == "text_link":
        ent["url"] = o.attrs.get("href", "")
    elif o.kind == "pre" and o.attrs.get("language"):
        ent["language"] = o.attrs["language"]
    elif o.kind == "custom_emoji":
        ent["custom_emoji_id"] = o.attrs["emoji-id"]
    elif o.kind == "blockquote" and "expandable" in o.attrs:
        ent["type"] = "expandable_blockquote"
    return ent


def parse_html(src: str, strict: bool = True) -> Parsed:
    """Parse Telegram HTML into text + entities, raising EntityError like Telegram's 400."""
    out: list[str] = []
    pos = 0  # UTF-16 length of the output so far
    stack: list[_Open] = []
    entities: list[dict] = []
    i, n = 0, len(src)
    while i < n:
        ch = src[i]
        if ch == "&":
            got = _decode(src, i, strict)
            if got is None and strict:
                raise EntityError(f'Character "&" at byte offset {_bytes(src, i)} must be escaped as "&amp;"')
            ch, i = got if got else ("&", i + 1)
        elif ch == ">" and strict:
            raise EntityError(f'Character ">" at byte offset {_bytes(src, i)} must be escaped as "&gt;"')
        elif ch == "<":
            i = _tag(src, i, stack, entities, pos, strict)
            continue
        else:
            i += 1
        out.append(ch)
        pos += utf16_len(ch)
    if stack:
        raise EntityError(f'Can\'t find end tag corresponding to start tag "{stack[-1].tag}"')
    return _trim("".join(out), entities)


def _tag(src: str, i: int, stack: list[_Open], entities: list[dict], pos: int, strict: bool) -> int:
    """Handle the start or end tag at src[i] == '<'; return the index after it."""
    at = _bytes(src, i)
    if src.startswith("</", i):
        name = _NAME.match(src, i + 2).group(0).lower()
        j = i + 2 + len(name)
        while j < len(src) and src[j].isspace():
            j += 1
        if j >= len(src) or src[j] != ">":
            raise EntityError(f"Unclosed end tag at byte offset {at}")
        if not stack:
            raise EntityError(f"Unexpected end tag at byte offset {at}")
        if stack[-1].tag != name:
            raise EntityError(
                f'Unmatched end tag at byte offset {at}, expected "</{stack[-1].tag}>", found "</{name}>"')
        closed = stack.pop()
        ent = _entity(closed, pos)
        if ent and not (closed.kind == "code" and stack and stack[-1].kind == "pre"):  # pre's language
            entities.append(ent)
        return j + 1
    name = _NAME.match(src, i + 1).group(0).lower()
    if i + 1 + len(name) >= len(src):
        raise EntityError(f"Unclosed start tag at byte offset {at}")
    if name not in TAGS:
        raise EntityError(f'Unsupported start tag "{name}" at byte offset {at}')
    attrs, j = _attributes(src, i + 1 + len(name), name, at, strict)
    _check_start(name, attrs, stack, at, strict)
    if name == "code" and stack and stack[-1].kind == "pre" and attrs.get("class", "").startswith("language-"):
        stack[-1].attrs["language"] = attrs["class"][len("language-"):]
    stack.append(_Open(name, TAGS[name], pos, attrs, at))
    return j


def _trim(text: str, entities: list[dict]) -> Parsed:
    """Telegram strips surrounding whitespace; entity offsets follow."""
    lead = utf16_len(text) - utf16_len(text.lstrip())
    text = text.strip()
    size = utf16_len(text)
    kept = []
    # Outer entities first: for equal spans the outer one closed (was appended) later.
    order = sorted(range(len(entities)), key=lambda k: (entities[k]["offset"], -entities[k]["length"], -k))
    for e in (entities[k] for k in order):
        start, end = max(e["offset"] - lead, 0), min(e["offset"] + e["length"] - lead, size)
        if end > start:
            kept.append({**e, "offset": start, "length": end - start})
    return Parsed(text, kept)
