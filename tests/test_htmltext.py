"""Sanitizing feed HTML, removing page chrome, and HTML → plain text without losing words."""
import re

import pytest
from fixtures_render import GOLDEN, SEED_URL

from bot.render.html.plaintext import cut_words, lead, lead_html, paragraphs, sanitize, to_text

SEED_HTML = (GOLDEN / "seed_article.input.html").read_text(encoding="utf-8")
LINK_WORDS = ["Turquie", "Khalifa Haftar", "Russie", "Haftar", "Bloomberg", "Libye", "terrorisme",
              "infrastructure", "Khmeimim", "Çavuşoğlu", "Sergey Lavrov", "politique", "GNA",
              "Ankara", "AA"]
CHROME = ["Partager", "Twitter", "Facebook", "lire aussi", "al-Watiya", "Similaire",
          "Ankara met en garde", "Que pensez-vous", "21", "NEWSLETTER", "Inscrivez-vous",
          "RÉAGISSEZ", "Poster un Commentaire", "Soyez le premier", "Me notifier", "avatar",
          "wpDiscuz", "RÉSEAUX SOCIAUX", "Red'Action", "evil.example", "stats.wp.com", "gravatar"]


def words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def test_seed_article_keeps_every_link_word_in_its_sentence():
    text = to_text(SEED_HTML, SEED_URL)
    flat = " ".join(text.split())
    assert "considérerons les éléments de Haftar [" in flat
    assert "l’instabilité en Libye [" in flat and "alimente le terrorisme [" in flat
    assert "La Turquie soutient le GNA [" in flat and "Ankara [" in flat
    assert "Çavuşoğlu [" in flat and "a discuté de la Libye avec son homologue russe" in flat
    for w in LINK_WORDS:
        assert re.search(rf"(?<!\w){re.escape(w)}(?!\w)", flat), w


@pytest.mark.parametrize("chrome", CHROME)
def test_seed_article_chrome_is_gone(chrome):
    clean = sanitize(SEED_HTML, SEED_URL)
    text = to_text(SEED_HTML, SEED_URL)
    body_words = " ".join(text.split())
    assert chrome.lower() not in clean.lower().replace("’", "'")
    if chrome == "21":
        assert not re.search(r"(?m)^21$", text)
    else:
        assert chrome.lower() not in body_words.lower().replace("’", "'")


def test_every_article_paragraph_survives_chrome_removal():
    text = " ".join(to_text(SEED_HTML, SEED_URL, refs=False).split())
    for sentence in ["a intensifié ses attaques contre des civils en mai.", "Avec AA.",
                     "pour le commandant.", "indique le communiqué.", "dans les prochaines heures"]:
        assert sentence in text


