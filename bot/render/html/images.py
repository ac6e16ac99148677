"""Which feed images a mail keeps (`[email] remote_images`): every remote image tells its host who read the mail."""
from __future__ import annotations

from bot.render.html.chrome import visible
from bot.render.html.dom import Node, parse, serialize


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
                if had_image and c.tag in ("a", "figure", "picture") and not visible(c):
                    continue  # a link or figure that only held a dropped image
            kept.append(c)
        node.children = kept

    prune(root)
    return serialize(root).strip()
