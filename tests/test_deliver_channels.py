"""The engine across channels: Telegram posts and edits, threaded corrections, digests, paused channels."""
from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import insert, select, update

from bot.delivery import engine as deliver
from bot.delivery.channels import build_channels
from bot.delivery import fanout
from bot.models import Event
from bot.render.renderer import Renderer
from bot.store import channels as channel_store
from bot.store import open_db, outbox, utcnow
from bot.store.digests import queue_subscriber_digests
from bot.store.schema import deliveries, digest_items, digests, items
from fixtures_delivery import add_item, add_subscribers, make_delivery_config, rows_of


def setup(tmp_path, smtp_server, telegram_api, **delivery):
    tg = {"token": telegram_api.token, "channel": "@flash_test", "api_url": telegram_api.base_url, "timeout": 5}
    cfg = make_delivery_config(tmp_path, smtp_server.port, telegram=tg, **delivery)
    return cfg, open_db(cfg.database_url)


async def run(cfg, db, horizon: float = 0.0) -> dict:
    eng = deliver.DeliveryEngine(db, cfg, build_channels(cfg), Renderer(cfg))
    try:
        return await eng.run_due(horizon=horizon)
    finally:
        for ch in eng.channels.values():
            await ch.close()


def revise(db, item_id: int, title: str) -> None:
    """What ingest does when an alerted item changes: new text, revision + 1, an `update` event."""
    with db.begin() as conn:
        rev = conn.execute(select(items.c.revision).where(items.c.id == item_id)).scalar()
        conn.execute(update(items).where(items.c.id == item_id).values(
            title=title, headline=title.split("—")[-1].strip(), content_hash=f"h{rev + 1}", revision=rev + 1))


async def test_alert_posts_once_to_telegram_and_records_message_id(tmp_path, smtp_server, telegram_api):
    cfg, db = setup(tmp_path, smtp_server, telegram_api)
    item = add_item(db)
    add_subscribers(db, ["a@example.net"])
    assert fanout.queue_events(db, cfg, [Event(item, "flash", "src", "t", True)]) == 2
    await run(cfg, db)
    [post] = telegram_api.posts
    assert post.chat_id == "@flash_test" and "Séisme au large de Nice" in post.plain and post.parse_mode == "HTML"
    [row] = rows_of(db, item, channel="telegram")
    assert row["state"] == "sent" and row["external_id"] == str(post.message_id) and row["recipient"] == "@flash_test"
    with db.connect() as conn:
        assert conn.execute(select(items.c.first_telegram_at).where(items.c.id == item)).scalar() is not None
    await run(cfg, db)
    assert len(telegram_api.posts) == 1  # a second run posts nothing


async def test_update_edits_the_post_and_threads_a_correction_email(tmp_path, smtp_server, telegram_api):
    cfg, db = setup(tmp_path, smtp_server, telegram_api)
    item = add_item(db)
    add_subscribers(db, ["a@example.net", "b@example.net"])
    fanout.queue_item(db, cfg, item)
    await run(cfg, db)
    originals = {m.rcpt_tos[0]: m.parsed()["Message-ID"] for m in smtp_server.messages}
    revise(db, item, "FLASH INFO — Séisme de magnitude 6 au large de Nice")
    assert fanout.queue_events(db, cfg, [Event(item, "update", "src", "t", True)]) == 3
    await run(cfg, db)

    [edit] = telegram_api.edits
    assert str(edit.message_id) == rows_of(db, item, channel="telegram", revision=0)[0]["external_id"]
    assert "magnitude 6" in edit.plain and len(telegram_api.posts) == 1
    corrections = [m for m in smtp_server.messages if m.parsed()["In-Reply-To"]]
    assert len(corrections) == 2
    for m in corrections:
        msg = m.parsed()
        assert msg["In-Reply-To"] == originals[m.rcpt_tos[0]] == msg["References"]
        assert msg["Message-ID"] != originals[m.rcpt_tos[0]]
        assert "magnitude 6" in msg["Subject"]
    assert {r["state"] for r in rows_of(db, item, revision=1)} == {"sent"}


