"""Every reader in their language: right-to-left Arabic mails and posts, Babel dates, real plural forms."""
from __future__ import annotations

import re
import unicodedata
from datetime import datetime, timezone

import pytest
from fixtures_render import seed_item, telegram_problems

from bot import i18n
from bot.render.renderer import Renderer

LINKS = {"unsubscribe": "https://news.example/u/%%T%%", "preferences": "https://news.example/p/%%T%%"}
DAY = datetime(2026, 11, 29, 6, 0, tzinfo=timezone.utc)
ARABIC_MONTHS = ("يناير", "فبراير", "مارس", "أبريل", "مايو", "يونيو", "يوليو", "أغسطس", "سبتمبر", "أكتوبر",
                 "نوفمبر", "ديسمبر")
# An Arabic story (an Arabic-language feed) and the French seed: the chrome is the reader's, the text the feed's.
ARABIC_ITEM = dict(
    title="عاجل: زلزال بقوة 5.1 درجات يضرب مدينة نيس", headline="زلزال بقوة 5.1 درجات يضرب مدينة نيس", label="عاجل",
    link="https://news.example/ar/2026/11/29/quake", categories=["العالم"], author="هيئة التحرير",
    content_html="<p>ضرب <b>زلزال</b> بقوة 5.1 درجات مدينة نيس فجر اليوم.</p><blockquote><p>لم تُسجَّل إصابات.</p>"
                 "</blockquote><p><img src='https://news.example/quake.jpg'></p>")


@pytest.fixture
def renderer(render_config):
    return Renderer(render_config())


def base_direction(line: str) -> str | None:
    """The paragraph direction a mail client infers (first strong character, Unicode bidi rules P2–P3)."""
    for ch in line:
        kind = unicodedata.bidirectional(ch)
        if kind in ("R", "AL"):
            return "rtl"
        if kind == "L":
            return "ltr"
    return None


def test_arabic_alert_is_right_to_left_with_arabic_dates(renderer):
    mail = renderer.email_alert(seed_item(**ARABIC_ITEM), "ar", LINKS)
    assert mail.html.startswith('<!DOCTYPE html><html lang="ar" dir="rtl">')
    assert re.search(r'<div class="wrap" dir="rtl" lang="ar"', mail.html)  # clients that drop <html> attributes
    assert "نُشر في 29 نوفمبر 2026، 7:10 ص · بقلم هيئة التحرير · Example News" in mail.html
    assert "نُشر في 29 نوفمبر 2026، 7:10 ص" in mail.text
    assert "اقرأ المقال" in mail.html and "إدارة تفضيلاتي" in mail.html and "إلغاء الاشتراك" in mail.html
    assert "border-right: 3px solid #d1d5db" in mail.html and "border-left" not in mail.html  # the quote mirrors
    assert mail.subject == "عاجل — زلزال بقوة 5.1 درجات يضرب مدينة نيس"
    assert 'alt=""' in mail.html  # the feed's image without alt text is marked decorative


def test_arabic_correction_notice_mirrors(renderer):
    mail = renderer.email_alert(seed_item(revision=1), "ar", LINKS, update=True)
    assert mail.subject.startswith("تحديث: FLASH INFO — ")
    assert re.search(r'class="notice" style="[^"]*border-right: 4px solid #d97706', mail.html)
    assert "حُدِّث في 29 نوفمبر 2026، 7:25 ص" in mail.text
    french = renderer.email_alert(seed_item(revision=1), "fr", LINKS, update=True)
    assert re.search(r'class="notice" style="[^"]*border-left: 4px solid #d97706', french.html)


