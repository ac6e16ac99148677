"""A tiny HTML tree (stdlib html.parser) for post-processing HTML that nh3 already sanitized."""
from __future__ import annotations

from dataclasses import dataclass, field
from html import escape
from html.parser import HTMLParser

VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta",
                  "param", "source", "track", "wbr"})
MAX_DEPTH = 100  # deeper elements are flattened into their ancestor (keeps recursion bounded)
BLOCK = frozenset({"address", "article", "aside", "blockquote", "dd", "details", "dialog", "div",
                   "dl", "dt", "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2",
                   "h3", "h4", "h5", "h6", "header", "hgroup", "hr", "li", "main", "nav", "ol",
                   "p", "pre", "section", "summary", "table", "tbody", "thead", "tfoot", "tr",
                   "td", "th", "caption", "ul", "center"})


@dataclass
class Node:
    """An element: tag name, attributes and children (Nodes or text strings)."""

    tag: str
    attrs: dict[str, str] = field(default_factory=dict)
    children: list["Node | str"] = field(default_factory=list)

    def text(self) -> str:
        """All descendant text, concatenated."""
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def iter(self):
        """This node and every descendant element, depth first."""
        yield self
        for c in self.children:
            if isinstance(c, Node):
                yield from c.iter()


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#root")
        self.stack = [self.root]
        self.flattened: dict[str, int] = {}

    def handle_starttag(self, tag, attrs):
        if len(self.stack) > MAX_DEPTH and tag not in VOID:
            # Hostile nesting: keep the text, drop the element.
            self.flattened[tag] = self.flattened.get(tag, 0) + 1
            return
        node = Node(tag, {k: (v or "") for k, v in attrs})
        self.stack[-1].children.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag, attrs):
        self.stack[-1].children.append(Node(tag, {k: (v or "") for k, v in attrs}))

    def handle_endtag(self, tag):
        if self.flattened.get(tag):
            self.flattened[tag] -= 1
            return
        # Close up to the matching open element; a stray end tag is ignored.
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i].tag == tag:
                del self.stack[i:]
                return

    def handle_data(self, data):
        kids = self.stack[-1].children
        if kids and isinstance(kids[-1], str):
            kids[-1] += data
        else:
            kids.append(data)


def parse(html: str) -> Node:
    """Parse an HTML fragment into a tree under a '#root' node (entities decoded)."""
    b = _Builder()
    b.feed(html or "")
    b.close()
    return b.root


def serialize(node: Node | str) -> str:
    """Serialize a node (or text) back to HTML, escaping text and attribute values."""
    if isinstance(node, str):
        return escape(node, quote=False)
    inner = "".join(serialize(c) for c in node.children)
    if node.tag == "#root":
        return inner
    attrs = "".join(f' {k}="{escape(v, quote=True)}"' for k, v in node.attrs.items())
    if node.tag in VOID:
        return f"<{node.tag}{attrs}>"
    return f"<{node.tag}{attrs}>{inner}</{node.tag}>"
