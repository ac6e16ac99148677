"""Page chrome removal on a parsed tree: only the site's furniture goes, each removal recorded with its rule.

The signals are structural (bot.render.html.signals): widget classes, share-intent links, chrome
labels as whole blocks, the comment area, tracking pixels, and blocks the feed repeats at the end
of most of its items (bot.render.html.furniture). An author's link is never removed for its host.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from bot.render.html import signals
from bot.render.html.dom import BLOCK, Node
from bot.render.html.furniture import key, units
from bot.text import words

log = logging.getLogger(__name__)

# Every rule, with what `flashbot preview --explain` says about it.
RULES = {
    "widget": "class or id of a share, related-posts, comment or newsletter widget",
    "share-intent": "links only to share-intent URLs (twitter.com/intent, facebook.com/sharer…)",
    "sign-up": "only a newsletter sign-up button (…/subscribe, Mailchimp)",
    "label": "the whole block is a chrome label (Partager, Share, Suivez-nous, a post footer…)",
    "related": "a \"Lire aussi\" / \"Read also\" box of links",
    "comment-area": "the comment area, and everything after it",
    "repeated": "repeated identically at the end of two thirds of this feed's items",
    "read-more": "the feed's closing \"read more\" link back to the article (the mail has its own)",
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


def visible(node: Node) -> bool:
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
            if c.tag in ("img", "br", "hr") or visible(c):
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
        url = signals.signup_block(c)
        if url:
            return Removal("sign-up", f"link to {url[:100]}", _shown(c))
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
    """Take the feed's repeated blocks off the end of the article (never all of it).

    Sites append their furniture; a line most items open with is the author's ("This release fixes
    many security vulnerabilities."), and a repeated heading amid the text is a section of the article.
    """
    shown = [u for u in units(root) if u.text().strip() or u.has_image()]
    end = len(shown)
    while end > 1 and not shown[end - 1].has_image() and key(shown[end - 1]) in furniture:
        end -= 1
    for u in shown[end:]:
        removed.append(Removal("repeated", "at the end of two thirds of the feed's items", _shown(u.text())))
        u.remove()


def _last_link(nodes: list) -> Node | None:
    # The link the unit ends with (nothing but spaces and punctuation after it), or None.
    for n in reversed(nodes):
        if isinstance(n, str):
            if words(n):
                return None
            continue
        if n.tag == "a":
            return n
        if n.tag in ("img", "br"):
            continue
        if words(n.text()) or any(k.tag == "img" for k in n.iter()):
            return _last_link(n.children)
    return None


def _read_more(root: Node, article: str | None, removed: list[Removal]) -> None:
    """The feed's closing "read more" link (Continue reading…, Läs mer », #more jumps) goes; the mail has its own."""
    shown = [u for u in units(root) if u.text().strip() or u.has_image()]
    link = _last_link(shown[-1].nodes) if shown else None
    why = signals.read_more(link, article) if link is not None else None
    if why is None:
        return
    last = shown[-1]
    rest = words(last.text()).removesuffix(words(link.text())).strip()
    # The whole closing line goes only when all of it is read-more wording ("To read this article in
    # full, please click here"); "I'm… [read more]" keeps the author's "I'm…".
    whole = not rest or (len(rest.split()) <= 8 and signals.READ_MORE_RE.search(rest) is not None)
    if whole and len(shown) > 1:  # "Read more of this story at Slashdot.": the whole closing line
        removed.append(Removal("read-more", why, _shown(last.text())))
        last.remove()
    elif not whole:  # "… poddar. Läs mer »": the link that closes the author's text
        removed.append(Removal("read-more", why, _shown(link)))
        _detach(root, link)


def _detach(root: Node, target: Node) -> None:
    for n in root.iter():
        if any(c is target for c in n.children):
            n.children = [c for c in n.children if c is not target]
            return


def remove_chrome(root: Node, furniture: frozenset[str] = frozenset(), article: str | None = None) -> list[Removal]:
    """Drop chrome blocks, the comment area and tracking pixels in place; return what was removed, in order.

    article: the item's own URL (a closing link back to it is the feed's "read more").
    """
    cleaner = _Cleaner()
    cleaner.clean(root)
    if furniture:
        _peel(root, furniture, cleaner.removed)
    _read_more(root, article, cleaner.removed)
    return cleaner.removed


def log_removals(removals: list[Removal], link: str | None) -> None:
    """One debug line per removed block, with the rule that removed it."""
    if not log.isEnabledFor(logging.DEBUG):
        return
    for r in removals:
        log.debug("chrome removed (%s): %s", r.rule, r.text or r.why,
                  extra={"rule": r.rule, "why": r.why, "removed": r.text, "link": link or ""})
