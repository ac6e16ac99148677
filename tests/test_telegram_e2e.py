"""End to end: a served feed → `run_once` (ingest, render, outbox, DeliveryEngine) → the strict Bot API stand-in."""
from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from bot.service.once import run_once
from bot.store import open_db
from bot.store.schema import deliveries
from fixtures_ingest import build_ingest_config, rss

CALM = {"title": "Météo : un week-end ensoleillé", "guid": "calm-1"}
FLASH = {"title": "FLASH INFO : Séisme de magnitude 5 &amp; alerte au tsunami près de Nice", "guid": "flash-1",
         "description": "&lt;p&gt;Un séisme a été ressenti &lt;a href=\"https://www.exemple.fr/seisme\"&gt;sur la côte"
                        "&lt;/a&gt;. Bilan : 2 &lt; 3 blessés.&lt;/p&gt;"}
UPDATED = {**FLASH, "description": "&lt;p&gt;Nouveau bilan : magnitude 6, cinq blessés.&lt;/p&gt;"}

# PTB >= 22.2 warns from inside RetryAfter() on every 429 (the channel reads the timedelta form).
pytestmark = [pytest.mark.filterwarnings("ignore:.*retry_after:telegram.warnings.PTBDeprecationWarning"),
              pytest.mark.sqlite_only]  # the database only carries the fixtures: SQLite is enough


@pytest.fixture
def pipeline_env(tmp_path, feed_server, telegram_api):
    """A config with one served feed and only the Telegram channel, and its database; feed starts calm."""
    def make(**bot):
        feed_server.set("/flash.xml", rss([CALM]), headers={"Content-Type": "application/rss+xml"})
        cfg = build_ingest_config(
            tmp_path, [{"name": "Le Quotidien", "url": feed_server.url("/flash.xml")}],
            bot={"public_url": "https://news.example.org", **bot}, web={"secret_key": "e2e-secret-key-0123456789abcdef"},
            telegram={"token": telegram_api.token, "channel": "@flash_test", "api_url": telegram_api.base_url,
                      "timeout": 5},
            delivery={"retry_delays": [1, 2], "max_attempts": 3})
        engine = open_db(cfg.bot.database if "://" in cfg.bot.database else f"sqlite:///{cfg.bot.database}")
        run_once(cfg, engine, horizon=0)  # first poll: baseline, nothing is alerted
        assert telegram_api.posts == []
        return cfg, engine
    return make


def telegram_rows(engine) -> list[dict]:
    with engine.connect() as conn:
        rows = conn.execute(select(deliveries).where(deliveries.c.channel == "telegram").order_by(deliveries.c.id))
        return [dict(r._mapping) for r in rows]


def sends(api) -> list:
    return [c for c in api.calls if c[0] == "sendmessage"]


def test_flash_item_becomes_one_post_and_its_update_an_edit(pipeline_env, feed_server, telegram_api):
    cfg, engine = pipeline_env()
    feed_server.set("/flash.xml", rss([FLASH, CALM]), headers={"Content-Type": "application/rss+xml"})
    run_once(cfg, engine, horizon=0)
    [post] = telegram_api.posts
    assert post.parse_mode == "HTML" and post.preview and post.chat_id == "@flash_test"
    assert "Séisme de magnitude 5 & alerte au tsunami" in post.plain and "Météo" not in post.plain
    assert "sur la côte" in post.plain  # link words kept in the sentence
    assert any(e.get("url") == "https://www.exemple.fr/seisme" for e in post.entities)
    [row] = telegram_rows(engine)
    assert (row["state"], row["external_id"], row["attempts"]) == ("sent", str(post.message_id), 0)

    run_once(cfg, engine, horizon=0)  # nothing new: nothing posted again
    assert len(telegram_api.posts) == 1 and telegram_api.edits == []

    feed_server.set("/flash.xml", rss([UPDATED, CALM]), headers={"Content-Type": "application/rss+xml"})
    run_once(cfg, engine, horizon=0)
    [edit] = telegram_api.edits
    assert edit.message_id == post.message_id and len(telegram_api.posts) == 1
    assert "magnitude 6" in telegram_api.message("@flash_test", post.message_id)
    assert [(r["kind"], r["revision"], r["state"]) for r in telegram_rows(engine)] == [
        ("alert", 0, "sent"), ("update", 1, "sent")]


def test_flood_control_is_waited_out_within_the_run(pipeline_env, feed_server, telegram_api):
    cfg, engine = pipeline_env()
    telegram_api.flood(retry_after=1)
    feed_server.set("/flash.xml", rss([FLASH, CALM]), headers={"Content-Type": "application/rss+xml"})
    started = time.time()
    run_once(cfg, engine, horizon=10)
    assert sends(telegram_api) == [("sendmessage", 429), ("sendmessage", 200)]
    [post] = telegram_api.posts
    assert post.time - started >= 1.0  # Telegram's retry_after was honoured
    [row] = telegram_rows(engine)
    assert (row["state"], row["attempts"], row["external_id"]) == ("sent", 1, str(post.message_id))


def test_telegram_400_fails_once_and_is_never_retried(pipeline_env, feed_server, telegram_api):
    cfg, engine = pipeline_env()
    telegram_api.known_chats = {"@some_other_channel"}  # [telegram] channel names a chat the bot cannot see
    feed_server.set("/flash.xml", rss([FLASH, CALM]), headers={"Content-Type": "application/rss+xml"})
    run_once(cfg, engine, horizon=5)
    run_once(cfg, engine, horizon=5)  # a later run does not try again either
    assert sends(telegram_api) == [("sendmessage", 400)] and telegram_api.posts == []
    [row] = telegram_rows(engine)
    assert (row["state"], row["last_error"]) == ("failed", "Bad Request: chat not found")


def test_operator_template_with_foreign_tags_still_posts_valid_html(pipeline_env, feed_server, telegram_api, tmp_path):
    folder = tmp_path / "mytemplates"
    folder.mkdir()
    # <br> and <p> are not Telegram HTML: rendering must turn them into text the API accepts.
    (folder / "telegram_post.html").write_text("<p><b>{{ item.headline }}</b><br>{{ item.link }}</p>\n",
                                               encoding="utf-8")
    cfg, engine = pipeline_env(templates=str(folder))
    feed_server.set("/flash.xml", rss([FLASH, CALM]), headers={"Content-Type": "application/rss+xml"})
    run_once(cfg, engine, horizon=0)
    assert sends(telegram_api) == [("sendmessage", 200)]
    assert "Séisme de magnitude 5" in telegram_api.posts[0].plain
    assert "https://www.exemple.fr/a/flash-1" in telegram_api.posts[0].plain
