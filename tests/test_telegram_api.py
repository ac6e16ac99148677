"""The Bot API stand-in itself: strict like Telegram, so a green Telegram test means a valid post."""
from __future__ import annotations

import json
import threading

import httpx
import pytest

from bot.demo.telegram_api import BotAPIStandin, Fault
from bot.demo.telegram_entities import EntityError, parse_html

VALID = [
    ("plain text", "plain text", []),
    ("<b>gras</b> <strong>fort</strong>", "gras fort", [("bold", 0, 4), ("bold", 5, 4)]),
    ("<i>a</i><em>b</em><u>c</u><ins>d</ins>", "abcd", [("italic", 0, 1), ("italic", 1, 1), ("underline", 2, 1),
                                                        ("underline", 3, 1)]),
    ("<s>a</s><strike>b</strike><del>c</del>", "abc", [("strikethrough", 0, 1)] + [("strikethrough", 1, 1),
                                                                                  ("strikethrough", 2, 1)]),
    ('<a href="https://ex.fr/?a=1&amp;b=2">lien</a>', "lien", [("text_link", 0, 4)]),
    ("<a href='http://ex.fr'>x</a>", "x", [("text_link", 0, 1)]),
    ("<code>x &lt; y</code>", "x < y", [("code", 0, 5)]),
    ('<pre><code class="language-python">print(1)</code></pre>', "print(1)", [("pre", 0, 8)]),
    ("<blockquote>citation</blockquote>", "citation", [("blockquote", 0, 8)]),
    ("<blockquote expandable>long</blockquote>", "long", [("expandable_blockquote", 0, 4)]),
    ('<span class="tg-spoiler">secret</span> <tg-spoiler>s</tg-spoiler>', "secret s", [("spoiler", 0, 6),
                                                                                      ("spoiler", 7, 1)]),
    ('<tg-emoji emoji-id="5368324170671202286">👍</tg-emoji>', "👍", [("custom_emoji", 0, 2)]),
    ("<b>a <i>b <u>c</u></i></b>", "a b c", [("bold", 0, 5), ("italic", 2, 3), ("underline", 4, 1)]),
    ('<b><a href="https://ex.fr">gras lien</a></b>', "gras lien", [("bold", 0, 9), ("text_link", 0, 9)]),
    ('<blockquote><a href="https://ex.fr">l</a></blockquote>', "l", [("blockquote", 0, 1), ("text_link", 0, 1)]),
    ("&lt;&gt;&amp;&quot;&#39;&#x263A;", "<>&\"'☺", []),
    ("<B>MAJ</B>", "MAJ", [("bold", 0, 3)]),
    ("😀 <b>x</b>", "😀 x", [("bold", 3, 1)]),  # offsets in UTF-16 units
    ("  <b>x</b>  ", "x", [("bold", 0, 1)]),  # surrounding whitespace is trimmed
    ("ligne 1\nligne 2", "ligne 1\nligne 2", []),
]

INVALID = [
    ("<br>", 'Unsupported start tag "br" at byte offset 0'),
    ("<p>para</p>", 'Unsupported start tag "p" at byte offset 0'),
    ("<div>x</div>", 'Unsupported start tag "div"'),
    ("<script>alert(1)</script>", 'Unsupported start tag "script"'),
    ("<img src=x>", 'Unsupported start tag "img"'),
    ("1 < 2", 'Unsupported start tag "" at byte offset 2'),
    ("é < 2", 'Unsupported start tag "" at byte offset 3'),  # byte offsets count UTF-8 bytes
    ("Tom & Jerry", 'Character "&" at byte offset 4 must be escaped as "&amp;"'),
    ("a &amp b", 'Character "&"'),
    ("2 > 1", 'Character ">" at byte offset 2 must be escaped as "&gt;"'),
    ("&nbsp;", 'Unsupported HTML entity "&nbsp;"'),
    ("&eacute;", 'Unsupported HTML entity "&eacute;"'),
    ("&#0;", "Invalid character reference"),
    ("<b>non fermé", 'Can\'t find end tag corresponding to start tag "b"'),
    ("<b><i>x</b></i>", 'Unmatched end tag at byte offset 7, expected "</i>", found "</b>"'),
    ("x</b>", "Unexpected end tag at byte offset 1"),
    ("<b", "Unclosed start tag at byte offset 0"),
    ('<a href="x>lien</a>', "Unclosed start tag at byte offset 0"),
    ("<b>x</b", "Unclosed end tag at byte offset 4"),
    ("<b =x>y</b>", 'Empty attribute name in the tag "b"'),
    ("<span>x</span>", 'Tag "span" must have class "tg-spoiler"'),
    ("<tg-emoji>x</tg-emoji>", "Expected custom emoji identifier"),
    ('<a href="javascript:alert(1)">x</a>', 'Wrong URL "javascript:alert(1)"'),
    ('<a href="data:text/html,x">x</a>', "Wrong URL"),
    ("<code><b>x</b></code>", 'Entity "code" can\'t contain entity "b"'),
    ("<pre><i>x</i></pre>", 'Entity "pre" can\'t contain entity "i"'),
    ('<a href="https://a.fr"><a href="https://b.fr">x</a></a>', 'Entity "a" can\'t contain entity "a"'),
    ("<blockquote><blockquote>x</blockquote></blockquote>", "Blockquote entities can't be nested"),
]


