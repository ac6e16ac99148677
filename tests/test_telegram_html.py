"""Telegram HTML subset: conversion, normalization and the 4096 UTF-16-unit cut."""
import random

import pytest
from fixtures_render import GOLDEN, SEED_URL, telegram_problems

from bot.render.html import telegram as tg
from bot.render.html.plaintext import sanitize

SEED_HTML = (GOLDEN / "seed_article.input.html").read_text(encoding="utf-8")


def test_checker_rejects_what_telegram_rejects():
    # The checker itself must be able to fail, or every test below proves nothing.
    for bad in ["<p>x</p>", "a < b", "a & b", "<b>x", "<b><i>x</b></i>", '<a href="javascript:x">y</a>',
                '<b class="x">y</b>', "<pre><b>x</b></pre>", "x > y"]:
        assert telegram_problems(bad), bad
    assert telegram_problems('<b>x</b> &amp; <a href="https://a.example/?a=1&amp;b=2">y</a>') == []


@pytest.mark.parametrize("html,expected", [
    ("<p>a</p><p>b</p>", "a\n\nb"),
    ("<p><strong>gras</strong> <em>it</em> <ins>u</ins> <del>s</del> <strike>s2</strike></p>",
     "<b>gras</b> <i>it</i> <u>u</u> <s>s</s> <s>s2</s>"),
    ("<h2>Titre</h2><p>x</p>", "<b>Titre</b>\n\nx"),
    ("<ul><li>un</li><li>deux</li></ul>", "• un\n• deux"),
    ("<ol><li>un</li><li>deux</li></ol>", "1. un\n2. deux"),
    ("<p>a<br>b</p>", "a\nb"),
    ("<p>1 &lt; 2 &amp;&amp; 3 &gt; 2</p>", "1 &lt; 2 &amp;&amp; 3 &gt; 2"),
    ("<blockquote><p>q1</p><p>q2</p></blockquote>", "<blockquote>q1\n\nq2</blockquote>"),
    ("<blockquote><blockquote><p>q</p></blockquote></blockquote>", "<blockquote>q</blockquote>"),
    ("<pre>x &lt; y\n  z</pre>", "<pre>x &lt; y\n  z</pre>"),
    ('<p><a href="https://a.example/?a=1&amp;b=&quot;2&quot;">lien</a></p>',
     '<a href="https://a.example/?a=1&amp;b=&quot;2&quot;">lien</a>'),
    ('<p><a href="https://a.example/"><b>gras</b> lien</a></p>', '<a href="https://a.example/"><b>gras</b> lien</a>'),
    ('<p><a href="https://a.example/"><code>f(x)</code></a></p>', '<a href="https://a.example/">f(x)</a>'),
    ("<p><code><b>x</b></code></p>", "<code>x</code>"),
    ("<table><tr><td>a</td><td>b</td></tr></table>", "a | b"),
    ('<p>x<img src="https://a.example/i.jpg" alt="photo"></p>', "x"),
])
def test_from_html(html, expected):
    out = tg.from_html(sanitize(html, "https://a.example/"))
    assert out == expected
    assert telegram_problems(out) == []


def test_seed_article_link_words_survive_and_chrome_does_not():
    out = tg.from_html(sanitize(SEED_HTML, SEED_URL))
    assert telegram_problems(out) == []
    text = " ".join(tg.visible_text(out).split())
    for phrase in ["les éléments de Haftar comme", "l’instabilité en Libye qui alimente le terrorisme",
                   "à l’infrastructure du pays", "soutient le GNA,", "Ankara a exhorté",
                   "Çavuşoğlu a discuté", "Sergey Lavrov"]:
        assert phrase in text
    for chrome in ["Poster un", "NEWSLETTER", "wpDiscuz", "Partager", "lire aussi", "RÉSEAUX"]:
        assert chrome.lower() not in text.lower()


