"""Blocks a feed repeats identically across its items (sign-up calls, "Read more at …" lines, ad lines).

At ingest, `repeated_blocks` compares the items of one feed document and gives each item the texts
of its blocks that two thirds of the feed's items share; the item keeps that list (items.furniture). At
render time the chrome remover takes such blocks off the end of the article only: a repeated
opening line or a block amid the author's text (a section heading, a recurring quote) stays.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from bot.render.html.allowlist import first_pass
from bot.render.html.dom import BLOCK, Node, parse
from bot.text import words

MIN_ITEMS = 3  # fewer items cannot tell a site's furniture from an author repeating a line
MAX_ITEMS = 200  # newest entries compared; bounds the work a huge feed can cause
MAX_HTML = 200_000  # same cut as rendering (bot.render.html.plaintext.MAX_HTML)
TAIL_HTML = 6_000  # furniture is only taken off an article's end: the items' last characters are compared
MAX_TEXT = 300  # longer blocks are article text even when repeated


@dataclass
class Unit:
    """A run of text the reader sees as one block: a leaf block element, or loose inline content."""

    parent: Node
    nodes: list[Node | str] = field(default_factory=list)

    def text(self) -> str:
        """The unit's visible text."""
        return "".join(n if isinstance(n, str) else n.text() for n in self.nodes)

    def has_image(self) -> bool:
        """True when the unit shows an image (it ends a run of furniture: it is not text to compare)."""
        return any(isinstance(n, Node) and any(k.tag == "img" for k in n.iter()) for n in self.nodes)

    def remove(self) -> None:
        """Take the unit's nodes out of their parent."""
        ids = {id(n) for n in self.nodes}
        self.parent.children = [c for c in self.parent.children if id(c) not in ids]


def _has_block(node: Node) -> bool:
    return any(isinstance(c, Node) and (c.tag in BLOCK or _has_block(c)) for c in node.children)


def units(node: Node) -> list[Unit]:
    """The text units of a tree in document order (leaf blocks, and inline runs between blocks)."""
    out: list[Unit] = []
    run = Unit(node)
    for c in node.children:
        if isinstance(c, Node) and (c.tag in BLOCK or _has_block(c)):
            if run.nodes:
                out.append(run)
                run = Unit(node)
            if _has_block(c):
                out.extend(units(c))
            else:
                out.append(Unit(node, [c]))
        else:
            run.nodes.append(c)
    if run.nodes:
        out.append(run)
    return out


def key(unit: Unit) -> str:
    """The comparison form of a unit: its words (folded, punctuation as spaces), '' when too long."""
    text = unit.text()
    return words(text) if len(text) <= MAX_TEXT * 2 else ""


def _keys(html: str) -> set[str]:
    # A block cut at the start of the tail gives a key nothing else has; whole blocks keep theirs.
    tree = parse(first_pass(html[:MAX_HTML][-TAIL_HTML:], None))
    return {k for k in map(key, units(tree)) if k and len(k) <= MAX_TEXT}


def repeated_blocks(htmls: list[str]) -> list[list[str]]:
    """For each item's HTML, the texts of its blocks found in two thirds of the feed's items (3 or more).

    What a site or platform appends is in (nearly) every item: Slashdot 15 of 15, the Guardian 54 of
    54. An author's habitual sign-off ("With that – thanks for reading!", 4 of 8) is below that.
    """
    sample = htmls[:MAX_ITEMS]
    if len(sample) < MIN_ITEMS:
        return [[] for _ in htmls]
    keys = [_keys(h) if h else set() for h in sample]
    counts = Counter(k for ks in keys for k in ks)
    present = sum(1 for h in sample if h)
    need = max(MIN_ITEMS, -(-2 * present // 3))
    common = {k for k, n in counts.items() if n >= need}
    found = [sorted(ks & common) for ks in keys]
    return found + [[] for _ in htmls[len(sample):]]
