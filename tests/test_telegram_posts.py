"""Rendered posts cross the wire: Renderer.telegram_post -> TelegramChannel -> strict Bot API stand-in."""
from __future__ import annotations

import pytest

from bot.delivery.channels.base import Outgoing, Sent
from bot.render.renderer import Renderer
from bot.demo.telegram_entities import MAX_LENGTH, utf16_len
from fixtures_render import seed_item

LONG_BODY = "".join(f"<p>Paragraphe {n} : Tom &amp; Jerry &lt;3 <a href='/x/{n}'>lien {n}</a> — 😀 éè.</p>"
                    for n in range(400))
HOSTILE = ("<script>alert(1)</script><iframe src='https://evil'></iframe><p onclick='x()'>Texte "
           "<a href='javascript:alert(1)'>piège</a> <svg onload=alert(1)></svg> <img src='https://t/p.gif' "
           "width=1 height=1> a < b && c > d <style>p{}</style> <object data='x'></object>fin</p>")

CASES = {
    "seed": {},
    "update": {"update": True},
    "long article is cut": {"content_html": LONG_BODY},
    "hostile markup": {"content_html": HOSTILE},
    "hostile title": {"title": "FLASH INFO : <b>gras</b> & <script>x</script> \u202e RTL \x00 fin",
                      "headline": ""},
    "10k title": {"title": "FLASH " + "é" * 10_000, "headline": ""},
    "emoji everywhere": {"title": "FLASH INFO 🚨🔥 " * 50, "headline": "", "content_html": "<p>" + "👍" * 5000 + "</p>"},
    "no content, no link": {"content_html": "", "summary_html": "", "link": None},
    "odd link": {"link": "https://ex.fr/a?b=1&c=<2>\"'"},
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
async def test_rendered_post_is_accepted_by_strict_standin(case, render_config, telegram_channel, telegram_api):
    over = dict(CASES[case])
    update = over.pop("update", False)
    renderer = Renderer(render_config())
    body = renderer.telegram_post(seed_item(**over), update=update)
    sent = await telegram_channel.send(Outgoing(delivery_id=1, recipient="@flash_test", body=body))
    assert sent == Sent("1")
    post = telegram_api.posts[0]
    assert 0 < utf16_len(post.plain) <= MAX_LENGTH
    urls = [e["url"] for e in post.entities if e["type"] == "text_link"]
    assert all(u.startswith(("https://", "http://")) for u in urls), urls
    assert "alert(1)" not in post.plain and "onclick" not in body and "<script" not in body


async def test_update_post_edits_the_original(render_config, telegram_channel, telegram_api):
    renderer = Renderer(render_config())
    item = seed_item(content_html="<p>Premier bilan : 3 blessés.</p>")
    first = await telegram_channel.send(Outgoing(1, "@flash_test", renderer.telegram_post(item)))
    changed = seed_item(content_html="<p>Nouveau bilan : 5 blessés.</p>", revision=1)
    edited = await telegram_channel.send(Outgoing(2, "@flash_test", renderer.telegram_post(changed, update=True),
                                                  edit_id=first.external_id))
    assert edited == first and len(telegram_api.posts) == 1
    assert "Nouveau bilan" in telegram_api.message("@flash_test", int(first.external_id))
