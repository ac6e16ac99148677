"""An Arabic reader through the real service (`run --once`, `digest --send`, real SMTP and Telegram stand-ins):
a right-to-left alert and digest with Arabic dates, while the channel posts in its own language."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

from fixtures_service import RSS_TYPE
from test_i18n_render import ARABIC_MONTHS, base_direction

NOW = datetime.now(timezone.utc).replace(microsecond=0)  # the feed's dates: the digest keeps recent items only
ARABIC_DATE = re.compile(r"\d{1,2} (%s) \d{4}، \d{1,2}:\d{2} (ص|م)" % "|".join(ARABIC_MONTHS))


def feed(entries: list[tuple[str, str]]) -> bytes:
    """RSS entries with publication dates (the alert shows them)."""
    items = "".join(
        f"<item><title>{title}</title><guid isPermaLink=\"false\">{guid}</guid>"
        f"<link>https://www.exemple.fr/{guid}</link><pubDate>{format_datetime(NOW - timedelta(minutes=n))}</pubDate>"
        f"<description>&lt;p&gt;Texte de {guid}.&lt;/p&gt;</description><category>Monde</category></item>"
        for n, (guid, title) in enumerate(entries))
    return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Le Quotidien</title>'
            f"<link>https://www.exemple.fr/</link>{items}</channel></rss>").encode()


def test_arabic_reader_gets_rtl_alert_and_digest_channel_posts_in_its_language(svc_stack):
    config = svc_stack.write_config()
    config.write_text(config.read_text().replace('channel = "@flash"', 'channel = "@flash"\nlanguage = "de"'))
    svc_stack.feeds.set("/feed.xml", feed([("a1", "Météo : un week-end doux")]), headers=RSS_TYPE)
    for address, lang in (("karim@example.org", "ar"), ("anne@example.org", "fr")):
        assert svc_stack.cli("subscribers", "add", address, "--language", lang).returncode == 0
    assert svc_stack.cli("run", "--once").returncode == 0  # baseline: nothing sent
    svc_stack.feeds.set("/feed.xml", feed([("f1", "FLASH INFO : Séisme dans les Alpes"),
                                           ("a1", "Météo : un week-end doux")]), headers=RSS_TYPE)
    run = svc_stack.cli("run", "--once")
    assert run.returncode == 0, run.stderr
    mails = {m.rcpt_tos[0]: m.parsed() for m in svc_stack.smtp.messages}
    alert = mails["karim@example.org"]
    assert alert["Content-Language"] == "ar" and alert["Subject"] == "FLASH INFO — Séisme dans les Alpes"
    html, text = alert.get_body(("html",)).get_content(), alert.get_body(("plain",)).get_content()
    assert '<html lang="ar" dir="rtl">' in html and 'class="wrap" dir="rtl" lang="ar"' in html
    published = next(line for line in text.splitlines() if line.startswith("نُشر في "))
    assert ARABIC_DATE.fullmatch(published.removeprefix("نُشر في ").removesuffix(" · quotidien")), published
    assert "اقرأ المقال: https://www.exemple.fr/f1" in text
    assert '<html lang="fr" dir="ltr">' in mails["anne@example.org"].get_body(("html",)).get_content()
    [post] = svc_stack.telegram.posts  # [telegram] language = "de"
    assert "Artikel lesen" in post.text and "Séisme dans les Alpes" in post.text

    before = len(svc_stack.smtp.messages)
    send = svc_stack.cli("digest", "--send")
    assert send.returncode == 0, send.stderr
    digest = {m.rcpt_tos[0]: m.parsed() for m in svc_stack.smtp.messages[before:]}["karim@example.org"]
    subject = str(digest["Subject"])
    assert re.fullmatch(r"أبرز أخبار \d{1,2} (%s) \d{4} — Flashbot" % "|".join(ARABIC_MONTHS), subject), subject
    html, text = digest.get_body(("html",)).get_content(), digest.get_body(("plain",)).get_content()
    assert '<html lang="ar" dir="rtl">' in html
    assert "مقال واحد منذ النشرة الأخيرة." in text  # the flash item (the baseline is not news): the singular
    assert len(ARABIC_DATE.findall(text)) == 1 and base_direction(text.splitlines()[0]) == "rtl"
