"""Renderer: emails (alert, correction, digest) and Telegram posts from items rows."""
import re
from html.parser import HTMLParser
from datetime import datetime, timezone

import pytest
import sqlalchemy as sa
from fixtures_render import seed_item, telegram_problems
from jinja2 import TemplateNotFound

from bot.render.html import telegram as tg
from bot.config import ConfigError
from bot.render.html.plaintext import to_text
from bot.render.renderer import BUNDLED, TEMPLATES, Renderer, one_line
from bot.store.db import open_db
from bot.store.schema import items, sources

LINKS = {"unsubscribe": "%%UNSUB:ab_c-1.2@x%%", "preferences": "https://news.example/preferences/%%TOKEN%%"}


def words(text: str) -> set[str]:
    return set(re.findall(r"\w+", text.lower()))


@pytest.fixture
def renderer(render_config):
    return Renderer(render_config())


def test_bundled_templates_found_next_to_the_package():
    assert BUNDLED.is_dir()
    for name in TEMPLATES:
        assert (BUNDLED / name).is_file(), name


@pytest.mark.parametrize("lang,expected", [
    ("fr", "Publié le 29 novembre 2026 à 07:10"), ("en", "Published November 29, 2026 at 7:10 AM"),
    (None, "Publié le 29 novembre 2026 à 07:10"), ("xx", "Publié le 29 novembre 2026 à 07:10"),
    ("de", "Veröffentlicht am 29. November 2026 um 07:10"), ("ar", "نُشر في 29 نوفمبر 2026، 7:10 ص"),
])
def test_localized_dates(renderer, lang, expected):
    mail = renderer.email_alert(seed_item(), lang, LINKS)
    assert expected in mail.text and expected in mail.html


def test_first_of_month_and_configured_zone(render_config):
    r = Renderer(render_config(timezone="America/New_York", language="en"))
    item = seed_item(published_at=datetime(2026, 12, 1, 15, 5, tzinfo=timezone.utc))
    assert "December 1, 2026 at 10:05 AM" in r.email_alert(item, None, LINKS).text
    fr = Renderer(render_config()).email_alert(item, "fr", LINKS).text
    assert "1er décembre 2026 à 16:05" in fr


@pytest.mark.parametrize("lang,update,subject", [
    ("fr", False, "FLASH INFO — « Les attaques de Haftar"),
    ("en", False, "FLASH INFO — « Les attaques de Haftar"),
    ("fr", True, "Mise à jour : FLASH INFO — « Les attaques"),
    ("en", True, "Update: FLASH INFO — « Les attaques"),
])
def test_subject_badge_and_update_prefix(renderer, lang, update, subject):
    mail = renderer.email_alert(seed_item(), lang, LINKS, update=update)
    assert mail.subject.startswith(subject)
    assert "FLASH INFO :" not in mail.subject
    assert '<span class="badge"' in mail.html


def test_headline_derived_from_title_when_missing(renderer):
    mail = renderer.email_alert(seed_item(headline="", title="FLASH INFO - Séisme à Nice"), "fr", LINKS)
    assert mail.subject == "FLASH INFO — Séisme à Nice"


@pytest.mark.parametrize("title", [
    "Alerte\r\nBcc: victim@example.com", "Titre\x00nul\x07", "A\u202eRTL override\u202c\u200f",
    "Tab\there\u2028line", "x" * 10_000, "😀" * 5000,
])
def test_subject_is_one_clean_line(renderer, title):
    mail = renderer.email_alert(seed_item(headline=title, label=None, is_flash=False), "fr", LINKS)
    s = mail.subject
    assert len(s) <= 200 and s.strip() == s and s
    assert not any(ord(c) < 32 or ord(c) == 127 or c in "\u2028\u2029\u202a\u202b\u202c\u202d\u202e\u200e\u200f"
                   for c in s)
    assert "\n" not in s and "\r" not in s


def test_links_verbatim_in_both_parts_and_required(renderer):
    for mail in (renderer.email_alert(seed_item(), "fr", LINKS),
                 renderer.email_digest([seed_item()], "en", LINKS)):
        for url in LINKS.values():
            assert url in mail.text and f'href="{url}"' in mail.html
    with pytest.raises(ValueError, match="unsubscribe"):
        renderer.email_alert(seed_item(), "fr", {"preferences": "x"})


