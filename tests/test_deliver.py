"""Outbox engine against a real aiosmtpd server: fan-out, idempotence, retries, bounces, cancellation."""
from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from bot.delivery import engine as deliver
from bot.delivery.channels import build_channels
from bot.delivery import fanout
from bot import tokens
from bot.models import Event
from bot.render.renderer import Renderer
from bot.store import open_db, outbox, summary, utcnow
from bot.store.schema import deliveries, items, subscribers
from fixtures_delivery import SECRET, GatedSMTP, add_item, add_subscribers, make_delivery_config, rows_of


def flash(item_id: int) -> Event:
    return Event(item_id=item_id, kind="flash", source="src", title="t", is_flash=True)


def make_engine(cfg, db):
    return deliver.DeliveryEngine(db, cfg, build_channels(cfg), Renderer(cfg))


async def run(cfg, db, horizon: float = 0.0) -> dict:
    eng = make_engine(cfg, db)
    try:
        return await eng.run_due(horizon=horizon)
    finally:
        for ch in eng.channels.values():
            await ch.close()


def states(db, item_id=None) -> Counter:
    return Counter(r["state"] for r in rows_of(db, item_id))


async def test_fan_out_reaches_every_active_instant_subscriber_once(delivery_config, delivery_engine, smtp_server):
    db, cfg = delivery_engine, delivery_config
    item = add_item(db)
    fr = add_subscribers(db, [f"fr{i}@example.net" for i in range(120)])
    en = add_subscribers(db, [f"en{i}@example.net" for i in range(15)], language="en", mode="instant")
    add_subscribers(db, ["digest-only@example.net"], mode="digest")
    add_subscribers(db, ["pending@example.net"], status="pending")
    add_subscribers(db, ["gone@example.net"], status="unsubscribed")

    assert fanout.queue_events(db, cfg, [flash(item)]) == len(fr) + len(en)
    assert fanout.queue_events(db, cfg, [flash(item)]) == 0  # queueing twice creates nothing
    stats = await run(cfg, db)

    got = Counter(smtp_server.recipients())
    expected = {f"fr{i}@example.net" for i in range(120)} | {f"en{i}@example.net" for i in range(15)}
    assert set(got) == expected and set(got.values()) == {1}
    assert stats["sent"] == len(expected)
    assert states(db, item) == {"sent": len(expected)}
    assert all(r["external_id"] and r["sent_at"] for r in rows_of(db, item))
    with db.connect() as conn:
        it = conn.execute(select(items).where(items.c.id == item)).mappings().one()
    assert it["alert_state"] == "queued" and it["first_email_at"] <= it["last_email_at"]
    english = [m for m in smtp_server.messages if m.rcpt_tos[0].startswith("en")][0].parsed()
    assert english["Content-Language"] == "en"

    # A second run finds nothing due and sends nothing.
    assert (await run(cfg, db)).get("sent", 0) == 0
    assert len(smtp_server.messages) == len(expected)


TOPIC_CASES = [
    # (subscriber topics, item kwargs, wants it)
    ([], {}, True),
    (["séisme"], {}, True),  # word of the title, accents/case ignored
    (["SEISME"], {}, True),
    (["sur la côte"], {}, True),  # a phrase of the summary (inside a link)
    (["nice"], {}, True),
    (["football"], {}, False),
    (["cote d"], {}, False),  # not a word boundary phrase of this item
    (["Sport"], {"categories": ["Sport", "Flash Info"]}, True),  # item category
    (["monde"], {"source_category": "Monde"}, True),  # the source's category
    (["monde", "foot"], {}, False),
    (["bourse", "séisme"], {}, True),  # any topic is enough
]


@pytest.mark.parametrize("topics,item_kw,wanted", TOPIC_CASES)
async def test_topics_filter_who_gets_the_alert(tmp_path, smtp_server, topics, item_kw, wanted):
    cfg = make_delivery_config(tmp_path, smtp_server.port)
    from bot.store import open_db

    db = open_db(cfg.database_url)
    item = add_item(db, **item_kw)
    add_subscribers(db, ["reader@example.net"], topics=topics)
    add_subscribers(db, ["everything@example.net"])
    fanout.queue_events(db, cfg, [flash(item)])
    await run(cfg, db)
    assert ("reader@example.net" in smtp_server.recipients()) is wanted
    assert "everything@example.net" in smtp_server.recipients()


