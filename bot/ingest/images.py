"""The lead image of a feed entry: media:content, media:thumbnail, an image enclosure, or the first
content image large enough to be a photo.

Only absolute http(s) URLs are kept (a relative, data: or javascript: URL is no photo a mail client
or Telegram can fetch), and an image whose stated width or height is under MIN_SIDE pixels is a
tracking pixel or an icon, not a photo. An image without a stated size is kept unless its URL looks
like a tracker (bot.render.html.chrome.PIXEL_RE).
"""
from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import urlsplit

from bot.render.html.signals import PIXEL_RE

MIN_SIDE = 200  # pixels: smaller stated images are pixels, icons or buttons
MAX_URL = 2000
MAX_ALT = 300
_IMAGE_EXT = re.compile(r"\.(jpe?g|png|gif|webp|avif)$", re.I)
_BAD_CHARS = re.compile(r"[\s<>\"'\\]")


def photo_url(url: object) -> str | None:
    """The URL when it is an absolute http(s) URL fit to fetch a photo from, else None."""
    text = str(url or "").strip()
    if not text or len(text) > MAX_URL or _BAD_CHARS.search(text):
        return None
    try:
        parts = urlsplit(text)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return text


def _side(value: object) -> int | None:
    """A stated width or height in pixels ("640", "640px"), or None when absent or not a number."""
    text = str(value or "").strip().lower().removesuffix("px").strip()
    return int(text) if text.isdigit() else None


def _big_enough(width: object, height: object, url: str) -> bool:
    sides = [s for s in (_side(width), _side(height)) if s is not None]
    if sides:
        return min(sides) >= MIN_SIDE
    return not PIXEL_RE.search(url)  # size unknown: only an obvious tracker is refused


def _looks_like_image(mime: object, medium: object, url: str) -> bool:
    mime, medium = str(mime or "").lower(), str(medium or "").lower()
    if mime or medium:
        return mime.startswith("image/") or medium == "image"
    return bool(_IMAGE_EXT.search(urlsplit(url).path))


def _alt(text: object) -> str | None:
    value = " ".join(str(text or "").split())[:MAX_ALT]
    return value or None


class _FirstPhoto(HTMLParser):
    """Finds the first <img> of an HTML fragment that passes the photo rules."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: tuple[str, str | None] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.found is not None or tag != "img":
            return
        a = {k: v or "" for k, v in attrs}
        url = photo_url(a.get("src"))
        if url and _big_enough(a.get("width"), a.get("height"), url):
            self.found = (url, _alt(a.get("alt")))

    handle_startendtag = handle_starttag


def first_content_photo(html: str) -> tuple[str, str | None] | None:
    """(url, alt) of the first photo-sized image in an HTML fragment."""
    if not html or "<img" not in html.lower():
        return None
    parser = _FirstPhoto()
    try:
        parser.feed(html)
        parser.close()
    except Exception:  # noqa: BLE001 - a broken fragment just has no photo
        return None
    return parser.found


def _media(entry, key: str, need_type: bool) -> tuple[str, str | None] | None:
    for media in entry.get(key) or []:
        if not isinstance(media, dict):
            continue
        url = photo_url(media.get("url"))
        if url is None or (need_type and not _looks_like_image(media.get("type"), media.get("medium"), url)):
            continue
        if _big_enough(media.get("width"), media.get("height"), url):
            return url, None
    return None


def _enclosure(entry) -> tuple[str, str | None] | None:
    links = list(entry.get("enclosures") or []) + [
        link for link in entry.get("links") or [] if isinstance(link, dict) and link.get("rel") == "enclosure"]
    for enc in links:
        url = photo_url(enc.get("href") or enc.get("url"))
        if url and str(enc.get("type") or "").lower().startswith("image/") and not PIXEL_RE.search(url):
            return url, None
    return None


def lead_image(entry, content_html: str = "", summary_html: str = "") -> tuple[str, str | None] | None:
    """(url, alt) of the entry's lead photo, or None: media:content, media:thumbnail, an image
    enclosure, then the first photo-sized image of the content (or summary)."""
    return (_media(entry, "media_content", True) or _media(entry, "media_thumbnail", False)
            or _enclosure(entry) or first_content_photo(content_html) or first_content_photo(summary_html))
