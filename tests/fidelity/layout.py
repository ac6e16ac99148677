"""How the text part and the Telegram post lay out a corpus item: what a reader of the plain text must be able to rely on.

Checked against the sanitized HTML the renderer used: references spaced and on the line of their
word, list items as "- " / "1. " lines, quoted paragraphs behind "> ", h1/h2 underlined with the
next block kept apart, table rows flattened to "a | b" lines after a blank line.
"""
from __future__ import annotations

import re

from bot.render.html.dom import Node, parse
from bot.text import unspaced

QUOTE = r"^(?:> ?)*"


def _flat(text: str) -> str:
    return " ".join(text.split())


def _own_text(node: Node) -> str:
    # The text of a list item without its nested lists.
    return "".join(c if isinstance(c, str) else ("" if c.tag in ("ul", "ol") else _own_text(c)) for c in node.children)


def _start(text: str, n: int = 4) -> str:
    return " ".join(text.split()[:n])


def _line_with(lines: list[str], prefix: str, words: str) -> bool:
    # A line that starts (after prefix) with words; link references in the line do not count.
    pattern = re.compile(prefix + re.escape(words))
    return any(pattern.search(re.sub(r" \[\d+\]", "", line)) for line in lines)


def text_problems(clean_html: str, text: str) -> list[str]:
    """What is wrong with the layout of the text part `text` rendered from `clean_html` (an empty list when nothing)."""
    body, _, refs = text.partition("\n\n[1] ")
    tree = parse(clean_html)
    pre_lines = {ln.strip() for n in tree.iter() if n.tag == "pre" for ln in n.text().split("\n") if ln.strip()}
    lines = [ln for ln in body.split("\n") if re.sub(QUOTE, "", ln).strip() not in pre_lines]
    problems = []
    for n, line in enumerate(lines):
        bare = re.sub(QUOTE, "", line).lstrip()
        if refs and re.match(r"(?:- |\d+\. )?\[\d+\]", bare) and not re.match(r"\[\d+\] \S+://", bare):
            problems.append(f"a reference starts a line: {line[:60]!r}")
        for m in re.finditer(r"\[\d+\]([^\W_])", line):
            if not unspaced(m.group(1)):
                problems.append(f"a reference is glued to the next word: {line[max(0, m.start() - 20):m.end() + 10]!r}")
    for node in tree.iter():
        if node.tag == "li" and _own_text(node).strip():
            head = _start(_own_text(node))
            if not _line_with(lines, QUOTE + r"\s*(?:- |\d+\. )", head):
                problems.append(f"list item not on a '- ' / '1. ' line: {head!r}")
        elif node.tag == "blockquote" and node.text().strip():
            head = _start(node.text(), 3)
            if not any(re.match(r"^>", ln) and head.split()[0] in ln for ln in body.split("\n")):
                problems.append(f"quote not behind '> ': {head!r}")
        elif node.tag in ("h1", "h2") and node.text().strip() and not any(k.tag == "br" for k in node.iter()):
            problems += _heading(body.split("\n"), node, "=" if node.tag == "h1" else "-")
        elif node.tag == "tr":
            cells = [_flat(c.text()) for c in node.children if isinstance(c, Node) and c.text().strip()]
            if len(cells) >= 2 and not any(_start(cells[0], 2) in _flat(ln) and " | " in ln for ln in lines):
                problems.append(f"table row not flattened to an 'a | b' line: {cells[:3]}")
    return problems


def _heading(lines: list[str], node: Node, mark: str) -> list[str]:
    # The heading's last line is followed by its underline, then by a blank line (the next block stays apart).
    words = _start(node.text(), 3)
    for i, line in enumerate(lines[:-1]):
        if words.split()[0] in line and re.fullmatch(re.escape(mark) + "+", lines[i + 1].strip()):
            if i + 2 < len(lines) and lines[i + 2].strip():
                return [f"heading underline runs into the next line: {lines[i + 2][:60]!r}"]
            return []
    return [f"heading not underlined with {mark!r}: {words!r}"]


def post_problems(clean_html: str, post: str) -> list[str]:
    """The Telegram post: list items as '• ' / '1. ' lines, table rows as 'a | b' lines (when shown)."""
    from bot.render.html import telegram as tg

    shown = tg.visible_text(post)
    lines = shown.split("\n")
    problems = []
    for node in parse(clean_html).iter():
        if node.tag == "li" and _own_text(node).strip():
            head = _start(_own_text(node))
            if _flat(head) in _flat(shown) and not _line_with(lines, r"^\s*(?:• |\d+\. )", head):
                problems.append(f"list item not on a '• ' line: {head!r}")
        elif node.tag == "tr":
            cells = [_flat(c.text()) for c in node.children if isinstance(c, Node) and c.text().strip()]
            if len(cells) >= 2 and _flat(cells[-1]) in _flat(shown) and not any(
                    _start(cells[0], 2) in _flat(ln) and " | " in ln for ln in lines):
                problems.append(f"table row not an 'a | b' line: {cells[:3]}")
    return problems