@pytest.mark.parametrize("s,units", [("abc", 3), ("é", 1), ("😀", 2), ("a😀b🇫🇷", 8), ("€", 1)])
def test_utf16_len(s, units):
    assert tg.utf16_len(s) == units == len(s.encode("utf-16-le")) // 2


@pytest.mark.parametrize("html,visible", [
    ("<p>x</p>", "x"), ("<b>a<i>b</b>c</i>", "abc"), ("a < b & c > d", "a < b & c > d"),
    ("<script>alert(1)</script>ok", "ok"), ('<a href="javascript:alert(1)">ok</a>', "ok"),
    ('<a href="https://a.example" onclick="x">ok</a>', "ok"), ("</b>ok<b>", "ok"),
    ("<a href='https://a.example'><a href='https://b.example'>x</a></a>", "x"),
    ("&lt;b&gt;not a tag&lt;/b&gt; &amp;amp;", "<b>not a tag</b> &amp;"),
    ("<pre><code>x<b>y</b></code></pre>", "xy"), ("<br>line<br/>two", "\nline\ntwo"),
    ("<blockquote>a<blockquote>b</blockquote></blockquote>", "ab"),
])
def test_normalize_always_valid(html, visible):
    out = tg.normalize(html)
    assert telegram_problems(out) == []
    assert tg.visible_text(out) == visible


def _long_post(n: int, seed: int) -> str:
    rnd = random.Random(seed)
    pieces = ["Attaque", "à", "Tripoli", "😀", "🇫🇷", "<b>gras</b>", "<i>mot</i>", "&amp;",
              "&lt;tag&gt;", '<a href="https://a.example/?x=1&amp;y=2">lien long</a>', "\n\n",
              "<blockquote>citation</blockquote>", "<code>x&lt;y</code>", "«\xa0guillemets\xa0»"]
    return " ".join(rnd.choice(pieces) for _ in range(n))


@pytest.mark.parametrize("seed", range(25))
def test_cut_fits_4096_units_and_stays_valid(seed):
    html = _long_post(3000, seed)
    tail = '\n\n<a href="https://site.example/a?b=1&amp;c=2">Lire l’article</a>'
    out = tg.cut(html, tg.LIMIT, tail)
    assert telegram_problems(out) == []
    assert tg.visible_len(out) <= tg.LIMIT
    assert tg.visible_len(out) > tg.LIMIT - 120  # it used the room, not a tiny prefix
    assert out.endswith("…" + tail)
    visible = tg.visible_text(out)
    whole = tg.visible_text(html)
    kept = visible[: -len(tg.visible_text("…" + tail))]
    assert whole.startswith(kept)
    # A word boundary: the kept text ends where a word of the original ends.
    rest = whole[len(kept):]
    assert rest == "" or not rest[0].isalnum() or not kept[-1].isalnum()


def test_cut_never_splits_a_surrogate_pair_or_entity():
    html = "😀" * 3000  # 6000 units, no spaces at all
    out = tg.cut(html, 101)
    assert tg.visible_len(out) <= 101 and "\ud83d" not in out.encode("utf-16", "surrogatepass").decode("utf-16")
    assert set(tg.visible_text(out)) <= {"😀", "…"}
    amp = tg.cut("&amp;" * 5000, 100)
    assert telegram_problems(amp) == [] and tg.visible_text(amp) == "&" * 99 + "…"


def test_short_input_unchanged_and_open_tag_at_cut_dropped():
    assert tg.cut("<b>court</b>", 100, "x") == "<b>court</b>"
    out = tg.cut("mot " * 20 + '<a href="https://a.example/">' + "lien " * 50 + "</a>", 120)
    assert telegram_problems(out) == [] and out.endswith("</a>…")
    out = tg.cut("word " * 10 + "<b>" + "x" * 100 + "</b>", 52)
    assert "<b></b>" not in out and telegram_problems(out) == []


def test_escape_attr():
    assert tg.escape_attr('https://a.example/?q="x"&y=<z>') == \
        "https://a.example/?q=&quot;x&quot;&amp;y=&lt;z&gt;"
