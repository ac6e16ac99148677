"""A bounce arriving after compaction is still attributed (issues #17 and #12): a real alert through the
delivery engine, each mail with its VERP return path; the rows compacted on an injected clock (8 days
later); then a DSN comes over SMTP to the real bounce receiver. Its return path names the subscriber and
the alert, so the subscriber is suppressed, the row comes back carrying the outcome, the alert's counts
show the bounce, every other number stays, and a second copy of the report counts nothing more."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from bot.bounces.process import Processor
from bot.bounces.receiver import Receiver
from bot.store import compaction, delivery_log, open_db, summary_rebuild
from bot.store import subscribers as subs
from bot.store.schema import deliveries
from bot.store.schema_summary import delivery_counts
from bot.tokens import Verp
from fixtures_bounces import CORPUS, bounce_config, send_alert, send_bounce
from fixtures_delivery import add_item, add_subscribers, rows_of

DSN = (CORPUS / "lhost-postfix-04.eml").read_bytes()  # a Postfix 5.1.1 DSN naming kijitora@example.co.jp


def figures(engine, item: int) -> dict:
    """What an operator reads of the alert: counts per state, outcomes, and the per-alert page's groups."""
    groups = [{k: g[k] for k in ("channel", "revision", "counts", "total", "outcomes", "percentiles")}
              for g in delivery_log.alert(engine, item)["groups"]]
    return {"counts": delivery_log.counts(engine, item_id=item), "outcomes": delivery_log.outcomes(engine, item), "groups": groups}


async def test_a_bounce_after_compaction_is_attributed_once(tmp_path, smtp_server, database):
    cfg = bounce_config(tmp_path, smtp_server.port, database)  # bounce_limit = 1: one hard bounce suppresses
    engine = open_db(cfg.database_url)
    item = add_item(engine)
    people = [f"r{i}@example.net" for i in range(6)]
    ids = add_subscribers(engine, people)
    await send_alert(cfg, engine, item)
    victim, vid = people[2], ids[2]
    row = rows_of(engine, item, subscriber_id=vid)[0]
    return_path = next(m.mail_from for m in smtp_server.messages if m.rcpt_tos == [victim])
    assert Verp(cfg.web.secret_key, cfg.bounces.domain).bounce_ref(return_path).subscriber_id == vid
    before = figures(engine, item)
    assert compaction.compact(engine, cfg.delivery.detail_days, now=row["created_at"] + timedelta(days=8)).rows == 6
    assert rows_of(engine, item) == []

    receiver = Receiver(cfg, engine)
    port = await receiver.start()
    try:
        reply = await send_bounce(port, DSN.replace(b"kijitora@example.co.jp", victim.encode()), return_path)
        assert reply[1].startswith("2.0.0 stored as bounce #")
        processor = Processor(cfg, engine)
        assert processor.run_pending(now=row["created_at"] + timedelta(days=9)) == {"processed": 1}
        person = subs.get(engine, vid)
        assert person["status"] == "suppressed" and person["bounces"] == 1 and "5.1.1" in person["status_reason"]
        (back,) = rows_of(engine, item)  # the message's row, brought back with the same id, carrying the bounce
        assert (back["id"], back["subscriber_id"], back["state"], back["outcome"]) == (row["id"], vid, "sent", "bounced")
        after = figures(engine, item)
        assert after["counts"] == before["counts"]  # still six sent: nothing counted twice, nothing lost
        assert after["outcomes"] == {(item, None, "email"): {"bounced": 1}} and before["outcomes"] == {}
        assert [g["outcomes"] for g in after["groups"]] == [{"bounced": 1}]
        assert subs.delivery_counts(engine, vid) == {"sent": 1}  # its row again, no longer among its compacted ones

        # Another copy of the same report (another MTA's, a retry): stored, processed, counted nothing more.
        again = DSN.replace(b"kijitora@example.co.jp", victim.encode()).replace(b"Subject:", b"X-Copy: 2\nSubject:", 1)
        await send_bounce(port, again, return_path)
        assert processor.run_pending(now=row["created_at"] + timedelta(days=9)) == {"processed": 1}
        assert figures(engine, item) == after and subs.get(engine, vid)["bounces"] == 1
        assert len(rows_of(engine, item)) == 1
    finally:
        await receiver.stop()
    with engine.connect() as conn:
        assert summary_rebuild.verify(conn) == {}
        compacted = conn.execute(select(func.sum(delivery_counts.c.compacted))).scalar_one()
        assert compacted == 5 and conn.execute(select(func.count()).select_from(deliveries)).scalar_one() == 1
    engine.dispose()


async def test_a_compacted_delivery_whose_id_was_reused_is_still_the_one_bounced(tmp_path, smtp_server):
    cfg = bounce_config(tmp_path, smtp_server.port)
    engine = open_db(cfg.database_url)
    first = add_item(engine)
    ids = add_subscribers(engine, ["a@example.net", "b@example.net"])
    await send_alert(cfg, engine, first)
    target = rows_of(engine, first, subscriber_id=ids[0])[0]
    return_path = next(m.mail_from for m in smtp_server.messages if m.rcpt_tos == ["a@example.net"])
    compaction.compact(engine, 7, now=target["created_at"] + timedelta(days=8))
    # Every row of the table is gone: SQLite numbers the next ones from 1 again, the ids of the old ones.
    later = add_item(engine, title="FLASH INFO — Autre chose", link="https://news.example.org/autre")
    await send_alert(cfg, engine, later)
    assert target["id"] in {r["id"] for r in rows_of(engine, later)}
    receiver = Receiver(cfg, engine)
    port = await receiver.start()
    try:
        await send_bounce(port, DSN.replace(b"kijitora@example.co.jp", b"a@example.net"), return_path)
        assert Processor(cfg, engine).run_pending(now=target["created_at"] + timedelta(days=9)) == {"processed": 1}
    finally:
        await receiver.stop()
    # The bounce is the first alert's: it comes back under a new id; the later alert's row is untouched.
    (back,) = rows_of(engine, first)
    assert back["outcome"] == "bounced" and back["subscriber_id"] == ids[0] and back["id"] != target["id"]
    assert [r["outcome"] for r in rows_of(engine, later)] == [None, None]
    assert delivery_log.outcomes(engine) == {(first, None, "email"): {"bounced": 1}}
    with engine.connect() as conn:
        assert summary_rebuild.verify(conn) == {}
    engine.dispose()
