"""Lead images: which picture of a feed entry is its photo (table-driven over real RSS parsed by
feedparser), how it shows in the alert mail (under the headline, alt text, explicit width; the text
part unchanged) and whether the Telegram post goes as a photo with caption (1,024 characters)."""
from __future__ import annotations

import pytest

from bot.config import parse_config
from bot.ingest.parse import parse_feed
from bot.render.html import telegram as tg
from bot.render.renderer import CAPTION_LIMIT, Renderer

PHOTO = "https://img.exemple.fr/2026/seisme.jpg"
MEDIA = 'xmlns:media="http://search.yahoo.com/mrss/"'


def _rss(inner: str, description: str = "<p>Texte.</p>", base: bool = True) -> bytes:
    link = "<link>https://www.exemple.fr/</link>" if base else ""
    desc = description.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0" {MEDIA}><channel><title>T</title>{link}'
            f"<item><title>FLASH INFO : Séisme</title><guid>g1</guid><link>https://www.exemple.fr/a</link>"
            f"<description>{desc}</description>{inner}</item></channel></rss>").encode()


CASES = [
    # (case, extra XML in the <item>, description HTML, expected (url, alt) or None)
    ("media:content", f'<media:content url="{PHOTO}" medium="image" width="1200" height="800"/>', "<p>x</p>", (PHOTO, None)),
    ("media:content typed", f'<media:content url="{PHOTO}" type="image/jpeg"/>', "<p>x</p>", (PHOTO, None)),
    ("media:content video is no photo", '<media:content url="https://v.exemple.fr/a.mp4" type="video/mp4"/>', "<p>x</p>", None),
    ("media:thumbnail", f'<media:thumbnail url="{PHOTO}" width="640" height="360"/>', "<p>x</p>", (PHOTO, None)),
    ("thumbnail too small", f'<media:thumbnail url="{PHOTO}" width="120" height="90"/>', "<p>x</p>", None),
    ("image enclosure", f'<enclosure url="{PHOTO}" type="image/jpeg" length="12345"/>', "<p>x</p>", (PHOTO, None)),
    ("audio enclosure", '<enclosure url="https://a.exemple.fr/a.mp3" type="audio/mpeg" length="1"/>', "<p>x</p>", None),
    ("first content img", "", f'<p>Texte</p><img src="{PHOTO}" alt="Les secours à Nice" width="800">', (PHOTO, "Les secours à Nice")),
    ("first img without size", "", f'<p><img src="{PHOTO}" alt="Nice"></p>', (PHOTO, "Nice")),
    ("tiny tracking pixel skipped", "",
     f'<img src="https://stats.exemple.fr/p.gif" width="1" height="1"><img src="{PHOTO}" width="600" alt="x">', (PHOTO, "x")),
    ("only a tracking pixel", "", '<p>Texte</p><img src="https://stats.exemple.fr/pixel.gif">', None),
    ("icon under 200 px", "", f'<img src="{PHOTO}" width="48" height="48" alt="icône">', None),
    ("relative media url", '<media:content url="/img/seisme.jpg" medium="image"/>', "<p>x</p>", None),
    ("data: URL", '<media:content url="data:image/png;base64,iVBORw0KGgo=" medium="image"/>',
     '<img src="data:image/png;base64,iVBORw0KGgo=" width="800">', None),
    ("javascript: src", "", '<img src="javascript:alert(1)" width="800">', None),
    ("media:content wins over content img", f'<media:content url="{PHOTO}" medium="image"/>',
     '<img src="https://img.exemple.fr/autre.jpg" width="800">', (PHOTO, None)),
]


@pytest.mark.parametrize("case,extra,description,expected", CASES, ids=[c[0] for c in CASES])
def test_lead_image(case, extra, description, expected):
    result = parse_feed(_rss(extra, description), {"Content-Type": "application/rss+xml"}, "https://www.exemple.fr/feed")
    assert result.error is None, result.error
    (item,) = result.items
    assert ((item.image_url, item.image_alt) if item.image_url else None) == expected


