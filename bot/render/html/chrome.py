"""Page chrome removal on a parsed tree: only the site's furniture goes, each removal recorded with its rule.

The signals are structural (bot.render.html.signals): widget classes, share-intent links, chrome
labels as whole blocks, the comment area, tracking pixels, and blocks the feed repeats at the edges
of most of its items (bot.render.html.furniture). An author's link is never removed for its host.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from bot.render.html import signals
from bot.render.html.dom import BLOCK, Node
from bot.render.html.furniture import Unit, key, units
from bot.text import words

log = logging.getLogger(__name__)

# Every rule, with what `flashbot preview --explain` says about it.
RULES = {
    "widget": "class or id of a share, related-posts, comment or newsletter widget",
    "share-intent": "links only to share-intent URLs (twitter.com/intent, facebook.com/sharer…)",
    "label": "the whole block is a chrome label (Partager, Share, Suivez-nous, a post footer…)",
    "related": "a \"Lire aussi\" / \"Read also\" box of links",
    "comment-area": "the comment area, and everything after it",
    "repeated": "repeated identically at the start or end of most items of this feed",
    "pixel": "tracking pixel, or an image without an absolute URL",
    "control": "navigation or form control",
}
INLINE_CHECKED = ("span", "strong", "b", "em", "a")  # inline wrappers that can be a whole label or share button
MIN_ARTICLE_TEXT = 80  # the comment area cannot start before this much article text


@dataclass(frozen=True)
class Removal:
    """One removed block: the rule, the signal that matched, what the reader would have seen."""

    rule: str
    why: str
    text: str


def _spaced(node: Node | str) -> str:
    # The text as the reader sees it: blocks and line breaks apart ("Partager : Tweet", not "Partager :Tweet").
    if isinstance(node, str):
        return node
    if node.tag == "img":
        return f"[image {node.attrs.get('alt') or node.attrs.get('src', '')}]"
    inner = "".join(_spaced(c) for c in node.children)
    return f" {inner} " if node.tag in BLOCK or node.tag == "br" else inner


def _shown(node: Node | str, limit: int = 160) -> str:
    text = " ".join(_spaced(node).split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _visible(node: Node) -> bool:
    return bool(node.text().strip()) or any(n.tag == "img" for n in node.iter())


class _Cleaner:
    def __init__(self) -> None:
        self.seen_text = 0  # characters of article text met so far, in document order
        self.tail = False  # the comment area started: drop everything from here on
        self.removed: list[Removal] = []

    def clean(self, node: Node) -> None:
        kept: list[Node | str] = []
        for i, c in enumerate(node.children):
            if self.tail:
                if _shown(c):
                    self.removed.append(Removal("comment-area", "after the comment-area marker", _shown(c)))
                continue
            if isinstance(c, str):
                self.seen_text += len(c.strip())
                kept.append(c)
                continue
            removal = self._drop(c, node.children, i)
            if removal is not None:
                self.removed.append(removal)
                continue
            self.clean(c)
            if c.tag in ("img", "br", "hr") or _visible(c):
                kept.append(c)
        node.children = kept

    def _drop(self, c: Node, siblings: list, i: int) -> Removal | None:
        if c.tag in ("nav", "button", "input", "label"):
            return Removal("control", f"<{c.tag}>", _shown(c))
        if c.tag == "img":
            why = signals.pixel(c)
            if why:
                return Removal("pixel", why, _shown(c))
            c.attrs.setdefault("alt", "")
            return None
        token = signals.widget(c)
        if token:
            return Removal("widget", f'class/id "{token}"', _shown(c))
        if c.tag not in BLOCK and c.tag not in INLINE_CHECKED:
            return None
        url = signals.share_block(c)
        if url:
            return Removal("share-intent", f"link to {url[:100]}", _shown(c))
        raw = c.text()
        if len(raw) > signals.MAX_FOOTER_TEXT * 2:
            return None
        if raw.strip() and signals.comment_area(raw) and self.seen_text >= MIN_ARTICLE_TEXT:
            self.tail = True
            return Removal("comment-area", f'marker "{_shown(c, 60)}"', _shown(c))
        if c.tag not in BLOCK:
            return None
        if signals.label(raw):
            return Removal("label", f'"{_shown(c, 60)}"', _shown(c))
        if signals.related_heading(raw):
            self._drop_next_link_list(siblings[i + 1:])
            return Removal("related", f'heading "{_shown(c, 60)}"', _shown(c))
        if signals.related_box(c):
            return Removal("related", "prefix then only links", _shown(c))
        return None

    def _drop_next_link_list(self, following: list) -> None:
        # A bare "À lire aussi" heading introduces the next block when it holds only links.
        for sib in following:
            if isinstance(sib, str):
                if sib.strip():
                    return
                continue
            if words(signals.link_text(sib)) == "" and any(n.tag == "a" for n in sib.iter()):
                self.removed.append(Removal("related", "links after a \"Lire aussi\" heading", _shown(sib)))
                sib.children.clear()
            return


def _peel(root: Node, furniture: frozenset[str], removed: list[Removal]) -> None:
    """Take the feed's repeated blocks off the start and the end of the article (never all of it)."""
    shown = [u for u in units(root) if u.text().strip() or u.has_image()]
    start, end = 0, len(shown)

    def repeated(u: Unit) -> bool:
        return not u.has_image() and key(u) in furniture

    while end - start > 1 and repeated(shown[end - 1]):
        end -= 1
    while end - start > 1 and repeated(shown[start]):
        start += 1
    for u in shown[:start] + shown[end:]:
        removed.append(Removal("repeated", "in most items of the feed", _shown(u.text())))
        u.remove()


def remove_chrome(root: Node, furniture: frozenset[str] = frozenset()) -> list[Removal]:
    """Drop chrome blocks, the comment area and tracking pixels in place; return what was removed, in order."""
    cleaner = _Cleaner()
    cleaner.clean(root)
    if furniture:
        _peel(root, furniture, cleaner.removed)
    return cleaner.removed


def log_removals(removals: list[Removal], link: str | None) -> None:
    """One debug line per removed block, with the rule that removed it."""
    if not log.isEnabledFor(logging.DEBUG):
        return
    for r in removals:
        log.debug("chrome removed (%s): %s", r.rule, r.text or r.why,
                  extra={"rule": r.rule, "why": r.why, "removed": r.text, "link": link or ""})