HOSTILE = [
    ("script", "<p>ok</p><script>alert(1)</script>", ["<script", "alert"]),
    ("script-upper", "<SCRIPT SRC=//evil.example/x.js></SCRIPT><p>ok</p>", ["script", "evil.example"]),
    ("iframe", '<iframe src="https://evil.example/"></iframe><p>ok</p>', ["iframe", "evil.example"]),
    ("object", '<object data="x.swf"><embed src="x.swf"></object><p>ok</p>', ["object", "embed", "swf"]),
    ("svg-onload", "<svg onload=alert(1)><circle r=1 /></svg><p>ok</p>", ["svg", "onload", "alert"]),
    ("img-onerror", '<p>ok<img src="https://a.example/i.jpg" onerror="alert(1)"></p>', ["onerror", "alert"]),
    ("event-handler", '<p onclick="steal()" onmouseover="x()">ok</p>', ["onclick", "onmouseover", "steal"]),
    ("js-url", '<p><a href="javascript:alert(1)">ok</a></p>', ["javascript", "alert"]),
    ("js-url-entities", '<p><a href="jav&#x09;ascript:alert(1)">ok</a></p>', ["javascript", "alert"]),
    ("js-url-case", '<p><a href=" JaVaScRiPt:alert(1)">ok</a></p>', ["javascript", "alert"]),
    ("data-url", '<p><a href="data:text/html;base64,PHNjcmlwdD4=">ok</a></p>', ["data:", "base64"]),
    ("data-img", '<p>ok<img src="data:image/png;base64,iVBORw0KGgo="></p>', ["data:", "<img"]),
    ("vbscript-url", '<p><a href="vbscript:msgbox(1)">ok</a></p>', ["vbscript", "msgbox"]),
    ("css-expression", '<p style="width:expression(alert(1))">ok</p>', ["expression", "style="]),
    ("style-block", "<style>body{background:url(javascript:x)}</style><p>ok</p>", ["<style", "javascript"]),
    ("meta-refresh", '<meta http-equiv="refresh" content="0;url=https://evil.example"><p>ok</p>', ["meta", "evil.example"]),
    ("form", '<form action="https://evil.example"><input name=p><button>Go</button></form><p>ok</p>', ["form", "input", "evil.example"]),
    ("base", '<base href="https://evil.example/"><p><a href="/x">ok</a></p>', ["<base", "evil.example"]),
    ("link-css", '<link rel="stylesheet" href="https://evil.example/x.css"><p>ok</p>', ["<link", "evil.example"]),
    ("pixel-1x1", '<p>ok<img src="https://t.example/o.gif" width="1" height="1"></p>', ["t.example", "<img"]),
    ("pixel-0", '<p>ok<img src="https://t.example/i.gif" width="0"></p>', ["t.example"]),
    ("pixel-name", '<p>ok<img src="https://t.example/pixel.gif?id=42"></p>', ["t.example"]),
    ("feedburner", '<p>ok</p><img src="http://feeds.feedburner.com/~r/x/~4/abc">', ["feedburner"]),
    ("comment", "<p>ok<!-- <script>alert(1)</script> --></p>", ["<!--", "alert"]),
    ("unclosed", "<p>ok<b><i>still text", ["<script"]),
    ("mxss-noscript", '<noscript><p title="</noscript><img src=x onerror=alert(1)>"></noscript><p>ok</p>', ["onerror", "alert"]),
]