async def test_451_is_retried_later_then_sent(delivery_config, delivery_engine, smtp_server):
    db, cfg = delivery_engine, delivery_config
    item = add_item(db)
    add_subscribers(db, ["busy@example.net", "ok@example.net"])
    smtp_server.fail(451, stage="rcpt", pattern="busy@*", times=1)
    fanout.queue_item(db, cfg, item)
    before = utcnow()
    await run(cfg, db)
    row = rows_of(db, item, recipient="1")[0]
    assert row["state"] == "retry" and row["attempts"] == 1 and "451" in row["last_error"]
    assert before + timedelta(seconds=cfg.delivery.retry_delays[0]) <= row["next_attempt_at"] <= utcnow() + timedelta(seconds=1.5)
    assert smtp_server.recipients() == ["ok@example.net"]
    # Not due yet: an immediate pass leaves it alone; a pass waiting for due retries sends it.
    assert (await run(cfg, db)).get("sent", 0) == 0
    await run(cfg, db, horizon=5)
    assert sorted(smtp_server.recipients()) == ["busy@example.net", "ok@example.net"]
    assert states(db, item) == {"sent": 2}


async def test_temporary_errors_stop_after_max_attempts(tmp_path, smtp_server):
    cfg = make_delivery_config(tmp_path, smtp_server.port, retry_delays=[0], max_attempts=3)
    from bot.store import open_db

    db = open_db(cfg.database_url)
    item = add_item(db)
    add_subscribers(db, ["full@example.net"])
    smtp_server.fail(452, stage="rcpt")
    fanout.queue_item(db, cfg, item)
    await run(cfg, db, horizon=3)
    row = rows_of(db, item)[0]
    assert row["state"] == "failed" and row["attempts"] == 3
    assert "gave up after 3 attempts" in row["last_error"] and "452" in row["last_error"]
    assert smtp_server.messages == []


@pytest.mark.parametrize("code,stage", [(550, "rcpt"), (553, "rcpt"), (552, "data"), (554, "data")])
async def test_5xx_fails_permanently_and_counts_a_bounce(delivery_config, delivery_engine, smtp_server, code, stage):
    db, cfg = delivery_engine, delivery_config
    item = add_item(db)
    bad, good = add_subscribers(db, ["bad@example.net", "good@example.net"])
    smtp_server.fail(code, stage=stage, pattern="bad@*")
    fanout.queue_item(db, cfg, item)
    await run(cfg, db, horizon=2)
    row = rows_of(db, item, subscriber_id=bad)[0]
    assert row["state"] == "failed" and row["attempts"] == 1 and str(code) in row["last_error"]
    with db.connect() as conn:
        sub = conn.execute(select(subscribers).where(subscribers.c.id == bad)).mappings().one()
    assert sub["bounces"] == 1 and sub["status"] == "active"
    assert smtp_server.recipients() == ["good@example.net"]


async def test_bounce_limit_suppresses_and_cancels_pending(delivery_config, delivery_engine, smtp_server):
    db, cfg = delivery_engine, delivery_config  # bounce_limit = 2
    bad, _ = add_subscribers(db, ["bad@example.net", "good@example.net"])
    smtp_server.fail(550, stage="rcpt", pattern="bad@*")
    first, second, third = add_item(db, "FLASH INFO — Un"), add_item(db, "FLASH INFO — Deux"), add_item(db, "FLASH INFO — Trois")
    fanout.queue_item(db, cfg, first)
    await run(cfg, db)
    fanout.queue_item(db, cfg, second)
    fanout.queue_item(db, cfg, third)
    with db.begin() as conn:  # hold the third alert back so it is still pending at suppression time
        conn.execute(update(deliveries).where(deliveries.c.item_id == third).values(next_attempt_at=utcnow() + timedelta(hours=1)))
    await run(cfg, db)
    with db.connect() as conn:
        sub = conn.execute(select(subscribers).where(subscribers.c.id == bad)).mappings().one()
    assert sub["status"] == "suppressed" and sub["bounces"] == 2
    assert rows_of(db, third, subscriber_id=bad)[0]["state"] == "cancelled"
    assert rows_of(db, third, recipient="2")[0]["state"] == "pending"
    fourth = add_item(db, "FLASH INFO — Quatre")
    fanout.queue_item(db, cfg, fourth)
    assert [r["subscriber_id"] for r in rows_of(db, fourth)] == [2]  # never mailed again


async def test_dropped_connection_reconnects_and_delivers(delivery_config, delivery_engine, smtp_server):
    db, cfg = delivery_engine, delivery_config
    item = add_item(db)
    add_subscribers(db, [f"u{i}@example.net" for i in range(30)])
    smtp_server.fail(stage="data", drop=True, times=3)
    fanout.queue_item(db, cfg, item)
    await run(cfg, db, horizon=5)
    assert sorted(set(smtp_server.recipients())) == sorted(f"u{i}@example.net" for i in range(30))
    assert len(smtp_server.recipients()) == 30  # a dropped DATA was never accepted, so no duplicate
    assert states(db, item) == {"sent": 30}
    assert smtp_server.connections > cfg.email.concurrency  # sessions were reopened


