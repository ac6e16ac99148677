"""Page chrome and tracking-pixel removal on a parsed tree (share boxes, comments, newsletter, related links)."""
from __future__ import annotations

import re

from bot.render.html.dom import BLOCK, Node, parse, serialize
from bot.text import words

# WordPress/Jetpack/plugins class or id fragments that only ever wrap page chrome.
CHROME_TOKENS = (
    "sharedaddy", "sd-sharing", "sd-block", "sd-social", "jp-relatedposts", "relatedposts",
    "related-posts", "related_posts", "yarpp", "wpdiscuz", "wpd-", "wc-comment", "comment",
    "respond", "newsletter", "mc4wp", "subscribe", "social", "share", "sharing", "addtoany",
    "a2a_", "post-navigation", "nav-links", "author-box", "post-ratings", "rating", "reactions",
    "lire-aussi", "read-also", "related", "advert", "adsbygoogle", "sponsor", "widget",
)
# Whole-block texts (normalized: lower case, no accents, punctuation as spaces).
_WHOLE = [
    r"(poster|laisser|laissez|ajouter|publier) un commentaire", r"(leave|post) a (comment|reply)",
    r"soyez le premier a (commenter|reagir)", r"be the first to comment", r"\d* ?commentaires?",
    r"\d* ?comments?", r"reagissez", r"que pensez vous de cet article", r"wpdiscuz",
    r"what do you think (of|about) this article", r"me notifier des", r"notify of", r"avatar",
    r"newsletter", r"la newsletter", r"inscri(vez|ption|re) (vous )?(a|pour|aux?) .{0,80}",
    r"abonnez vous .{0,80}", r"(subscribe|sign up) (to|for) .{0,80}", r"reseaux sociaux",
    r"suivez nous( sur .{0,60})?", r"follow us( on .{0,60})?", r"social( media| links)?",
    r"partage[rz]?( (cet|l) article)?( sur .{0,40})?", r"share( this( article| post| page)?)?( on .{0,40})?",
    r"j aime( ceci)?( chargement)?", r"like this",
]
WHOLE_RE = re.compile(r"^(?:%s)$" % "|".join(_WHOLE))
# Share-button rows: only when all their text is link text.
_NETWORKS = r"(tweet|tweeter|facebook|twitter|linkedin|whatsapp|email|e mail|telegram|x|imprimer|print|pinterest|reddit|mastodon|bluesky)"
SOCIAL_RE = re.compile(rf"^{_NETWORKS}( {_NETWORKS})*$")
# Markers of the comment area: they and everything after them are chrome.
TAIL_RE = re.compile(r"^(?:(poster|laisser|laissez) un commentaire|(leave|post) a (comment|reply)|"
                     r"soyez le premier a (commenter|reagir)|be the first to comment|reagissez|"
                     r"que pensez vous de cet article|wpdiscuz|"
                     r"what do you think (of|about) this article)$")
RELATED_RE = re.compile(r"^(a )?(lire|voir) (aussi|egalement)|^sur le meme sujet|^(read|see) also|"
                        r"^also read|^related( articles| posts)?|^you may also like|^vous aimerez aussi")
PIXEL_RE = re.compile(r"(pixel|beacon|track|1x1|spacer|blank|transparent|open)\.(gif|png|jpe?g)|"
                      r"/(pixel|track|tracking|beacon|open|t\.gif|b\.gif)([/?.]|$)|stats\.wp\.com|"
                      r"pixel\.wp\.com|feedburner\.com/~r/|feeds\.feedburner|doubleclick|"
                      r"google-analytics|/ad[sv]?/|utm_", re.I)
MAX_CHROME_TEXT = 160  # a longer block is article text, whatever it says


def norm(text: str) -> str:
    """Block text in the form the patterns above are written in (bot.text.words: folded, punctuation as spaces)."""
    return words(text)


def _tokens(node: Node) -> list[str]:
    return (node.attrs.get("class", "") + " " + node.attrs.get("id", "")).lower().split()


def is_chrome_class(node: Node) -> bool:
    """True when a class or id of the element names a chrome widget."""
    return any(frag in tok for tok in _tokens(node) for frag in CHROME_TOKENS)


