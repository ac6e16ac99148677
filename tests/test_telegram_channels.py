"""Several Telegram channels: each alert goes to every channel whose filters match (language, topics,
sources, categories), rendered in that channel's language; a correction edits each post; the delivery
log and the dashboard show each channel."""
from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from desk_helpers import Newsroom
from typer.testing import CliRunner

from bot.cli import app as cli_app
from bot.config import ConfigError, parse_config
from bot.web import create_app

CHANNELS = {"channels": [
    {"chat": "@flash_fr", "language": "fr"},
    {"chat": "@flash_en", "language": "en"},
    {"chat": "@flash_rugby", "language": "fr", "topics": ["rugby"]},
    {"chat": "@flash_monde", "categories": ["Monde"], "sources": ["quotidien"]},
]}
SEISME = {"guid": "seisme", "title": "FLASH INFO : Séisme à Nice", "categories": ["France"]}
QUAKE = {"guid": "quake", "title": "BREAKING: Earthquake hits Nice", "categories": ["World"]}
RUGBY = {"guid": "xv", "title": "FLASH INFO : Le XV de France bat les All Blacks en rugby", "categories": ["Sport"]}
MONDE = {"guid": "onu", "title": "URGENT : L'ONU convoque le Conseil de sécurité", "categories": ["Monde"]}
CALM = {"guid": "calm", "title": "Météo du week-end"}


@pytest.fixture
async def newsroom(tmp_path):
    room = Newsroom(tmp_path, sources=("quotidien", "world"), telegram=CHANNELS)
    room.publish("quotidien", [CALM])
    room.publish("world", [CALM], language="en")
    await room.poll()  # the silent baseline
    yield room
    room.stop()


def _posts(room) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for p in room.telegram.posts:
        out.setdefault(p.chat_id, []).append(p.plain)
    return out


ROUTES = [
    # (case, source, language, entry, chats that get it)
    ("French item: French channels only", "quotidien", "fr", SEISME, {"@flash_fr"}),
    ("English item: English channel only", "world", "en-GB", QUAKE, {"@flash_en"}),
    ("topic rugby: the rugby channel too", "quotidien", "fr", RUGBY, {"@flash_fr", "@flash_rugby"}),
    ("category and source filter", "quotidien", "fr", MONDE, {"@flash_fr", "@flash_monde"}),
    ("the category filter also needs the source", "world", "en", {**QUAKE, "categories": ["Monde"]}, {"@flash_en"}),
]


@pytest.mark.parametrize("case,source,language,entry,chats", ROUTES, ids=[r[0] for r in ROUTES])
async def test_routing_by_language_topic_category_and_source(newsroom, case, source, language, entry, chats):
    newsroom.publish(source, [entry, CALM], language=language)
    await newsroom.poll()
    await newsroom.deliver()
    assert set(_posts(newsroom)) == chats
    assert all(len(v) == 1 for v in _posts(newsroom).values())  # one post per chat
    rows = newsroom.rows(channel="telegram")
    assert sorted(r["recipient"] for r in rows) == sorted(chats) and {r["state"] for r in rows} == {"sent"}


async def test_each_channel_speaks_its_language_and_corrections_edit_every_post(newsroom):
    newsroom.publish("quotidien", [MONDE, CALM])
    await newsroom.poll()
    await newsroom.deliver()
    posts = {p.chat_id: p for p in newsroom.telegram.posts}
    assert set(posts) == {"@flash_fr", "@flash_monde"}
    assert "Lire l’article" in posts["@flash_fr"].plain  # @flash_monde has no language: [bot] language (fr)
    newsroom.publish("quotidien", [{**MONDE, "description": "<p>Réunion d'urgence à 15 h.</p>"}, CALM])
    await newsroom.poll()
    await newsroom.deliver()
    edits = {e.chat_id: e for e in newsroom.telegram.edits}
    assert set(edits) == {"@flash_fr", "@flash_monde"}
    for chat, post in posts.items():
        assert edits[chat].message_id == post.message_id and "Correction" in edits[chat].plain
        assert "Réunion d'urgence" in newsroom.telegram.message(chat, post.message_id)


async def test_english_channel_gets_english_chrome(newsroom):
    newsroom.publish("world", [QUAKE, CALM], language="en")
    await newsroom.poll()
    await newsroom.deliver()
    (post,) = newsroom.telegram.posts
    assert "Read the article" in post.plain and "Lire" not in post.plain


async def test_delivery_log_and_dashboard_show_each_channel(newsroom):
    newsroom.publish("quotidien", [RUGBY, CALM])
    await newsroom.poll()
    await newsroom.deliver()
    config = Path(newsroom.dir) / "config.toml"
    config.write_text(f'[bot]\ndatabase = "{newsroom.cfg.bot.database}"\n', encoding="utf-8")
    res = CliRunner().invoke(cli_app, ["--config", str(config), "deliveries"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert re.search(r"telegram @flash_fr\s*│", res.output) and re.search(r"telegram @flash_rugby\s*│", res.output)
    app = create_app(newsroom.cfg, newsroom.engine)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=("127.0.0.1", 1)), base_url="https://t") as web:
        page = await web.get("/admin/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        await web.post("/admin/login", data={"password": "desk-pass", "csrf": csrf})
        overview = (await web.get("/admin")).text
    table = overview[overview.index('id="per-chat"'):]
    assert "@flash_fr" in table and "@flash_rugby" in table and "@flash_en" not in table


CONFIG_ERRORS = [
    ({"token": "1:a"}, "telegram: give `channel` or at least one [[telegram.channels]]"),
    ({"token": "1:a", "channel": "@a", "channels": [{"chat": "@a"}]}, "the same chat is listed twice"),
    ({"token": "1:a", "channels": [{"chat": "@a", "language": "es"}]}, "telegram.channels[0].language"),
    ({"token": "1:a", "channels": [{"chat": "@a", "topic": ["x"]}]}, "telegram.channels[0].topic: unknown key"),
]


@pytest.mark.parametrize("section,message", CONFIG_ERRORS)
def test_channel_config_mistakes_name_the_key(section, message):
    with pytest.raises(ConfigError) as exc:
        parse_config({"telegram": section}, Path("."), env={})
    assert message in str(exc.value)


def test_the_single_channel_keeps_working_as_one_channel():
    cfg = parse_config({"telegram": {"token": "1:a", "channel": "@flash"}}, Path("."), env={})
    (target,) = cfg.telegram.targets()
    assert (target.chat, target.language, target.topics) == ("@flash", None, [])