def test_css_inlined_once(renderer):
    html = renderer.email_alert(seed_item(), "fr", LINKS).html
    assert "<style" not in html and 'style="' in html and "class=\"badge\"" in html


@pytest.mark.parametrize("kind", ["alert-fr", "alert-en", "update-fr", "update-en", "digest-fr", "digest-en"])
def test_text_part_carries_every_word_of_the_html_part(renderer, kind):
    what, lang = kind.split("-")
    if what == "digest":
        mail = renderer.email_digest([seed_item(), seed_item(label=None, is_flash=False, headline="Autre")],
                                     lang, LINKS)
    else:
        mail = renderer.email_alert(seed_item(), lang, LINKS, update=what == "update")
    visible = to_text(mail.html, refs=False)
    assert len(words(visible)) > 20
    assert words(visible) <= words(mail.text), words(visible) - words(mail.text)
    assert "Haftar" in mail.text and "Se désinscrire" in mail.text or "Unsubscribe" in mail.text


def test_alert_keeps_link_words_and_drops_chrome(renderer):
    mail = renderer.email_alert(seed_item(), "fr", LINKS)
    flat = " ".join(mail.text.split())
    for phrase in ["les éléments de Haftar [", "soutient le GNA [", "Ankara [", "Çavuşoğlu ["]:
        assert phrase in flat
    for chrome in ["NEWSLETTER", "wpDiscuz", "Poster un Commentaire", "RÉSEAUX SOCIAUX", "Partager"]:
        assert chrome not in mail.text and chrome not in mail.html


def test_long_article_shows_lead_and_read_more(renderer):
    html = "".join(f"<p>Paragraphe {i} " + "mot " * 150 + "</p>" for i in range(40))
    mail = renderer.email_alert(seed_item(content_html=html), "fr", LINKS)
    assert "Paragraphe 0" in mail.text and "Paragraphe 39" not in mail.text
    assert "Lire la suite sur le site" in mail.text and "Lire la suite sur le site" in mail.html


HOSTILE_ITEMS = [
    {"headline": "<script>alert(1)</script>Titre"},
    {"headline": '"><img src=x onerror=alert(1)>'},
    {"link": "javascript:alert(1)"},
    {"link": 'https://a.example/"><script>alert(1)</script>'},
    {"author": "<iframe src=https://evil.example>"},
    {"source_name": "<svg onload=alert(1)>"},
    {"categories": ["<object data=x>"], "label": None, "is_flash": False},
    {"content_html": "<p>ok</p><script>alert(1)</script><iframe src='https://evil.example'></iframe>"},
    {"content_html": '<p onmouseover="alert(1)">ok <a href="vbscript:alert(1)">v</a> <a href="data:text/html,x">d</a></p>'},
    {"content_html": '<p style="background:url(javascript:alert(1));width:expression(alert(1))">ok</p>'},
    {"content_html": '<meta http-equiv="refresh" content="0;url=https://evil.example"><p>ok</p>'},
    {"content_html": '<svg><script>alert(1)</script></svg><object data="evil.swf"></object><p>ok</p>'},
    {"content_html": '<p>ok<img src="https://evil.example/p.gif" width="1" height="1"></p>'},
    {"summary_html": "<p>ok</p><embed src=evil.example>", "content_html": ""},
]
FORBIDDEN = ["<script", "alert(1)", "onerror", "onload", "onmouseover", "javascript:", "vbscript:",
             "data:text", "<iframe", "<object", "<embed", "<svg", "expression(", "http-equiv",
             "evil.example"]
LIVE_TAGS = {"script", "iframe", "object", "embed", "svg", "form", "frame", "applet", "base", "link"}


class _Live(HTMLParser):
    """Collects markup that a mail client would act on (tags, handlers, script URLs)."""

    def __init__(self):
        super().__init__()
        self.found = []

    def handle_starttag(self, tag, attrs):
        if tag in LIVE_TAGS or (tag == "meta" and any(k == "http-equiv" for k, _ in attrs)):
            self.found.append(tag)
        for k, v in attrs:
            v = (v or "").lower().replace(" ", "")
            if k.startswith("on") or (k in ("href", "src") and v.startswith(("javascript:", "vbscript:", "data:"))):
                self.found.append(f"{tag}[{k}]")
            if k == "style" and ("expression(" in v or "javascript:" in v or "url(" in v):
                self.found.append(f"{tag}[style]")