def _non_link_text(node: Node) -> str:
    return "".join(c if isinstance(c, str) else ("" if c.tag == "a" else _non_link_text(c))
                   for c in node.children)


def is_related_box(node: Node) -> bool:
    """A "Lire aussi" block: the prefix, then only link text."""
    text = norm(node.text())
    m = RELATED_RE.match(text)
    if not m:
        return False
    rest = norm(_non_link_text(node))
    return RELATED_RE.sub("", rest, count=1).strip() == ""


def is_pixel(img: Node) -> bool:
    """Tracking pixels and images that cannot be shown (no absolute http(s) src)."""
    src = img.attrs.get("src", "")
    if not src.startswith(("https://", "http://")):
        return True
    for dim in ("width", "height"):
        v = img.attrs.get(dim, "").strip().removesuffix("px")
        if v.isdigit() and int(v) <= 2:
            return True
    return bool(PIXEL_RE.search(src))


def _visible(node: Node) -> bool:
    return bool(node.text().strip()) or any(n.tag == "img" for n in node.iter())


class _Cleaner:
    def __init__(self) -> None:
        self.seen_text = 0  # characters of article text met so far, in document order
        self.tail = False  # the comment area started: drop everything from here on

    def clean(self, node: Node) -> None:
        kept: list[Node | str] = []
        for i, c in enumerate(node.children):
            if self.tail:
                break
            if isinstance(c, str):
                self.seen_text += len(c.strip())
                kept.append(c)
            elif not self._drop(c, node.children, i):
                self.clean(c)
                if c.tag in ("img", "br", "hr") or _visible(c):
                    kept.append(c)
        node.children = kept

    def _drop(self, c: Node, siblings: list, i: int) -> bool:
        if c.tag in ("nav", "button", "input", "label"):
            return True
        if c.tag == "img":
            if is_pixel(c):
                return True
            c.attrs.setdefault("alt", "")
            return False
        if is_chrome_class(c):
            return True
        if c.tag not in BLOCK and c.tag not in ("span", "strong", "b", "em", "a"):
            return False
        raw = c.text()
        if len(raw) > MAX_CHROME_TEXT * 4:
            return False
        text = norm(raw)
        if text and TAIL_RE.match(text) and self.seen_text >= 80:
            self.tail = True
            return True
        if c.tag in BLOCK and len(text) <= MAX_CHROME_TEXT and (
                WHOLE_RE.match(text) or is_related_box(c)
                or (SOCIAL_RE.match(text) and not norm(_non_link_text(c)))):
            if RELATED_RE.match(text) and RELATED_RE.sub("", text, count=1).strip() == "":
                self._drop_next_link_list(siblings[i + 1:])
            return True
        return False

    @staticmethod
    def _drop_next_link_list(following: list) -> None:
        # A bare "À lire aussi" heading introduces the next block when it holds only links.
        for sib in following:
            if isinstance(sib, str):
                if sib.strip():
                    return
                continue
            if norm(_non_link_text(sib)) == "" and any(n.tag == "a" for n in sib.iter()):
                sib.children.clear()
            return


def remove_chrome(root: Node) -> Node:
    """Drop chrome blocks, the comment area tail and tracking pixels in place; return root."""
    _Cleaner().clean(root)
    return root


def limit_images(html: str, policy: str) -> str:
    """Feed images kept in a mail: all ('keep'), only the first one, the lead picture ('lead'), or none.

    Every remote image is fetched by the reader's mail client, so it tells the image's host who read
    the mail and when: 'lead' and 'none' keep a compromised feed from adding tracking pixels."""
    if policy == "keep" or "<img" not in html:
        return html
    root = parse(html)
    budget = [1 if policy == "lead" else 0]

    def prune(node: Node) -> None:
        kept: list[Node | str] = []
        for c in node.children:
            if isinstance(c, Node) and c.tag == "img":
                if budget[0]:
                    budget[0] -= 1
                    kept.append(c)
                continue
            if isinstance(c, Node):
                had_image = any(n.tag == "img" for n in c.iter())
                prune(c)
                if had_image and c.tag in ("a", "figure", "picture") and not _visible(c):
                    continue  # a link or figure that only held a dropped image
            kept.append(c)
        node.children = kept

    prune(root)
    return serialize(root).strip()