@pytest.mark.parametrize("html, text, entities", VALID)
def test_valid_html(html, text, entities):
    parsed = parse_html(html)
    assert parsed.text == text
    assert [(e["type"], e["offset"], e["length"]) for e in parsed.entities] == entities


@pytest.mark.parametrize("html, error", INVALID)
def test_invalid_html(html, error):
    with pytest.raises(EntityError) as info:
        parse_html(html)
    assert error in str(info.value)


@pytest.mark.parametrize("html, text", [("Tom & Jerry", "Tom & Jerry"), ("2 > 1", "2 > 1"), ("&nbsp;", "&nbsp;")])
def test_lenient_mode_tolerates_what_telegram_tolerates(html, text):
    assert parse_html(html, strict=False).text == text


def call(api: BotAPIStandin, method: str, token: str | None = None, form: bool = False, **params) -> httpx.Response:
    url = f"{api.base_url}{token or api.token}/{method}"
    if form:
        return httpx.post(url, data={k: json.dumps(v) if isinstance(v, dict) else str(v) for k, v in params.items()})
    return httpx.post(url, json=params)


@pytest.mark.parametrize("form", [False, True], ids=["json", "form"])
def test_send_over_http_records_the_post(telegram_api, form):
    r = call(telegram_api, "sendMessage", form=form, chat_id="@c", text="<b>Flash</b> &amp; co", parse_mode="HTML",
             link_preview_options={"is_disabled": True})
    assert r.status_code == 200 and r.json()["result"]["message_id"] == 1
    assert r.json()["result"]["entities"] == [{"type": "bold", "offset": 0, "length": 5}]
    post = telegram_api.posts[0]
    assert (post.chat_id, post.text, post.plain, post.parse_mode, post.preview) == (
        "@c", "<b>Flash</b> &amp; co", "Flash & co", "HTML", False)


@pytest.mark.parametrize("text, status, description", [
    ("<b>ok</b>", 200, None),
    ("<p>x</p>", 400, "Bad Request: can't parse entities: Unsupported start tag \"p\" at byte offset 0"),
    ("a & b", 400, "Bad Request: can't parse entities: Character \"&\" at byte offset 2 must be escaped as \"&amp;\""),
    ("", 400, "Bad Request: message text is empty"),
    ("<b> </b>", 400, "Bad Request: message text is empty"),
    ("x" * 4096, 200, None),
    ("x" * 4097, 400, "Bad Request: message is too long"),
    ("😀" * 2048, 200, None),  # 4096 UTF-16 units
    ("😀" * 2049, 400, "Bad Request: message is too long"),
    ("&lt;" * 4096, 200, None),  # length counts after entity parsing
])
def test_send_validation_over_http(telegram_api, text, status, description):
    r = call(telegram_api, "sendMessage", chat_id="@c", text=text, parse_mode="HTML")
    assert r.status_code == status
    if description:
        assert r.json() == {"ok": False, "error_code": 400, "description": description}
        assert not telegram_api.posts


def test_plain_text_without_parse_mode_is_literal(telegram_api):
    r = call(telegram_api, "sendMessage", chat_id="@c", text="<b> & </b>")
    assert r.status_code == 200 and telegram_api.posts[0].plain == "<b> & </b>"


