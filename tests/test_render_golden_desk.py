"""Golden files for the outputs issue #14 added: an alert mail with its photo, a hand-written alert (mail
and post, whose source is not named), its correction as a photo caption, and the summary mail of folded
alerts (regenerate with UPDATE_GOLDEN=1 and review the diff). Outputs of items without a photo are
the existing goldens, unchanged."""
from datetime import datetime, timezone

import pytest
from fixtures_render import GOLDEN, seed_item, telegram_problems
from test_render_golden import LINKS, check_golden

from bot.render.html import telegram as tg
from bot.render.renderer import CAPTION_LIMIT, Renderer

PHOTO = "https://www.example-news.fr/images/2026/11/haftar.jpg"


def _desk(**over) -> dict:
    return {"id": 2, "title": "Le Premier ministre démissionne", "headline": "Le Premier ministre démissionne",
            "label": None, "link": "https://www.example-news.fr/politique/demission", "categories": ["Politique"],
            "summary_html": "<p>Il a remis sa démission au président de la République.</p><p>Article à suivre.</p>",
            "content_html": "", "published_at": datetime(2026, 11, 29, 6, 40, tzinfo=timezone.utc), "revision": 0,
            "is_flash": True, "source_name": "desk", "source_origin": "desk", "image_url": PHOTO,
            "image_alt": "Le Premier ministre quittant Matignon", **over}


def _folded() -> list[dict]:
    return [seed_item(id=10 + i, headline=h, title=f"FLASH INFO : {h}", link=f"https://www.example-news.fr/{i}",
                      content_html=f"<p>{h} : les détails sont sur notre site.</p>", source_name="Example News",
                      published_at=datetime(2026, 11, 28, 22, 10 * i, tzinfo=timezone.utc))
            for i, h in enumerate(["Grève surprise à la SNCF", "Crue historique de la Seine"])] + [_desk()]


CASES = {
    "alert_seed_photo_fr": lambda r: r.email_alert(seed_item(image_url=PHOTO, image_alt="Le maréchal Haftar"), "fr", LINKS),
    "desk_alert_fr": lambda r: r.email_alert(_desk(), "fr", LINKS),
    "telegram_desk_fr": lambda r: r.telegram_message(_desk()).text,
    "telegram_desk_caption_update_en": lambda r: r.telegram_caption(_desk(revision=1), update=True, language="en"),
    "summary_fr": lambda r: r.email_summary(_folded(), "fr", LINKS),
    "summary_en": lambda r: r.email_summary(_folded(), "en", LINKS),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden(render_config, name):
    out = CASES[name](Renderer(render_config()))
    if isinstance(out, str):
        assert telegram_problems(out) == [] and tg.visible_len(out) <= CAPTION_LIMIT
    check_golden(name, out)


def test_the_photo_golden_differs_from_the_plain_one_only_by_the_photo():
    plain = (GOLDEN / "alert_seed_fr.html").read_text(encoding="utf-8")
    photo = (GOLDEN / "alert_seed_photo_fr.html").read_text(encoding="utf-8")
    start = photo.index("<p><img")
    end = photo.index("</p>", start) + len("</p>\n")
    assert photo[:start] + photo[end:] == plain
    assert (GOLDEN / "alert_seed_photo_fr.txt").read_text(encoding="utf-8") == (GOLDEN / "alert_seed_fr.txt").read_text(encoding="utf-8")