def live_markup(html: str) -> list[str]:
    p = _Live()
    p.feed(html)
    return p.found


@pytest.mark.parametrize("over", HOSTILE_ITEMS, ids=lambda o: next(iter(o)) + ":" + str(next(iter(o.values())))[:20])
def test_hostile_items_inject_nothing(renderer, over):
    item = seed_item(**over)
    outputs = [renderer.email_alert(item, "fr", LINKS), renderer.email_alert(item, "en", LINKS, update=True),
               renderer.email_digest([item], "fr", LINKS)]
    post = renderer.telegram_post(item)
    assert telegram_problems(post) == []
    for m in outputs:
        assert live_markup(m.html) == [], over
        assert "\n" not in m.subject and "\r" not in m.subject
    if "content_html" in over or "summary_html" in over or "link" in over:
        # Feed HTML and links are sanitized away, not merely escaped.
        for out in [post] + [m.html for m in outputs] + [m.text for m in outputs]:
            for bad in FORBIDDEN:
                assert bad not in out.lower(), (bad, over)
    else:
        # Plain-text fields are shown as text: escaped in HTML, never a tag.
        assert all(f"<{t}" not in post for t in LIVE_TAGS | {"img"})
        if "headline" in over:
            assert over["headline"] in tg.visible_text(post)
            assert over["headline"] in outputs[0].text


def test_telegram_post_seed_keeps_link_words(renderer):
    post = renderer.telegram_post(seed_item())
    assert telegram_problems(post) == [] and tg.visible_len(post) <= 4096
    text = " ".join(tg.visible_text(post).split())
    assert text.startswith("🔴 FLASH INFO « Les attaques de Haftar")
    for phrase in ["les éléments de Haftar comme", "en Libye qui alimente le terrorisme", "le GNA,",
                   "Ankara a exhorté", "Lire l’article"]:
        assert phrase in text
    assert 'href="https://www.example-news.fr/2020/05/21/flash-info-haftar/"' in post
    assert "NEWSLETTER" not in post and "wpDiscuz" not in post


@pytest.mark.parametrize("lang,update,marker", [("fr", True, "Correction — Mis à jour le 29 novembre 2026 à 07:25"),
                                                ("en", True, "Correction — Updated November 29, 2026 at 7:25 AM"),
                                                ("fr", False, "🔴 FLASH INFO")])
def test_telegram_update_variant(renderer, lang, update, marker):
    post = renderer.telegram_post(seed_item(), update=update, language=lang)
    assert tg.visible_text(post).startswith(("✏️ " if update else "") + marker)


@pytest.mark.parametrize("over", [
    {"content_html": "<p>" + "Attaque 😀 à Tripoli &amp; <b>Benghazi</b> 🇱🇾 " * 900 + "</p>"},
    {"content_html": "".join(f"<p>{i} <a href='https://a.example/{i}'>lien {i}</a> 😀</p>" for i in range(2000))},
    {"headline": "😀 " * 6000},
    {"headline": "x" * 20000, "content_html": "y" * 20000},
])
def test_telegram_long_posts_fit(renderer, over):
    post = renderer.telegram_post(seed_item(**over))
    assert telegram_problems(post) == []
    assert tg.visible_len(post) <= 4096
    assert "…" in post
    assert post.endswith('<a href="https://www.example-news.fr/2020/05/21/flash-info-haftar/">Lire l’article</a>') \
        or post.endswith("flash-info-haftar/</a>")


def test_digest_groups_flash_first(renderer):
    older = datetime(2026, 11, 28, 8, 0, tzinfo=timezone.utc)
    entries = [
        seed_item(headline="Politique A", label=None, is_flash=False, categories=["Politique"], published_at=older),
        seed_item(headline="Sport B", label=None, is_flash=False, categories=[], source_name="Sports"),
        seed_item(headline="Flash C"),
        seed_item(headline="Politique D", label=None, is_flash=False, categories=["Politique"]),
    ]
    mail = renderer.email_digest(entries, "fr", LINKS, date=datetime(2026, 11, 29, 6, 0, tzinfo=timezone.utc))
    assert mail.subject == "Flashbot — L’essentiel du 29 novembre 2026"
    order = [mail.text.index(x) for x in ["FLASH INFO\n", "Flash C", "POLITIQUE", "Politique D",
                                          "Politique A", "SPORTS", "Sport B"]]
    assert order == sorted(order)
    assert "4 articles depuis la dernière lettre." in mail.text and "TURQUIE / LIBYE" in mail.text


