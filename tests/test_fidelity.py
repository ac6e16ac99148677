"""Content fidelity on real-world feeds: every article word reaches the reader in order, no marked chrome does.

The corpus is tests/fidelity/ (README.md there): real feed items from public feed readers' test data,
their chrome marked by hand in manifest.json. Figures in TESTING.md come from tests/fidelity/report.py.
"""
from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path

import pytest
from fixtures_render import telegram_problems

from fidelity import layout, measure, report

MANIFEST = json.loads(measure.MANIFEST.read_text(encoding="utf-8"))
IDS = [item["id"] for item in MANIFEST["items"]]


@lru_cache(maxsize=1)
def corpus() -> dict[str, tuple[measure.Item, list[measure.Output]]]:
    """Every item measured once per session (parsing the 30 feeds is the slow part)."""
    return {item.id: (item, outs) for item, outs in report.results()}


@lru_cache(maxsize=1)
def renderer():
    from bot.config import parse_config
    from bot.render.renderer import Renderer
    return Renderer(parse_config({"bot": {"timezone": "Europe/Paris"}}, Path(__file__).parent))


def test_corpus_is_real_labelled_and_sourced():
    feeds = {p.name for p in measure.FEEDS.iterdir()}
    assert feeds == set(MANIFEST["feeds"]), "every feed file has a manifest entry, and only those"
    for name, feed in MANIFEST["feeds"].items():
        assert feed["from"] and feed["licence"] and feed["newest_item"] and feed["platform"], name
        licence_file = re.search(r"LICENSES/([\w.-]+)", feed["licence"])
        assert licence_file and (measure.HERE / "LICENSES" / licence_file.group(1)).is_file(), name
    assert len(IDS) == len(set(IDS)) >= 30
    groups = {report.group(i["feed"]) for i in MANIFEST["items"]}
    assert {"WordPress", "WordPress.com (Jetpack)", "Blogger", "Tumblr", "Medium", "Mailing-list archives",
            "News sites and agencies"} <= groups
    for item in MANIFEST["items"]:
        assert all(m.get("why") and ("text" in m) != ("url" in m) for m in item["chrome"]), item["id"]


@pytest.mark.parametrize("item_id", IDS)
def test_article_words_in_order_and_no_chrome(item_id):
    item, outs = corpus()[item_id]
    for out in outs:
        assert out.kept == out.expected, (
            f"{item_id}: {out.name} keeps {out.kept} of {out.expected} article words; first lost: {out.missing}")
        assert not out.leaked, f"{item_id}: marked chrome reaches the {out.name}: {out.leaked}"


@pytest.mark.parametrize("item_id", IDS)
def test_text_part_and_post_layout(item_id):
    from bot.render.html.plaintext import lead_html, to_text
    from bot.render.renderer import ALERT_MAX_CHARS

    item, _ = corpus()[item_id]
    r = renderer()
    view = r.item_view(item.entry, "fr")
    body = lead_html(view["body_clean"], ALERT_MAX_CHARS)[0] if view["body_clean"] else ""
    assert layout.text_problems(body, to_text(body)) == []
    post = r.telegram_post(item.entry)
    assert telegram_problems(post) == []
    assert layout.post_problems(view["body_clean"], post) == []


def test_testing_md_figures_are_the_measured_ones():
    doc = report.DOC.read_text(encoding="utf-8")
    shown = doc.partition(report.START)[2].partition(report.END)[0].strip()
    expected = report.table(list(corpus().values()))
    assert shown == expected, "TESTING.md is stale: run .venv/bin/python tests/fidelity/report.py"
