"""The content-fidelity figures of TESTING.md, computed from the labelled corpus (nothing typed by hand).

    .venv/bin/python tests/fidelity/report.py            # rewrites the table between the markers
    .venv/bin/python tests/fidelity/report.py --items    # one line per item, to see where a figure comes from

tests/test_fidelity.py fails when TESTING.md's table is not what this computes.
"""
from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path[:0] = [str(ROOT), str(HERE.parent)]

from fidelity import measure  # noqa: E402

DOC = ROOT / "TESTING.md"
START, END = "<!-- fidelity:start -->", "<!-- fidelity:end -->"
GROUPS = {  # feed file prefix → platform group, in table order
    "seed": "WordPress + Jetpack (the seed page)", "wordpresscom": "WordPress.com (Jetpack)", "wordpress": "WordPress",
    "blogger": "Blogger", "tumblr": "Tumblr", "medium": "Medium", "hugo": "Hugo", "mailinglist": "Mailing-list archives",
    "comments": "Comment feed (Disqus)", "news": "News sites and agencies", "status": "Status page",
}
OUTPUTS = ("mail text part", "mail HTML part", "Telegram post")


def group(feed: str) -> str:
    """The platform group of a corpus feed (by its file-name prefix)."""
    return GROUPS[feed.split("-", 1)[0].split(".", 1)[0]]


def results() -> list[tuple[measure.Item, list[measure.Output]]]:
    """Every corpus item measured on every output."""
    from bot.config import parse_config
    from bot.render.renderer import Renderer

    renderer = Renderer(parse_config({"bot": {"timezone": "Europe/Paris"}}, ROOT))
    _, items = measure.load()
    return [(item, measure.evaluate(renderer, item)) for item in items]


def _pct(num: int, den: int) -> str:
    return "—" if den == 0 else f"{100 * num / den:.1f} %".replace(".0 %", " %")


def _row(name: str, rows: list[tuple[measure.Item, list[measure.Output]]]) -> str:
    per = {o: [outs[i] for _, outs in rows] for i, o in enumerate(OUTPUTS)}
    kept = [f"{sum(x.kept for x in per[o])}/{sum(x.expected for x in per[o])}" for o in OUTPUTS]
    blocks = sum(len(it.blocks) + len(it.urls) for it, _ in rows)
    leaked = sum(1 for _, outs in rows for o in outs for _ in o.leaked)
    outs = [o for _, os_ in rows for o in os_]
    fp = sum(o.expected - o.kept for o in outs)  # article words the outputs lost
    fn = sum(o.leaked_words for o in outs)  # chrome words that got through
    tp = sum(o.chrome_words for o in outs) - fn
    return (f"| {name} | {len(rows)} | {kept[0]} | {kept[1]} | {kept[2]} | {blocks} | {leaked} | "
            f"{_pct(tp, tp + fp)} | {_pct(tp, tp + fn)} |")


def table(measured: list[tuple[measure.Item, list[measure.Output]]]) -> str:
    """The Markdown table: one row per platform group, then the whole corpus."""
    lines = ["| Platform | Items | Article words kept in order: mail text part | mail HTML part | Telegram post "
             "| Chrome blocks marked | Chrome blocks reaching a mail or post | Precision | Recall |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name in dict.fromkeys(GROUPS.values()):
        rows = [(it, outs) for it, outs in measured if group(it.feed) == name]
        if rows:
            lines.append(_row(name, rows))
    lines.append(_row("**whole corpus**", measured))
    return "\n".join(lines)


def section(measured) -> str:
    """What goes between the markers of TESTING.md."""
    return f"{START}\n{table(measured)}\n{END}"


def main() -> int:
    measured = results()
    if "--items" in sys.argv:
        for item, outs in measured:
            print(item.id, " | ".join(f"{o.name}: {o.kept}/{o.expected} leaked={o.leaked}" for o in outs))
        return 0
    doc = DOC.read_text(encoding="utf-8")
    if START not in doc or END not in doc:
        print(f"{DOC} has no {START} … {END} section", file=sys.stderr)
        return 1
    head, _, rest = doc.partition(START)
    _, _, tail = rest.partition(END)
    DOC.write_text(head + section(measured) + tail, encoding="utf-8")
    print(table(measured))
    return 0


if __name__ == "__main__":
    sys.exit(main())