@pytest.mark.parametrize("name,html,forbidden", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_markup_never_survives(name, html, forbidden):
    clean = sanitize(html, "https://site.example/a/")
    for bad in forbidden:
        assert bad.lower() not in clean.lower(), (bad, clean)
    assert "ok" in clean and "ok" in to_text(html, "https://site.example/a/")


def test_urls_absolute_and_links_noopener():
    clean = sanitize('<p><a href="../b/">x</a> <a href="//cdn.example/y">y</a> '
                     '<img src="/img/p.jpg" alt="photo"></p>', "https://site.example/a/c.html")
    assert 'href="https://site.example/b/"' in clean
    assert 'href="https://cdn.example/y"' in clean
    assert 'src="https://site.example/img/p.jpg"' in clean and 'alt="photo"' in clean
    assert clean.count('rel="noopener noreferrer"') == 2


def test_relative_urls_without_base_are_dropped_but_words_stay():
    clean = sanitize('<p>Voir <a href="/x">Haftar</a> <img src="/p.jpg" alt="a"></p>', None)
    assert "href" not in clean and "<img" not in clean and "Haftar" in clean


def test_image_without_alt_gets_empty_alt():
    assert 'alt=""' in sanitize('<p>x<img src="https://a.example/p.jpg" width="600"></p>')


CHROME_BLOCKS = [
    '<div class="sharedaddy"><a href="https://t.example">Tweet</a></div>',
    '<div class="jp-relatedposts"><p><a href="https://a.example/x">Autre</a></p></div>',
    '<div id="wpdiscuz"><p>Un avis</p></div>',
    '<section class="newsletter-box"><p>Recevez tout</p></section>',
    '<ul class="social-icons"><li><a href="https://fb.example">fb</a></li></ul>',
    '<p><strong>Lire aussi :</strong> <a href="https://a.example/x">Un autre article</a></p>',
    '<h4>À lire aussi</h4><ul><li><a href="https://a.example/x">Un autre article</a></li></ul>',
    '<p>Read also: <a href="https://a.example/x">Another story</a></p>',
    "<p>Poster un Commentaire</p><p>Un commentaire de lecteur</p>",
    "<p>Leave a Reply</p><p>Your email address will not be published.</p>",
    "<h3>NEWSLETTER</h3><p>Inscrivez-vous pour suivre toute notre actualité.</p>",
    "<p>Partager :</p>",
    "<p>Share this:</p>",
    "<nav><a href='https://a.example/prev'>Précédent</a></nav>",
]


@pytest.mark.parametrize("chrome", CHROME_BLOCKS)
def test_chrome_blocks_removed(chrome):
    article = "<p>" + "Le conseil municipal a voté le budget de la ville pour l’année prochaine. " * 2 + "</p>"
    out = to_text(article + chrome, "https://site.example/")
    assert out.count("Le conseil municipal") == 2
    own = set(words(article))
    for w in set(words(re.sub(r"<[^>]+>", " ", chrome))) - own:
        assert w not in words(out), (w, out)


def test_article_text_mentioning_chrome_words_is_kept():
    html = ("<p>Partager les richesses : le gouvernement présente sa réforme fiscale.</p>"
            "<p>La newsletter du ministère sera publiée demain, a annoncé le porte-parole.</p>"
            "<p>Lire aussi la déclaration complète du ministre, publiée ce matin.</p>")
    assert words(to_text(html)) == words(re.sub(r"<[^>]+>", " ", html))


def test_structure_lists_quotes_headings_breaks_entities():
    html = ("<h2>Titre &amp; sous-titre</h2><p>Ligne un<br>ligne deux</p>"
            "<ul><li>pomme</li><li>poire<ul><li>williams</li></ul></li></ul>"
            "<ol start='3'><li>trois</li><li>quatre</li></ol>"
            "<blockquote><p>cité un</p><p>cité deux</p></blockquote><p>a&nbsp;b &lt;c&gt; &eacute;</p>"
            "<pre>  code\n    indenté</pre>")
    assert to_text(html) == (
        "Titre & sous-titre\n------------------\n\nLigne un\nligne deux\n\n"
        "- pomme\n- poire\n\n  - williams\n\n3. trois\n4. quatre\n\n"
        "> cité un\n>\n> cité deux\n\na\xa0b <c> é\n\n  code\n    indenté")


def test_wrapping_at_72_never_breaks_urls():
    url = "https://www.example-news.fr/" + "tres-long-chemin/" * 8
    text = to_text(f"<p>{'mot ' * 60}{url} fin</p>")
    assert url in text.split("\n")
    assert all(len(line) <= 72 for line in text.split("\n") if url not in line)


def test_bare_url_links_get_no_reference():
    out = to_text('<p><a href="https://a.example/x">https://a.example/x</a></p>')
    assert out == "https://a.example/x"


def test_same_url_one_reference():
    out = to_text('<p><a href="https://a.example/">A</a> et <a href="https://a.example/">B</a></p>')
    assert out == "A [1] et B [1]\n\n[1] https://a.example/"


def test_lead_whole_paragraphs_then_cut():
    html = "<p>Premier paragraphe court.</p><p>Deuxième.</p><p>" + "long " * 200 + "</p>"
    assert lead(html, 60) == "Premier paragraphe court.\n\nDeuxième."
    one = lead("<p>" + "mot " * 100 + "</p>", 50)
    assert len(one) <= 50 and one.endswith("…") and "mo…" not in one


def test_lead_html_keeps_first_blocks():
    clean = sanitize("<div><p>" + "a " * 50 + "</p><p>" + "b " * 50 + "</p><p>" + "c " * 50 + "</p></div>")
    out, was_cut = lead_html(clean, 250)
    assert was_cut and "b b" in out and "c c" not in out
    assert lead_html(clean, 10000) == (clean, False)


@pytest.mark.parametrize("text,n,expected", [
    ("abc def ghi", 20, "abc def ghi"),
    ("abc def ghi", 9, "abc def…"),
    ("abcdefghij", 5, "abcd…"),
    ("« mot »  suite", 7, "« mot…"),
])
def test_cut_words(text, n, expected):
    assert cut_words(text, n) == expected


def test_paragraphs_and_empty_input():
    assert paragraphs("<p>a <a href='https://x.example'>b</a></p><p>c</p>") == ["a b", "c"]
    assert to_text("") == "" and to_text(None) == "" and sanitize("   ") == ""


def test_french_quotes_and_colons_never_wrap_alone():
    text = to_text("<p>" + "mot " * 16 + "« putschistes » et encore : voilà ? oui ! " * 8 + "</p>")
    for line in text.split("\n"):
        assert not line.startswith(("»", ":", "?", "!")) and not line.endswith("«"), line
    assert " ".join(text.split()).count("« putschistes »") == 8


@pytest.mark.parametrize("html,expected", [
    ("<div>" * 5000 + "profond" + "</div>" * 5000, "profond"),
    ("<b><i>" * 3000 + "gras", "gras"),
    ("<p>" + "mot <a href='https://a.example/'>lien</a> " * 100_000 + "</p>", "mot lien"),
    ("<p>para</p>" * 100_000, "para"),
])
@pytest.mark.timeout(120)  # a hang guard only: no assertion on speed
def test_hostile_sizes_and_nesting_are_bounded(html, expected):
    from bot.render.html import telegram as tg
    clean = sanitize(html, "https://a.example/")
    text = to_text(html)
    post = tg.from_html(clean)
    assert expected in " ".join(text.split()) and expected.split()[0] in post


@pytest.mark.parametrize("html,expected", [
    ('<p>made a T<a href="https://t.example/">umblr </a>for this series</p>', "made a Tumblr [1] for this series"),
    ('<p>alternativ<a href="https://a.example/">e</a> spéciale</p>', "alternative [1] spéciale"),
    ('<p>(<span class="createlink"><a href="https://w.example/?do=create">?</a>OpenPGP signature</span>)</p>',
     "(? [1] OpenPGP signature)"),
    ('<p>enligt <a href="https://v.example/">VTI </a>32 cyklister</p>', "enligt VTI [1] 32 cyklister"),
    ('<p>a R<a href="https://r.example/">elay FM</a> member</p>', "a Relay FM [1] member"),
    ('<p>本文由<a href="https://g.example/">极客公园</a>原创</p>', "本文由极客公园 [1]原创"),
    ('<p>(<a href="https://a.example/">Docker</a>, <a href="https://b.example/">Linux</a>)</p>', "(Docker [1], Linux [2])"),
])
def test_references_are_spaced_and_attached_to_their_word(html, expected):
    assert to_text(html).split("\n\n[1]")[0] == expected


@pytest.mark.parametrize("width", range(20, 73, 3))
def test_a_reference_never_starts_a_line(width):
    html = "<p>" + " ".join(f'mot{i} <a href="https://a.example/{i}">lien{i}</a>' for i in range(40)) + "</p>"
    body = to_text(html, width=width).split("\n\n[1] ")[0]
    assert not re.search(r"(?m)^\[\d+\]", body)
    assert all(re.search(rf"lien{i} \[{i + 1}\]", " ".join(body.split())) for i in range(40))


def test_table_rows_are_lines_apart_from_the_paragraph_before():
    html = ("<p>Numbered as follows.</p><table><tr><th>X</th><th>Y</th></tr><tr><td>false</td>"
            "<td><a href='https://a.example/'>0</a></td></tr></table><p>After the table.</p>")
    assert to_text(html) == ("Numbered as follows.\n\nX | Y\nfalse | 0 [1]\n\nAfter the table.\n\n"
                             "[1] https://a.example/")
    from bot.render.html import telegram as tg
    assert tg.from_html(sanitize(html)) == ("Numbered as follows.\n\nX | Y\nfalse | "
                                           '<a href="https://a.example/">0</a>\n\nAfter the table.')


def test_heading_is_underlined_without_taking_the_next_line():
    html = ("<h2>Get the report</h2><a href='https://a.example/r.pdf'>Download the PDF</a>"
            "<h1>Part <a href='https://a.example/2'>two</a></h1><p>Text.</p>")
    assert to_text(html) == ("Get the report\n--------------\n\nDownload the PDF [1]\n\n"
                             "Part two [2]\n============\n\nText.\n\n[1] https://a.example/r.pdf\n[2] https://a.example/2")


def test_lists_and_quotes_stay_readable_when_nested():
    html = ("<blockquote><p>Quoted intro:</p><ul><li>first <a href='https://a.example/'>point</a></li>"
            "<li>second<ol><li>nested</li></ol></li></ul></blockquote>")
    assert to_text(html) == ("> Quoted intro:\n>\n> - first point [1]\n> - second\n>\n>   1. nested\n\n"
                             "[1] https://a.example/")