async def test_server_down_holds_the_channel_without_burning_attempts(delivery_config, delivery_engine, smtp_server):
    db, cfg = delivery_engine, delivery_config
    item = add_item(db)
    add_subscribers(db, [f"u{i}@example.net" for i in range(20)])
    fanout.queue_item(db, cfg, item)
    smtp_server.stop()
    await run(cfg, db)
    rows = rows_of(db, item)
    assert {r["state"] for r in rows} <= {"retry", "pending"}
    assert sum(r["attempts"] for r in rows) <= cfg.email.concurrency  # only the sessions that tried
    assert any("connect" in (r["last_error"] or "") for r in rows)
    smtp_server.start()  # back on the same port
    await run(cfg, db, horizon=5)
    assert states(db, item) == {"sent": 20} and len(smtp_server.recipients()) == 20


async def test_unsubscribed_after_queueing_gets_nothing_even_a_retry(delivery_config, delivery_engine, smtp_server):
    db, cfg = delivery_engine, delivery_config
    item = add_item(db)
    left, retried, stays = add_subscribers(db, ["left@example.net", "retried@example.net", "stays@example.net"])
    smtp_server.fail(451, stage="rcpt", pattern="retried@*")
    fanout.queue_item(db, cfg, item)
    with db.begin() as conn:
        conn.execute(update(subscribers).where(subscribers.c.id == left).values(status="unsubscribed"))
    await run(cfg, db)
    assert rows_of(db, item, subscriber_id=retried)[0]["state"] == "retry"
    with db.begin() as conn:
        conn.execute(update(subscribers).where(subscribers.c.id == retried).values(status="unsubscribed"))
    smtp_server.clear_faults()
    await run(cfg, db, horizon=5)
    assert smtp_server.recipients() == ["stays@example.net"]
    assert rows_of(db, item, subscriber_id=left)[0]["state"] == "cancelled"
    assert rows_of(db, item, subscriber_id=retried)[0]["state"] == "cancelled"


async def test_cancelled_alert_sends_nothing(delivery_config, delivery_engine, smtp_server):
    db, cfg = delivery_engine, delivery_config
    item = add_item(db)
    add_subscribers(db, ["a@example.net", "b@example.net"])
    fanout.queue_item(db, cfg, item)
    assert outbox.cancel_item(db, item) == 2
    await run(cfg, db)
    assert smtp_server.messages == [] and states(db, item) == {"cancelled": 2}
    assert fanout.queue_item(db, cfg, item) == 0  # a cancelled alert is never queued again
    assert outbox.retry_deliveries(db, [r["id"] for r in rows_of(db, item)]) == 0  # cancelled stays cancelled
    with db.begin() as conn:  # even rows forced back to pending respect the item's cancelled state
        summary.move(conn, deliveries.c.item_id == item, ["cancelled"], state="pending")
    await run(cfg, db)
    assert smtp_server.messages == [] and states(db, item) == {"cancelled": 2}


async def test_held_items_wait_for_approval(delivery_config, delivery_engine, smtp_server):
    db, cfg = delivery_engine, delivery_config
    item = add_item(db, alert_state="held")
    add_subscribers(db, ["a@example.net"])
    assert fanout.queue_events(db, cfg, [Event(item, "held", "src", "t", True)]) == 0
    assert rows_of(db, item) == [] and fanout.queue_item(db, cfg, item) == 0  # held: not before approval
    from bot.store.items import approve

    assert approve(db, item) and fanout.queue_item(db, cfg, item) == 1  # the operator approved it
    assert not approve(db, item)  # approving twice does nothing
    await run(cfg, db)
    assert smtp_server.recipients() == ["a@example.net"]


async def test_each_copy_is_personal_and_rfc8058(delivery_config, delivery_engine, smtp_server):
    db, cfg = delivery_engine, delivery_config
    item = add_item(db)
    ids = add_subscribers(db, [f"p{i}@example.net" for i in range(8)])
    fanout.queue_item(db, cfg, item)
    await run(cfg, db)
    by_email = {f"p{i}@example.net": sid for i, sid in enumerate(ids)}
    mids = set()
    for m in smtp_server.messages:
        msg = m.parsed()
        to = m.rcpt_tos[0]
        assert msg["To"] == to and msg["From"] == cfg.email.sender
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert msg["List-Id"] == "Flashbot <flash-info.example.org>" and msg["Date"]
        url = msg["List-Unsubscribe"].strip("<>")
        assert url.startswith("https://news.example.org/unsubscribe/")
        sid, _nonce = tokens.read_token(SECRET, tokens.UNSUBSCRIBE, url.rsplit("/", 1)[1])
        assert sid == by_email[to]
        text, html = msg.get_body(("plain",)).get_content(), msg.get_body(("html",)).get_content()
        assert url in text and url in html  # footer link intact after byte-level substitution
        assert "Séisme au large de Nice" in text and "Séisme au large de Nice" in html
        mids.add(msg["Message-ID"])
    assert len(mids) == 8


