"""TelegramChannel through the real python-telegram-bot client against the local Bot API stand-in."""
from __future__ import annotations

import asyncio
import logging

import pytest

from bot.delivery.channels.base import ChannelPaused, Outgoing, PermanentError, Sent, TemporaryError
from bot.delivery.channels.telegram import TelegramChannel

POST = '<b>FLASH INFO</b> Séisme &amp; tsunami &lt;alerte&gt;\n<a href="https://exemple.fr/a?x=1&amp;y=2">Lire</a>'

# PTB >= 22.2 warns from inside RetryAfter() on every 429 (the channel reads the timedelta form).
pytestmark = pytest.mark.filterwarnings("ignore:.*retry_after:telegram.warnings.PTBDeprecationWarning")


def out(body: str | bytes = POST, edit_id: str | None = None, recipient: str = "@flash_test") -> Outgoing:
    return Outgoing(delivery_id=1, recipient=recipient, body=body, edit_id=edit_id)


async def test_post_returns_message_id_with_html_and_preview(telegram_channel, telegram_api):
    first = await telegram_channel.send(out())
    second = await telegram_channel.send(out(POST.encode("utf-8")))  # bytes bodies work too
    assert (first, second) == (Sent("1"), Sent("2"))
    post = telegram_api.posts[0]
    assert (post.chat_id, post.parse_mode, post.text, post.preview) == ("@flash_test", "HTML", POST, True)
    assert post.plain == "FLASH INFO Séisme & tsunami <alerte>\nLire"
    assert {"type": "text_link", "offset": 37, "length": 4, "url": "https://exemple.fr/a?x=1&y=2"} in post.entities


async def test_link_preview_can_be_turned_off(telegram_config, telegram_api):
    channel = TelegramChannel(telegram_config.model_copy(update={"link_preview": False}))
    try:
        await channel.send(out())
    finally:
        await channel.close()
    assert telegram_api.posts[0].preview is False
    assert telegram_api.posts[0].link_preview_options == {"is_disabled": True}


async def test_numeric_chat_id(telegram_channel, telegram_api):
    assert await telegram_channel.send(out(recipient="-1001234567890")) == Sent("1")
    assert telegram_api.posts[0].chat_id == "-1001234567890"


async def test_edit_updates_the_post(telegram_channel, telegram_api):
    sent = await telegram_channel.send(out())
    edited = await telegram_channel.send(out("<b>MISE À JOUR</b> bilan revu", edit_id=sent.external_id))
    assert edited == sent
    assert [e.message_id for e in telegram_api.edits] == [1]
    assert telegram_api.message("@flash_test", 1) == "MISE À JOUR bilan revu"
    # Same content again: Telegram says "not modified", which means the post is already right.
    again = await telegram_channel.send(out("<b>MISE À JOUR</b> bilan revu", edit_id=sent.external_id))
    assert again == sent and len(telegram_api.edits) == 1
    assert ("editmessagetext", 400) in telegram_api.calls


@pytest.mark.parametrize("edit_id, error", [("99", "message to edit not found"), ("abc", "invalid Telegram message id")])
async def test_edit_of_unknown_message_is_permanent(telegram_channel, edit_id, error):
    with pytest.raises(PermanentError, match=f"(?i){error}"):
        await telegram_channel.send(out(edit_id=edit_id))


@pytest.mark.parametrize("inject, kind, match", [
    (lambda api: api.flood(retry_after=3), TemporaryError, "flood control: retry after 3"),
    (lambda api: api.server_error(500), TemporaryError, "Internal Server Error"),
    (lambda api: api.server_error(502), TemporaryError, "Bad Gateway"),
    (lambda api: api.kick(), ChannelPaused, "bot was kicked from the channel chat"),
    (lambda api: api.bad_request("Bad Request: chat not found"), PermanentError, "^Bad Request: chat not found$"),
])
async def test_faults_map_to_outbox_errors(telegram_channel, telegram_api, inject, kind, match):
    await telegram_channel.check()  # initialize first so the fault hits sendMessage
    inject(telegram_api)
    with pytest.raises(kind, match=match) as info:
        await telegram_channel.send(out())
    assert type(info.value) is kind
    assert [c for c in telegram_api.calls if c[0] == "sendmessage"] != [("sendmessage", 200)]
    assert not telegram_api.posts