def test_wrong_token_unknown_method_and_missing_chat(telegram_api):
    r = call(telegram_api, "getMe", token="123:nope")
    assert (r.status_code, r.json()) == (401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
    assert call(telegram_api, "sendDice", chat_id="@c").status_code == 404
    assert call(telegram_api, "sendMessage", text="x").json()["description"] == "Bad Request: chat_id is empty"
    assert call(telegram_api, "getMe").json()["result"]["username"] == "flashbot_test_bot"
    assert call(telegram_api, "getChat", chat_id="@c").json()["result"]["type"] == "channel"


def test_known_chats_restrict_where_the_bot_may_post():
    with BotAPIStandin(known_chats={"@mine"}) as api:
        assert call(api, "sendMessage", chat_id="@other", text="x").json()["description"] == "Bad Request: chat not found"
        assert call(api, "getChat", chat_id="@other").status_code == 400
        assert call(api, "sendMessage", chat_id="@mine", text="x").status_code == 200


def test_edit_rules(telegram_api):
    call(telegram_api, "sendMessage", chat_id="@c", text="<b>v1</b>", parse_mode="HTML")
    same = call(telegram_api, "editMessageText", chat_id="@c", message_id=1, text="<b>v1</b>", parse_mode="HTML")
    assert same.json()["description"].startswith("Bad Request: message is not modified")
    other_markup = call(telegram_api, "editMessageText", chat_id="@c", message_id=1, text="<i>v1</i>", parse_mode="HTML")
    assert other_markup.status_code == 200 and other_markup.json()["result"]["edit_date"]
    missing = call(telegram_api, "editMessageText", chat_id="@c", message_id=7, text="x")
    assert missing.json()["description"] == "Bad Request: message to edit not found"
    bad = call(telegram_api, "editMessageText", chat_id="@c", message_id=1, text="<x>", parse_mode="HTML")
    assert bad.json()["description"].startswith("Bad Request: can't parse entities")
    assert [e.plain for e in telegram_api.edits] == ["v1"] and telegram_api.message("@c", 1) == "v1"


def test_fault_switches_count_and_shape(telegram_api):
    telegram_api.flood(retry_after=7, count=2)
    first, second, third = (call(telegram_api, "sendMessage", chat_id="@c", text="x") for _ in range(3))
    assert first.status_code == second.status_code == 429
    assert first.json() == {"ok": False, "error_code": 429, "description": "Too Many Requests: retry after 7",
                            "parameters": {"retry_after": 7}}
    assert third.status_code == 200
    assert call(telegram_api, "getMe").status_code == 200  # faults target send/edit by default
    telegram_api.kick()  # until cleared
    for _ in range(3):
        r = call(telegram_api, "sendMessage", chat_id="@c", text="x")
        assert (r.status_code, r.json()["description"]) == (403, "Forbidden: bot was kicked from the channel chat")
    telegram_api.clear_faults()
    telegram_api.server_error(502)
    r = call(telegram_api, "sendMessage", chat_id="@c", text="x")
    assert r.status_code == 502 and r.headers["content-type"] == "text/html"
    telegram_api.fail(Fault(400, "Bad Request: custom", methods=frozenset({"getme"})))
    assert call(telegram_api, "getMe").json()["description"] == "Bad Request: custom"
    assert len(telegram_api.posts) == 1


def test_hang_times_out_the_client_and_stop_releases_it():
    api = BotAPIStandin().start()
    api.hang(seconds=30)
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{api.base_url}{api.token}/sendMessage", json={"chat_id": "@c", "text": "x"}, timeout=0.3)
    stopper = threading.Thread(target=api.stop)
    stopper.start()
    stopper.join(timeout=20)  # the 30 s hang must not hold stop(): it returns long before
    assert not stopper.is_alive()
    assert api.calls == [("sendmessage", "hang")] and not api.posts


def test_per_chat_rate_limit():
    with BotAPIStandin(per_chat_per_minute=3) as api:
        codes = [call(api, "sendMessage", chat_id="@c", text="x").status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        assert 55 <= call(api, "sendMessage", chat_id="@c", text="x").json()["parameters"]["retry_after"] <= 60
        assert call(api, "sendMessage", chat_id="@other", text="x").status_code == 200


def test_concurrent_posts_get_distinct_ids(telegram_api):
    statuses = []

    def post(n):
        statuses.append(call(telegram_api, "sendMessage", chat_id="@c", text=f"message {n}").status_code)

    threads = [threading.Thread(target=post, args=(n,)) for n in range(40)]
    for t in threads:
        t.start()
    posts = telegram_api.wait_posts(40, timeout=10)
    for t in threads:
        t.join()
    assert statuses == [200] * 40
    assert sorted(p.message_id for p in posts) == list(range(1, 41))
    assert {p.plain for p in posts} == {f"message {n}" for n in range(40)}


def test_reset_and_base_url(telegram_api):
    assert telegram_api.base_url.startswith("http://127.0.0.1:") and telegram_api.base_url.endswith("/bot")
    call(telegram_api, "sendMessage", chat_id="@c", text="x")
    telegram_api.reset()
    assert telegram_api.posts == [] and telegram_api.calls == []