def test_empty_digest(renderer):
    mail = renderer.email_digest([], "en", LINKS, date=datetime(2026, 11, 29).date())
    assert "Nothing new since the last digest." in mail.text and "Nothing new" in mail.html
    assert mail.subject == "Flashbot — Daily digest, November 29, 2026"


def test_operator_override_folder(render_config, tmp_path):
    folder = tmp_path / "mytemplates"
    folder.mkdir()
    (folder / "telegram_post.html").write_text("<b>{{ item.headline }}</b> <u>perso</u> {{ item.link }}")
    (folder / "email_alert.txt").write_text("PERSO {{ item.headline }} {{ links.unsubscribe }}\n")
    r = Renderer(render_config(templates="mytemplates"))
    post = r.telegram_post(seed_item(headline="A & <b>"))
    assert post.startswith("<b>A &amp; &lt;b&gt;</b> <u>perso</u>")
    mail = r.email_alert(seed_item(), "fr", LINKS)
    assert mail.text.startswith("PERSO « Les attaques") and LINKS["unsubscribe"] in mail.text
    assert "Haftar" in mail.html  # the HTML part still comes from the bundled template


def test_override_folder_must_exist(render_config):
    with pytest.raises(ConfigError, match="bot.templates"):
        Renderer(render_config(templates="nope"))


@pytest.mark.parametrize("name", ["../pyproject.toml", "/etc/passwd", "web/../../README.md",
                                  "email_alert.html/../../config.toml", "confirm.html", "..\\x"])
def test_template_names_guarded(renderer, name):
    with pytest.raises(TemplateNotFound):
        renderer.env.get_template(name)


def test_override_cannot_include_arbitrary_files(render_config, tmp_path):
    folder = tmp_path / "t"
    folder.mkdir()
    (folder / "telegram_post.html").write_text('{% include "../../../../etc/passwd" %}')
    with pytest.raises(TemplateNotFound):
        Renderer(render_config(templates="t")).telegram_post(seed_item())


def test_renders_a_real_items_row(renderer, tmp_path):
    engine = open_db(f"sqlite:///{tmp_path / 'r.db'}")
    now = datetime(2026, 11, 29, 6, 10, tzinfo=timezone.utc)
    row = {k: v for k, v in seed_item().items() if k in items.c and k != "id"}
    with engine.begin() as conn:
        sid = conn.execute(sa.insert(sources).values(name="Example News", url="http://x")).inserted_primary_key[0]
        conn.execute(sa.insert(items).values(**{**row, "source_id": sid, "content_hash": "h", "detected_at": now}))
        got = conn.execute(sa.select(items, sources.c.name.label("source_name"))
                           .join(sources, sources.c.id == items.c.source_id)).one()._mapping
    mail = renderer.email_alert(got, "fr", LINKS)
    assert "Publié le 29 novembre 2026 à 07:10 · par La rédaction · Example News" in mail.text
    assert telegram_problems(renderer.telegram_post(got)) == []


def test_one_line():
    assert one_line("a\r\nb\tc\x00d\u202e") == "a b c d"
    assert one_line("mot " * 100, 20).endswith("…") and len(one_line("mot " * 100, 20)) <= 20


def test_first_link_of_a_post_is_the_article(renderer):
    # Telegram previews the first link: it must be the article, not a tag page inside the text.
    post = renderer.telegram_post(seed_item())
    first = re.search(r'<a href="([^"]+)"', post).group(1)
    assert first == "https://www.example-news.fr/2020/05/21/flash-info-haftar/"


@pytest.mark.parametrize("over", [
    {"categories": "Politique"}, {"categories": None}, {"categories": [None, 3, "Sport"]},
    {"published_at": "2026-11-29T06:10:00+00:00"}, {"published_at": "pas une date"},
    {"published_at": datetime(2026, 11, 29, 6, 10)}, {"content_html": None, "summary_html": None},
    {"link": None}, {"title": None, "headline": None}, {"author": 42},
])
def test_odd_field_values_render(renderer, over):
    item = seed_item(**over)
    mail = renderer.email_alert(item, "fr", LINKS)
    assert mail.subject and mail.text and LINKS["unsubscribe"] in mail.text
    assert telegram_problems(renderer.telegram_post(item)) == []
    renderer.email_digest([item], "en", LINKS)