async def test_update_before_the_alert_went_out_is_not_sent_twice(tmp_path, smtp_server, telegram_api):
    cfg, db = setup(tmp_path, smtp_server, telegram_api)
    item = add_item(db)
    add_subscribers(db, ["a@example.net"])
    fanout.queue_item(db, cfg, item)
    revise(db, item, "FLASH INFO — Séisme : bilan revu")
    fanout.queue_events(db, cfg, [Event(item, "update", "src", "t", True)])
    await run(cfg, db, horizon=8)
    # The original, sent after the edit, already carries the new text: no separate correction.
    assert len(smtp_server.messages) == 1 and "bilan revu" in smtp_server.messages[0].parsed()["Subject"]
    assert len(telegram_api.posts) == 1 and "bilan revu" in telegram_api.posts[0].plain
    assert {r["state"] for r in rows_of(db, item, revision=1)} == {"cancelled"}


async def test_telegram_403_pauses_the_channel_and_keeps_rows(tmp_path, smtp_server, telegram_api):
    cfg, db = setup(tmp_path, smtp_server, telegram_api)
    item = add_item(db)
    add_subscribers(db, ["a@example.net"])
    telegram_api.kick()
    fanout.queue_item(db, cfg, item)
    await run(cfg, db)
    assert smtp_server.recipients() == ["a@example.net"]  # email is not held up by Telegram
    [row] = rows_of(db, item, channel="telegram")
    assert row["state"] == "pending" and row["attempts"] == 0
    [state] = channel_store.channel_states(db)
    assert state["channel"] == "telegram" and state["paused"] and "kicked" in state["last_error"]
    telegram_api.clear_faults()
    await run(cfg, db)
    assert telegram_api.posts == []  # paused until an operator resumes it
    channel_store.resume_channel(db, "telegram")
    await run(cfg, db)
    assert len(telegram_api.posts) == 1 and rows_of(db, item, channel="telegram")[0]["state"] == "sent"


async def test_telegram_429_waits_retry_after_within_the_horizon(tmp_path, smtp_server, telegram_api):
    cfg, db = setup(tmp_path, smtp_server, telegram_api)
    item = add_item(db)
    telegram_api.flood(retry_after=1, count=2)
    fanout.queue_item(db, cfg, item)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await run(cfg, db, horizon=20)
    assert len(telegram_api.posts) == 1
    assert loop.time() - started >= 1.9  # waited what Telegram asked, twice
    [row] = rows_of(db, item, channel="telegram")
    assert row["state"] == "sent" and row["attempts"] == 2 and "retry after" in row["last_error"]


async def test_digest_rows_render_each_subscribers_items(tmp_path, smtp_server, telegram_api):
    cfg, db = setup(tmp_path, smtp_server, telegram_api)
    one, two = add_item(db, "FLASH INFO — Premier sujet"), add_item(db, "Deuxième sujet du jour")
    a, b = add_subscribers(db, ["a@example.net", "b@example.net"], mode="digest")
    now = utcnow()
    with db.begin() as conn:
        dig = conn.execute(insert(digests).values(run_key="2026-11-29", created_at=now)).inserted_primary_key[0]
        queue_subscriber_digests(conn, dig, [(a, [one, two]), (b, [two])], now)
    await run(cfg, db)
    got = {m.rcpt_tos[0]: m.parsed() for m in smtp_server.messages}
    text_a, text_b = (got[k].get_body(("plain",)).get_content() for k in ("a@example.net", "b@example.net"))
    assert "Premier sujet" in text_a and "Deuxième sujet du jour" in text_a
    assert "Deuxième sujet du jour" in text_b and "Premier sujet" not in text_b
    assert got["a@example.net"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert telegram_api.posts == []  # digests are email only


async def test_run_forever_delivers_on_wake_and_stops_gracefully(tmp_path, smtp_server, telegram_api):
    cfg, db = setup(tmp_path, smtp_server, telegram_api)
    add_subscribers(db, ["a@example.net"])
    eng = deliver.DeliveryEngine(db, cfg, build_channels(cfg), Renderer(cfg))
    stop = asyncio.Event()
    task = asyncio.create_task(eng.run_forever(stop))
    await asyncio.sleep(0.2)
    item = add_item(db)
    fanout.queue_item(db, cfg, item)
    eng.wake()
    for _ in range(100):
        if smtp_server.messages and telegram_api.posts:
            break
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert smtp_server.recipients() == ["a@example.net"] and len(telegram_api.posts) == 1
    assert {r["state"] for r in rows_of(db, item)} == {"sent"}
    # Rows due later stay queued when the engine stops.
    later = add_item(db, "FLASH INFO — Plus tard")
    fanout.queue_item(db, cfg, later)
    with db.begin() as conn:
        conn.execute(update(deliveries).where(deliveries.c.item_id == later).values(next_attempt_at=utcnow() + timedelta(hours=1)))
    assert outbox.next_due(db) > utcnow()