async def test_retry_after_is_seconds_and_retry_then_succeeds(telegram_channel, telegram_api):
    telegram_api.flood(retry_after=2)
    with pytest.raises(TemporaryError) as info:
        await telegram_channel.send(out())
    assert info.value.retry_after == 2.0 and not info.value.permanent
    assert await telegram_channel.send(out()) == Sent("1")


async def test_timeout_is_temporary_and_bounded(telegram_config, telegram_api):
    channel = TelegramChannel(telegram_config.model_copy(update={"timeout": 0.5}))
    try:
        await channel.check()
        telegram_api.hang(seconds=10)
        with pytest.raises(TemporaryError, match="timed out after 0.5 s"):  # not the 10 s hang
            await channel.send(out())
        assert await channel.send(out()) == Sent("1")  # the hang was a one-off
    finally:
        await channel.close()


@pytest.mark.parametrize("body, match", [
    ("<b>Flash</b> <br> suite", "^Bad Request: can't parse entities: unsupported start tag \"br\" at byte offset 13$"),
    ("Prix < 10 €", "can't parse entities: Unsupported start tag \"\""),
    ("Tom & Jerry", "can't parse entities: Character \"&\""),
    ("<b>non fermé", "can't parse entities: Can't find end tag corresponding to start tag \"b\""),
    ("x" * 4097, "message is too long"),
    ("<b></b>", "message text is empty"),
])
async def test_bad_requests_are_permanent_and_not_retried(telegram_channel, telegram_api, body, match):
    with pytest.raises(PermanentError, match="(?i)" + match.replace("(", r"\(")):
        await telegram_channel.send(out(body))
    assert [c for c in telegram_api.calls if c[0] == "sendmessage"] == [("sendmessage", 400)]


async def test_exactly_4096_characters_after_parsing_is_accepted(telegram_channel, telegram_api):
    body = "<b>" + "&amp;" * 4096 + "</b>"  # 20k characters of HTML, 4096 once parsed
    assert await telegram_channel.send(out(body)) == Sent("1")
    assert len(telegram_api.posts[0].plain) == 4096


async def test_check_returns_username(telegram_channel):
    assert await telegram_channel.check() == "flashbot_test_bot"


async def test_wrong_token_fails_clearly_without_leaking_it(telegram_config):
    bad = telegram_config.model_copy(update={"token": "123456:wrong-token-value"})
    channel = TelegramChannel(bad)
    try:
        with pytest.raises(ChannelPaused, match=r"rejected the bot token.*check \[telegram\] token") as info:
            await channel.check()
        assert "wrong-token-value" not in str(info.value)
        with pytest.raises(ChannelPaused, match="rejected the bot token"):
            await channel.send(out())
    finally:
        await channel.close()


async def test_unreachable_api_is_temporary(telegram_config):
    channel = TelegramChannel(telegram_config.model_copy(update={"api_url": "http://127.0.0.1:9/bot", "timeout": 1}))
    try:
        with pytest.raises(TemporaryError, match="Telegram"):
            await channel.send(out())
    finally:
        await channel.close()


async def test_token_never_reaches_the_logs(telegram_channel, telegram_config, caplog):
    caplog.set_level(logging.DEBUG)
    # bot.logs.setup() (run by service tests in this process) quiets httpx; undo that for this test.
    caplog.set_level(logging.DEBUG, logger="httpx")
    await telegram_channel.send(out())
    assert "sendMessage" in caplog.text  # httpx did log the request...
    assert telegram_config.token not in caplog.text  # ...with the token masked


def test_channel_survives_successive_event_loops(telegram_config, telegram_api):
    channel = TelegramChannel(telegram_config)
    assert asyncio.run(channel.send(out())) == Sent("1")
    assert asyncio.run(channel.send(out())) == Sent("2")  # a new loop gets a new HTTP client
    asyncio.run(channel.close())
    assert channel.name == "telegram"


async def test_close_is_idempotent_and_send_reopens(telegram_channel):
    await telegram_channel.send(out())
    await telegram_channel.close()
    await telegram_channel.close()
    assert await telegram_channel.send(out()) == Sent("2")
