"""Scanners for what reaches people: the HTML part of an email, its headers, a Telegram post.

They parse (never regex-match) the output, so an escaped `&lt;script&gt;` shown as text passes and a
real `<script>` element, an `on*` attribute or a `javascript:` link fails.
"""
from __future__ import annotations

import html
import re
from email import policy
from email.parser import BytesParser
from html.parser import HTMLParser

DANGEROUS_TAGS = {"script", "iframe", "frame", "frameset", "object", "embed", "applet", "svg", "math", "form", "input",
                  "button", "textarea", "select", "base", "link", "noscript", "template", "video", "audio",
                  "source", "xml", "import", "portal"}
URL_ATTRS = {"href", "src", "action", "formaction", "poster", "background", "xlink:href", "srcset", "data", "lowsrc",
             "dynsrc", "cite", "longdesc", "usemap", "ping"}
BAD_SCHEMES = ("javascript:", "vbscript:", "data:", "file:", "livescript:", "mocha:")
BAD_CSS = ("expression(", "javascript:", "vbscript:", "behavior", "-moz-binding", "@import")
TELEGRAM_TAGS = {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span", "tg-spoiler", "a", "code", "pre",
                 "blockquote", "tg-emoji"}
# Headers a Flashbot alert may carry; anything else means a feed field smuggled a header in.
ALLOWED_HEADERS = {"from", "to", "subject", "date", "message-id", "mime-version", "content-type",
                   "content-transfer-encoding", "list-unsubscribe", "list-unsubscribe-post", "list-id", "auto-submitted",
                   "precedence", "x-auto-response-suppress", "in-reply-to", "references", "dkim-signature", "reply-to",
                   "x-mailer", "content-language", "feedback-id", "x-entity-ref-id", "x-flashbot-item", "sender"}
_CONTROL = re.compile(r"[\x00-\x20\x7f-\x9f]+")


def _norm_url(value: str) -> str:
    """What a browser would see as the URL scheme: unescaped, control characters and blanks removed, lower case."""
    return _CONTROL.sub("", html.unescape(html.unescape(value or ""))).lower()


class _Collector(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.style_text: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, attrs))
        self._in_style = tag == "style"

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, attrs))

    def handle_endtag(self, tag):
        self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            self.style_text.append(data)


def html_problems(markup: str, allowed_tags: set[str] | None = None) -> list[str]:
    """Every dangerous element, attribute, URL scheme or CSS construct found in an HTML document."""
    c = _Collector()
    c.feed(markup)
    c.close()
    found = []
    for tag, attrs in c.tags:
        if allowed_tags is not None and tag not in allowed_tags:
            found.append(f"tag <{tag}> not allowed here")
        elif tag in DANGEROUS_TAGS:
            found.append(f"<{tag}> element")
        for name, value in attrs:
            name = name.lower()
            if name.startswith("on"):
                found.append(f"<{tag} {name}=...> event handler")
            if name in URL_ATTRS and value is not None:
                parts = [p.strip().split(" ")[0] for p in value.split(",")] if name == "srcset" else [value]
                for part in parts:
                    if _norm_url(part).startswith(BAD_SCHEMES):
                        found.append(f"<{tag} {name}={value[:60]!r}> dangerous URL")
            if name == "style" and value and any(b in _norm_url(value) for b in BAD_CSS):
                found.append(f"<{tag} style={value[:60]!r}> dangerous CSS")
            if tag == "meta" and name not in ("charset", "name", "content"):  # the template's charset/viewport only
                found.append(f"<meta {name}=...> (refresh or other http-equiv)")
    for css in c.style_text:
        if any(b in _norm_url(css) for b in BAD_CSS):
            found.append(f"<style> block with dangerous CSS: {css[:60]!r}")
    return found


def email_problems(data: bytes) -> list[str]:
    """Problems of one received email: smuggled headers, multi-line subject, dangerous HTML part."""
    msg = BytesParser(policy=policy.default).parsebytes(data)
    found = []
    names = [k.lower() for k in msg.keys()]
    for name in names:
        if name not in ALLOWED_HEADERS:
            found.append(f"unexpected header {name!r}")
    for once in ("subject", "from", "to"):
        if names.count(once) != 1:
            found.append(f"{once} appears {names.count(once)} times")
    subject = str(msg["subject"] or "")
    if any(ch in subject for ch in "\r\n\x00"):
        found.append(f"subject spans lines: {subject[:80]!r}")
    html_part = msg.get_body(("html",))
    text_part = msg.get_body(("plain",))
    if html_part is None or text_part is None:
        found.append("missing text/plain or text/html part")
    else:
        found += html_problems(html_part.get_content())
    return found


def telegram_problems(post) -> list[str]:
    """Problems of one accepted Telegram post: tags outside Telegram's subset, dangerous link targets."""
    found = html_problems(post.text, allowed_tags=TELEGRAM_TAGS)
    for ent in post.entities:
        url = ent.get("url")
        if url and not _norm_url(url).startswith(("http://", "https://", "tg://", "mailto:")):
            found.append(f"link entity to {url[:60]!r}")
    return found


def leaked_secret(blob: str | bytes, markers) -> str | None:
    """The first marker found in a blob (e.g. a line of /etc/passwd), else None."""
    text = blob.decode("utf-8", "replace") if isinstance(blob, bytes) else blob
    return next((m for m in markers if m in text), None)
