"""Feed bytes → normalized Items (feedparser on bytes only; it never fetches)."""
from __future__ import annotations

import calendar
import hashlib
import html
import re
from datetime import datetime, timezone
from urllib.parse import urljoin, urlsplit

import feedparser
from feedparser.urls import resolve_relative_uris

from bot.ingest.images import lead_image
from bot.models import FeedResult, Item
from bot.render.html.furniture import repeated_blocks

MAX_ENTRIES = 1000  # a feed with more entries is cut: bounded time and memory per poll
_ENTITY_DECL = re.compile(rb"<!ENTITY\s+(%\s*)?([^\s>]+)\s+(SYSTEM|PUBLIC|\"[^\"]*\"|'[^']*')", re.I)
_FIRST_ELEMENT = re.compile(rb"<[A-Za-z_]")
_TAG = re.compile(r"<[^>]*>")
_HTML_START = re.compile(rb"^\s*(<!--.*?-->\s*)*<(!doctype\s+html|html|head|body)\b", re.I | re.S)


class UnsafeXML(ValueError):
    """The document declares entities we refuse to expand (XXE, entity expansion bombs)."""


def _ascii(data: bytes) -> bytes:
    """The document in an ASCII-compatible form (UTF-16/32 decoded) for looking at its markup."""
    for bom, codec in ((b"\xff\xfe\x00\x00", "utf-32-le"), (b"\x00\x00\xfe\xff", "utf-32-be"),
                       (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"),
                       (b"<\x00?\x00", "utf-16-le"), (b"\x00<\x00?", "utf-16-be")):
        if data.startswith(bom):
            return data.decode(codec, "replace").encode("utf-8", "replace")
    return data


def _prolog(data: bytes) -> bytes:
    """The bytes before the first element, decoded to ASCII-compatible form when UTF-16/32."""
    head = _ascii(data)  # the whole prolog: entity declarations may hide after megabytes of padding
    m = _FIRST_ELEMENT.search(head)
    return head[: m.start()] if m else head


def prolog_complete(data: bytes) -> bool:
    """Whether these first bytes of a document reach its first element (so its prolog can be screened)."""
    return _FIRST_ELEMENT.search(_ascii(data)) is not None


def screen_entities(data: bytes) -> None:
    """Raise UnsafeXML when the prolog declares external, parameter or nested entities."""
    head = _prolog(data)
    if b"<!ENTITY" not in head.upper():
        return
    for pct, _name, value in _ENTITY_DECL.findall(head):
        if pct:
            raise UnsafeXML("refused: the feed declares XML parameter entities")
        if value.upper() in (b"SYSTEM", b"PUBLIC"):
            raise UnsafeXML("refused: the feed declares an external XML entity (it could read local files)")
        if b"&" in re.sub(rb"&#x?[0-9a-fA-F]+;", b"", value):
            raise UnsafeXML("refused: the feed declares nested XML entities (entity expansion attack)")
    if head.upper().count(b"<!ENTITY") > 64:
        raise UnsafeXML("refused: the feed declares too many XML entities")


def _text(value: str | None, detail: dict | None = None) -> str:
    """Plain text of a feed text construct (titles may carry HTML)."""
    value = value or ""
    if detail and "html" in (detail.get("type") or ""):
        value = html.unescape(_TAG.sub("", value))
    return " ".join(value.split())


def _when(parsed) -> datetime | None:
    """feedparser's UTC struct_time → aware datetime (None when absent or absurd)."""
    if not parsed:
        return None
    try:
        dt = datetime.fromtimestamp(calendar.timegm(parsed), tz=timezone.utc)
    except (OverflowError, ValueError, OSError, TypeError):
        return None
    return dt if 1990 <= dt.year <= 2200 else None


def _link(href: str | None, base: str | None) -> str | None:
    """An absolute http(s) link, or None (javascript:, data: … are dropped)."""
    if not href:
        return None
    absolute = urljoin(base or "", href.strip()) if base else href.strip()
    return absolute if urlsplit(absolute).scheme in ("http", "https") else None


def _content(entry) -> str:
    parts = entry.get("content") or []
    for part in parts:
        if "html" in (part.get("type") or ""):
            return part.get("value") or ""
    return parts[0].get("value", "") if parts else ""


def content_hash(title: str, summary: str, content: str) -> str:
    """SHA-256 over what readers see: a change means the item was edited (whitespace ignored)."""
    text = "\x1f".join(" ".join(part.split()) for part in (title, summary, content))
    return hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()


def _absolute(fragment: str, base: str | None) -> str:
    """Relative href/src made absolute (feedparser did it already when it knew the feed URL)."""
    if not fragment or not base or "=" not in fragment:
        return fragment
    try:
        return resolve_relative_uris(fragment, base, "utf-8", "text/html")
    except Exception:  # noqa: BLE001 - a broken fragment is kept as it was
        return fragment


def normalize(entry, base: str | None, feed_language: str | None, late_base: str | None = None) -> Item:
    """One feedparser entry → Item (stable key: guid, else link, else content hash).

    late_base: base URL for relative links in the HTML when the feed had no URL (a local file).
    """
    title = _text(entry.get("title"), entry.get("title_detail"))
    summary = _absolute(entry.get("summary") or "", late_base)
    content = _absolute(_content(entry), late_base)
    if summary == content:
        summary = summary if not entry.get("content") else ""
    link = _link(entry.get("link"), base)
    chash = content_hash(title, summary, content)
    guid = (entry.get("id") or "").strip()
    key = guid or link or "sha256:" + chash
    cats = []
    for tag in entry.get("tags") or []:
        term = " ".join((tag.get("term") or tag.get("label") or "").split())
        if term and term not in cats:
            cats.append(term)
    detail = entry.get("title_detail") or entry.get("summary_detail") or {}
    author = _text(entry.get("author")) or None
    image_url, image_alt = lead_image(entry, content, summary) or (None, None)
    return Item(
        key=key[:2000], title=title, link=link, summary_html=summary, content_html=content,
        categories=cats, author=author, published_at=_when(dict.get(entry, "published_parsed")),
        updated_at=_when(dict.get(entry, "updated_parsed")), language=(detail.get("language") or feed_language or None),
        content_hash=chash, image_url=image_url, image_alt=image_alt,
    )


def parse_feed(data: bytes, headers: dict[str, str], url: str | None = None) -> FeedResult:
    """Parse feed bytes (headers give the charset and base URL) into a FeedResult."""
    result = FeedResult()
    if not data.strip():
        result.error = "empty response body"
        return result
    try:
        screen_entities(data)
    except UnsafeXML as exc:
        result.error = str(exc)
        return result
    hdrs = {k.lower(): v for k, v in headers.items()}
    if url and urlsplit(url).scheme in ("http", "https"):
        hdrs["content-location"] = urljoin(url, hdrs["content-location"]) if hdrs.get("content-location") else url
    else:
        hdrs.pop("content-location", None)
    d = feedparser.parse(data, response_headers=hdrs, sanitize_html=True, resolve_relative_uris=True)
    if not d.get("version") and not d.entries and not d.get("feed", {}).get("title"):
        result.error = _not_a_feed(data, hdrs, d)
        return result
    feed = d.get("feed", {})
    base = hdrs.get("content-location") or feed.get("link")
    lang = feed.get("language") or hdrs.get("content-language")
    late = None if hdrs.get("content-location") else _link(feed.get("link"), None)
    result.items = [normalize(e, base, lang, late) for e in d.entries[:MAX_ENTRIES]]
    # Blocks repeated across this feed's items are its furniture: rendering takes them off an article's edges.
    for item, repeated in zip(result.items, repeated_blocks([i.content_html or i.summary_html for i in result.items])):
        item.furniture = repeated
    result.feed_title = _text(feed.get("title"), feed.get("title_detail")) or None
    result.ttl_seconds = _ttl(feed.get("ttl"))
    if d.get("bozo"):
        result.bozo = str(d.get("bozo_exception") or "malformed feed")[:300]
    for link in feed.get("links", []):
        if link.get("rel") == "hub" and not result.hub_url:
            result.hub_url = _link(link.get("href"), base)
        elif link.get("rel") == "self" and not result.topic_url:
            result.topic_url = _link(link.get("href"), base)
    return result


def _ttl(value) -> int | None:
    """RSS <ttl> (minutes) in seconds."""
    try:
        minutes = int(str(value).strip())
    except (TypeError, ValueError):
        return None
    return minutes * 60 if 0 < minutes <= 60 * 24 * 30 else None


def _not_a_feed(data: bytes, hdrs: dict[str, str], d) -> str:
    ctype = (hdrs.get("content-type") or "").split(";")[0].strip()
    if _HTML_START.match(data[:4096]) or ctype in ("text/html", "application/xhtml+xml"):
        return f"not an RSS/Atom feed: got an HTML page ({ctype or 'no content type'})"
    why = d.get("bozo_exception")
    return f"not an RSS/Atom feed: {why}" if why else "not an RSS/Atom feed (no feed element found)"