@pytest.mark.parametrize("item", [ARABIC_ITEM, {}], ids=["arabic-story", "french-story"])
def test_arabic_text_part_reads_right_to_left(renderer, item):
    """Every line of our own words (those that differ from the French mail) starts right-to-left."""
    for render in (lambda lang: renderer.email_alert(seed_item(**item), lang, LINKS),
                   lambda lang: renderer.email_alert(seed_item(**item), lang, LINKS, update=True),
                   lambda lang: renderer.email_digest([seed_item(**item)], lang, LINKS, date=DAY)):
        arabic, french = render("ar").text, set(render("fr").text.splitlines())
        ours = [line for line in arabic.splitlines() if line.strip("=- ") and line not in french]
        assert len(ours) >= 4, ours  # title or notice, date, link, why, preferences, unsubscribe
        assert [line for line in ours if base_direction(line) != "rtl"] == []
        footer = arabic[arabic.index("\n-- \n"):].splitlines()
        assert footer[3:5] == ["إدارة تفضيلاتي: https://news.example/p/%%T%%",
                               "إلغاء الاشتراك: https://news.example/u/%%T%%"]


def test_arabic_digest_title_dates_and_plural(renderer):
    items = [seed_item(**ARABIC_ITEM), seed_item(id=2, is_flash=False, label=None, categories=["Politique"],
                                                 headline="Le Sénat adopte le budget", link="https://x.example/b")]
    mail = renderer.email_digest(items, "ar", LINKS, date=DAY)
    assert mail.subject == "أبرز أخبار 29 نوفمبر 2026 — Flashbot"
    assert '<html lang="ar" dir="rtl">' in mail.html and re.search(r"<h1[^>]*>أبرز أخبار 29 نوفمبر 2026</h1>", mail.html)
    assert "مقالان منذ النشرة الأخيرة." in mail.text  # two: the dual form
    assert "29 نوفمبر 2026، 7:10 ص · Example News" in mail.text
    assert "أخبار عاجلة" in mail.text and "POLITIQUE" in mail.text


@pytest.mark.parametrize("count, lang, expected", [
    (1, "fr", "1 article depuis"), (2, "fr", "2 articles depuis"), (1, "en", "1 article since"),
    (5, "en", "5 articles since"), (1, "de", "1 Artikel seit"), (1, "ar", "مقال واحد منذ"),
    (2, "ar", "مقالان منذ"), (3, "ar", "3 مقالات منذ"), (11, "ar", "11 مقالًا منذ"), (100, "ar", "100 مقال منذ"),
])
def test_digest_count_uses_the_language_plural_forms(renderer, count, lang, expected):
    items = [seed_item(id=n, key=f"k{n}", link=f"https://x.example/{n}", is_flash=False, label=None,
                       headline=f"Titre {n}") for n in range(count)]
    assert expected in renderer.email_digest(items, lang, LINKS, date=DAY).text


def test_telegram_post_in_the_channel_language(render_config):
    renderer = Renderer(render_config())
    post = renderer.telegram_post(seed_item(**ARABIC_ITEM), language="ar")
    assert telegram_problems(post) == [] and "اقرأ المقال" in post and post.startswith("🔴 <b>عاجل</b>")
    edit = renderer.telegram_post(seed_item(), update=True, language="ar")
    assert edit.startswith("✏️ <i>تصحيح — حُدِّث في 29 نوفمبر 2026، 7:25 ص</i>")
    german = Renderer(render_config(language="de")).telegram_post(seed_item(is_flash=True, label=None))
    assert german.startswith("🔴 <b>EILMELDUNG</b>") and "Artikel lesen" in german


@pytest.mark.parametrize("lang", i18n.available())
def test_every_language_renders_every_message(renderer, lang):
    """A catalog with a broken pattern or field would fail here, in every language shipped."""
    for mail in (renderer.email_alert(seed_item(), lang, LINKS), renderer.email_alert(seed_item(), lang, LINKS, True),
                 renderer.email_digest([seed_item()], lang, LINKS, date=DAY), renderer.email_digest([], lang, LINKS)):
        assert f'<html lang="{lang}" dir="{i18n.direction(lang)}">' in mail.html
        assert "{" not in mail.text and "{" not in mail.subject  # every field filled
    assert i18n.missing_keys == set()


def test_arabic_month_names_come_from_babel():
    for month, name in enumerate(ARABIC_MONTHS, start=1):
        assert name in i18n.format_day(datetime(2026, month, 15).date(), "ar")