def test_relative_content_img_without_any_base_is_dropped():
    # A local file without a feed link: nothing can make the URL absolute, so there is no photo.
    result = parse_feed(_rss("", '<img src="/img/a.jpg" width="800">', base=False), {}, None)
    assert result.items[0].image_url is None


def test_relative_content_img_is_resolved_against_the_feed():
    result = parse_feed(_rss("", '<img src="/img/a.jpg" width="800" alt="a">'), {}, "https://www.exemple.fr/feed")
    assert result.items[0].image_url == "https://www.exemple.fr/img/a.jpg"


@pytest.fixture
def renderer(tmp_path):
    def make(**sections):
        return Renderer(parse_config({"bot": {"timezone": "Europe/Paris"}, **sections}, tmp_path, env={}))
    return make


ARTICLE = "".join(f"<p>Paragraphe {i} : les secours ont travaillé toute la nuit dans les quartiers touchés.</p>"
                  for i in range(60))  # an article long enough not to be an image-only mail


def _item(**over) -> dict:
    item = {"id": 7, "title": "FLASH INFO : Séisme à Nice", "headline": "Séisme à Nice", "label": "FLASH INFO",
            "link": "https://www.exemple.fr/a", "summary_html": "",
            "content_html": f'<p>Un séisme a frappé Nice.</p><p><img src="{PHOTO}" alt="Les secours" width="800"></p>{ARTICLE}',
            "categories": [], "revision": 0, "is_flash": True, "source_name": "Exemple", "image_url": PHOTO,
            "image_alt": "Les secours"}
    item.update(over)
    return item


LINKS = {"unsubscribe": "https://x/u", "preferences": "https://x/p"}


def test_mail_shows_the_photo_under_the_headline_once_and_keeps_the_text_part(renderer):
    with_photo = renderer().email_alert(_item(), "fr", LINKS)
    without = renderer().email_alert(_item(image_url=None), "fr", LINKS)
    html = with_photo.html
    assert html.count(f'src="{PHOTO}"') == 1  # under the headline, not again in the article
    img = html[html.index("<img"):html.index(">", html.index("<img"))]
    assert 'alt="Les secours"' in img and 'width="560"' in img and "max-width" in img
    assert html.index("</h1>") < html.index("<img") < html.index("Un séisme")
    assert with_photo.text == without.text  # the text part never changes
    off = renderer(email={"sender": "a@b.fr", "lead_image": False}).email_alert(_item(), "fr", LINKS)
    assert off.html.count(f'src="{PHOTO}"') == 1 and off.html.index("Un séisme") < off.html.index("<img")


def test_no_photo_in_a_mail_with_too_little_text_for_it(renderer):
    short = _item(content_html="<p>Un séisme a frappé Nice.</p>")
    assert PHOTO not in renderer().email_alert(short, "fr", LINKS).html  # it would be an image-only mail
    assert renderer().telegram_message(short).photo == PHOTO  # Telegram still shows it


def test_alt_text_falls_back_to_the_headline(renderer):
    html = renderer().email_alert(_item(image_alt=None), "fr", LINKS).html
    assert 'alt="Séisme à Nice"' in html


@pytest.mark.parametrize("body_chars,photo", [(200, True), (CAPTION_LIMIT, False), (3000, False)])
def test_telegram_photo_only_when_the_post_fits_a_caption(renderer, body_chars, photo):
    r = renderer()
    item = _item(content_html="<p>" + "x" * body_chars + "</p>")
    post = r.telegram_message(item, language="fr")
    assert (post.photo == PHOTO) is photo
    assert post.text == r.telegram_post(item)  # the same post, as caption or as text
    if photo:
        assert tg.visible_len(post.text) <= CAPTION_LIMIT
    assert r.telegram_message(item, photos=False).photo is None  # [telegram] photos = false


def test_caption_for_an_edit_is_cut_to_the_caption_limit(renderer):
    caption = renderer().telegram_caption(_item(content_html="<p>" + "mot " * 800 + "</p>"), update=True)
    assert tg.visible_len(caption) <= CAPTION_LIMIT and "https://www.exemple.fr/a" in caption