async def test_feed_title_cannot_inject_headers(delivery_config, delivery_engine, smtp_server):
    db, cfg = delivery_engine, delivery_config
    item = add_item(db, "FLASH INFO — Alerte\r\nBcc: victim@evil.example\r\n\r\n<b>body</b>\x00\u2028X-Evil: 1")
    add_subscribers(db, ["a@example.net"])
    fanout.queue_item(db, cfg, item)
    await run(cfg, db)
    [m] = smtp_server.messages
    assert m.rcpt_tos == ["a@example.net"]
    msg = m.parsed()
    assert msg["Bcc"] is None and msg["X-Evil"] is None
    assert "\n" not in msg["Subject"] and "\r" not in msg["Subject"] and "Bcc: victim" in msg["Subject"]
    head = m.data.split(b"\r\n\r\n", 1)[0]
    assert all(line[:1] in (b" ", b"\t") or b":" in line for line in head.split(b"\r\n"))


async def test_outcomes_are_written_in_full_batches_on_one_thread(delivery_config, delivery_engine, smtp_server, monkeypatch):
    db, cfg = delivery_engine, delivery_config  # batch_size = 50
    item = add_item(db)
    add_subscribers(db, [f"b{i}@example.net" for i in range(400)])
    fanout.queue_events(db, cfg, [flash(item)])
    smtp_server.pipelining = True
    calls: list[tuple[str, int, str]] = []
    for name in ("claim", "record"):
        real = getattr(outbox, name)

        def spy(*a, _real=real, _name=name, **kw):
            import threading

            calls.append((_name, len(a[1]) if _name == "record" else 0, threading.current_thread().name))
            return _real(*a, **kw)
        monkeypatch.setattr(outbox, name, spy)
    deliver.FLUSH_SECONDS, saved = 60.0, deliver.FLUSH_SECONDS  # only full batches (and the final rest)
    try:
        await run(cfg, db)
    finally:
        deliver.FLUSH_SECONDS = saved
    records = [n for name, n, _ in calls if name == "record"]
    assert sum(records) == 400 and states(db, item) == {"sent": 400}
    # the very first outcome is written at once (nothing written for FLUSH_SECONDS), then full batches
    assert len(records) <= 400 // 50 + 2 and all(n >= 50 for n in records[1:-1])
    assert {t for _, _, t in calls} == {"flashbot-outbox_0"}  # claims and records never run side by side


async def test_outcomes_reach_the_database_while_sending_stalls(tmp_path):
    """Sent rows are recorded within a moment even when no later send completes (a held server): the
    live dashboard shows them, and a crash would not send them twice."""
    import asyncio

    with GatedSMTP() as server:
        server.allowed = 3
        cfg = make_delivery_config(tmp_path, server.port, email={"timeout": 120}, batch_size=500)
        db = open_db(cfg.database_url)
        item = add_item(db)
        add_subscribers(db, [f"r{i}@example.net" for i in range(6)])
        fanout.queue_item(db, cfg, item)
        eng = make_engine(cfg, db)
        task = asyncio.ensure_future(eng.run_due())
        for _ in range(1000):  # up to 10 s: an event, never a measured duration
            if states(db, item).get("sent") == 3:
                break
            await asyncio.sleep(0.01)
        assert states(db, item) == {"sent": 3, "sending": 3}  # far fewer than a batch, yet written
        assert not task.done()
        server.allowed = 6
        await asyncio.wait_for(task, 30)
        for ch in eng.channels.values():
            await ch.close()
        assert states(db, item) == {"sent": 6}
        db.dispose()


async def test_a_refused_address_is_marked_bounced_and_counted(delivery_config, delivery_engine, smtp_server):
    from bot.store import stats

    db, cfg = delivery_engine, delivery_config
    item = add_item(db)
    bad, good = add_subscribers(db, ["bad@example.net", "good@example.net"])
    smtp_server.fail(550, stage="rcpt", pattern="bad@*")
    fanout.queue_item(db, cfg, item)
    await run(cfg, db)
    rows = {r["subscriber_id"]: r for r in rows_of(db, item)}
    assert (rows[bad]["state"], rows[bad]["bounced"]) == ("failed", True) and rows[bad]["finished_at"]
    assert (rows[good]["state"], rows[good]["bounced"]) == ("sent", False)
    assert rows[good]["finished_at"] == rows[good]["sent_at"]
    assert stats.totals(db, stats.DELIVERY) == {("email", "sent"): 1, ("email", "bounced"): 1}
