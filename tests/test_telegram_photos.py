"""Photo posts: the stand-in enforces sendPhoto's and editMessageCaption's rules as Telegram does, and
the channel posts a photo with the post as caption, edits the caption for a correction, and falls back
to the text post when Telegram cannot use the photo."""
from __future__ import annotations

import httpx
import pytest

from bot.delivery.channels.base import Outgoing, PermanentError
from bot.demo.telegram_api import Fault
from bot.demo.telegram_methods import BAD_PHOTO

PHOTO = "https://img.exemple.fr/seisme.jpg"


def _call(api, method: str, **params) -> dict:
    return httpx.post(f"{api.base_url}{api.token}/{method}", json=params, timeout=5).json()


STANDIN_CASES = [
    # (case, params, error description or None)
    ("caption in the HTML subset", {"caption": "<b>Séisme</b> à <a href='https://x.fr'>Nice</a>"}, None),
    ("no caption at all", {}, None),
    ("caption of 1,024 units", {"caption": "é" * 1024}, None),
    ("caption over 1,024 units", {"caption": "é" * 1025}, "Bad Request: message caption is too long"),
    ("emoji count twice", {"caption": "😀" * 513}, "Bad Request: message caption is too long"),
    ("tag outside the subset", {"caption": "<p>x</p>"}, "Bad Request: can't parse entities: Unsupported start tag \"p\""),
    ("stray ampersand", {"caption": "Tom & Jerry"}, "Bad Request: can't parse entities: Character \"&\""),
    ("data: URL", {"photo": "data:image/png;base64,AAAA"}, BAD_PHOTO),
    ("relative URL", {"photo": "/img/a.jpg"}, BAD_PHOTO),
    ("no photo", {"photo": ""}, "Bad Request: there is no photo in the request"),
]


@pytest.mark.parametrize("case,params,error", STANDIN_CASES, ids=[c[0] for c in STANDIN_CASES])
def test_standin_send_photo_rules(telegram_api, case, params, error):
    answer = _call(telegram_api, "sendPhoto", chat_id="@c", parse_mode="HTML", **{"photo": PHOTO, **params})
    if error is None:
        assert answer["ok"], answer
        assert answer["result"]["photo"] and telegram_api.posts[-1].photo == params.get("photo", PHOTO)
    else:
        assert not answer["ok"] and answer["description"].startswith(error), answer
        assert telegram_api.posts == []


def test_standin_captions_and_texts_are_edited_by_their_own_methods(telegram_api):
    photo = _call(telegram_api, "sendPhoto", chat_id="@c", photo=PHOTO, caption="v1")["result"]["message_id"]
    text = _call(telegram_api, "sendMessage", chat_id="@c", text="t1")["result"]["message_id"]
    wrong = _call(telegram_api, "editMessageText", chat_id="@c", message_id=photo, text="v2")
    assert wrong["description"] == "Bad Request: there is no text in the message to edit"
    wrong = _call(telegram_api, "editMessageCaption", chat_id="@c", message_id=text, caption="t2")
    assert wrong["description"] == "Bad Request: there is no caption in the message to edit"
    too_long = _call(telegram_api, "editMessageCaption", chat_id="@c", message_id=photo, caption="x" * 1025)
    assert too_long["description"] == "Bad Request: message caption is too long"
    same = _call(telegram_api, "editMessageCaption", chat_id="@c", message_id=photo, caption="v1")
    assert same["description"].startswith("Bad Request: message is not modified")
    ok = _call(telegram_api, "editMessageCaption", chat_id="@c", message_id=photo, caption="<i>v2</i>", parse_mode="HTML")
    assert ok["ok"] and ok["result"]["caption"] == "v2" and telegram_api.message("@c", photo) == "v2"
    assert [e.method for e in telegram_api.edits] == ["editMessageCaption"]


async def test_channel_posts_a_photo_then_edits_its_caption(telegram_api, telegram_channel):
    sent = await telegram_channel.send(Outgoing(1, "@flash_test", "🔴 <b>Séisme</b>", meta={"photo": PHOTO}))
    assert sent.external_id.startswith("photo:")
    (post,) = telegram_api.posts
    assert (post.method, post.photo, post.plain) == ("sendPhoto", PHOTO, "🔴 Séisme")
    edited = await telegram_channel.send(Outgoing(2, "@flash_test", "✏️ <i>Correction</i> Séisme", edit_id=sent.external_id))
    assert edited.external_id == sent.external_id
    (edit,) = telegram_api.edits
    assert edit.method == "editMessageCaption" and telegram_api.message("@flash_test", post.message_id) == "✏️ Correction Séisme"
    again = await telegram_channel.send(Outgoing(3, "@flash_test", "✏️ <i>Correction</i> Séisme", edit_id=sent.external_id))
    assert again.external_id == sent.external_id and len(telegram_api.edits) == 1  # not modified: already says it


async def test_a_photo_telegram_refuses_falls_back_to_the_text_post(telegram_api, telegram_channel):
    telegram_api.fail(Fault(400, "Bad Request: failed to get HTTP URL content", methods=frozenset({"sendphoto"})))
    sent = await telegram_channel.send(Outgoing(1, "@flash_test", "<b>Séisme</b>", meta={"photo": PHOTO}))
    assert not sent.external_id.startswith("photo:")
    (post,) = telegram_api.posts
    assert post.method == "sendMessage" and post.photo is None and post.plain == "Séisme"


async def test_a_caption_telegram_cannot_parse_is_a_permanent_failure_not_a_fallback(telegram_api, telegram_channel):
    with pytest.raises(PermanentError, match="can't parse entities"):
        await telegram_channel.send(Outgoing(1, "@flash_test", "<p>x</p>", meta={"photo": PHOTO}))
    assert telegram_api.posts == []
