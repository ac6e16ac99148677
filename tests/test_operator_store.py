"""The operator's figures at the storage level: schema v2 migration, stats buckets, poll history ring,
subscriber events, live fan-out progress, keyset pages and the all-time latency histogram."""
from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from fixtures_service import add_item, add_source, add_subscriber, build_config
from sqlalchemy import inspect, insert, select

from bot.models import DeliveryState, FeedResult
from bot.store import dashboard, listing, maintenance, open_db, outbox, polls, reports, stats, summary
from bot.store import sources as store_sources
from bot.store import subscribers as subs
from bot.store.schema import HISTORY_SLOTS, SCHEMA_VERSION, deliveries, items

V1 = Path(__file__).parent / "schema" / "v1.sql"
T0 = datetime(2026, 11, 29, 6, 7, 30, tzinfo=timezone.utc)


def _v1_database(path: Path) -> None:
    """A database as release v1 left it, with a sent alert, a failed row and three subscribers."""
    conn = sqlite3.connect(path)
    conn.executescript(V1.read_text())
    conn.executescript("""
        INSERT INTO sources (id, name, url, interval, all_flash, respect_ttl, alert_on_first_poll, origin, paused,
                             baselined, consecutive_failures) VALUES (1, 'src', 'http://x', 60, 0, 0, 0, 'config', 0, 1, 0);
        INSERT INTO items (id, source_id, key, title, headline, categories, content_hash, revision, is_flash, baseline,
                           alert_state, also_sources, norm_title, published_at, detected_at, first_email_at)
            VALUES (1, 1, 'k', 'FLASH', 'FLASH', '[]', 'h', 0, 1, 0, 'queued', '[]', 'flash',
                    '2026-11-29 06:00:00', '2026-11-29 06:01:00', '2026-11-29 06:01:02');
        INSERT INTO subscribers (id, email, status, mode, language, topics, origin, bounces, token_nonce, created_at,
                                 confirmed_at, unsubscribed_at) VALUES
            (1, 'a@example.org', 'active', 'both', 'fr', '[]', 'web', 0, 'n', '2026-11-28 10:00:00', '2026-11-28 10:05:00', NULL),
            (2, 'b@example.org', 'unsubscribed', 'both', 'fr', '[]', 'web', 0, 'n', '2026-11-28 11:00:00', '2026-11-28 11:01:00', '2026-11-29 01:00:00'),
            (3, 'c@example.org', 'pending', 'both', 'fr', '[]', 'web', 0, 'n', '2026-11-29 02:00:00', NULL, NULL);
        INSERT INTO deliveries (item_id, channel, recipient, subscriber_id, revision, kind, state, attempts, created_at, sent_at)
            VALUES (1, 'email', '1', 1, 0, 'alert', 'sent', 1, '2026-11-29 06:01:00', '2026-11-29 06:01:02'),
                   (1, 'email', '2', 2, 0, 'alert', 'failed', 8, '2026-11-29 06:01:00', NULL);
    """)
    conn.commit()
    conn.close()


def _schema(engine) -> dict:
    insp = inspect(engine)
    return {t: ({c["name"] for c in insp.get_columns(t)}, {i["name"] for i in insp.get_indexes(t)})
            for t in insp.get_table_names()}


def test_v1_database_upgrades_in_place_to_the_current_schema(tmp_path):
    _v1_database(tmp_path / "old.db")
    engine = open_db(f"sqlite:///{tmp_path / 'old.db'}")
    fresh = open_db(f"sqlite:///{tmp_path / 'new.db'}")
    assert _schema(engine) == _schema(fresh)  # the migration builds exactly what create_all builds
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT value FROM meta WHERE key = 'schema_version'").scalar() == str(SCHEMA_VERSION)
        rows = conn.execute(select(deliveries.c.state, deliveries.c.finished_at, deliveries.c.bounced)
                            .order_by(deliveries.c.id)).all()
    assert [(r.state, r.finished_at, r.bounced) for r in rows] == [
        ("sent", datetime(2026, 11, 29, 6, 1, 2, tzinfo=timezone.utc), False), ("failed", None, False)]
    # Past sends and sign-ups were counted into the buckets.
    assert stats.totals(engine, stats.DELIVERY) == {("email", "sent"): 1, ("email", "failed"): 1}
    assert stats.totals(engine, stats.SUBSCRIBER) == {("", "signup"): 3, ("", "confirm"): 2, ("", "unsubscribe"): 1}
    assert subs.by_email(engine, "a@example.org")["status"] == "active"  # data untouched
    assert open_db(f"sqlite:///{tmp_path / 'old.db'}")  # opening again is a no-op


def _outcome(row_id, state, channel="email", **kw):
    return {"id": row_id, "state": state, "item_id": None, "channel": channel, "inc": 1, **kw}


def _rows(engine, item_id, channel, n, state="pending", created=T0):
    """n rows queued as the fan-out queues them; pending ones are then claimed, as the engine does before sending."""
    with engine.begin() as conn:
        outbox.insert_rows(conn, [
            {"item_id": item_id, "channel": channel, "recipient": f"{channel}-{i}", "revision": 0, "kind": "alert",
             "state": state, "attempts": 0, "created_at": created, "next_attempt_at": created} for i in range(n)])
        ids = [r[0] for r in conn.execute(select(deliveries.c.id).where(deliveries.c.item_id == item_id,
                                                                        deliveries.c.channel == channel))]
    if state == "pending":
        assert len(outbox.claim(engine, n, now=created, channels=[channel])) == n
    return ids


def test_outcomes_are_counted_with_their_rows(svc_engine):
    src = add_source(svc_engine)
    item = add_item(svc_engine, src, "a", T0, is_flash=True)
    sid = add_subscriber(svc_engine, "x@example.org")
    ids = _rows(svc_engine, item, "email", 4)
    sent = T0 + timedelta(minutes=20)
    outbox.record(svc_engine, [_outcome(ids[0], DeliveryState.SENT, sent=sent),
                               _outcome(ids[1], DeliveryState.FAILED, error="550 no such user", bounce_subscriber=sid),
                               _outcome(ids[2], DeliveryState.FAILED, error="552 too big"),
                               _outcome(ids[3], DeliveryState.RETRY, next=sent)], bounce_limit=5, now=sent)
    with svc_engine.connect() as conn:
        got = {r.id: (r.state, r.finished_at, r.bounced) for r in conn.execute(
            select(deliveries.c.id, deliveries.c.state, deliveries.c.finished_at, deliveries.c.bounced))}
    assert got == {ids[0]: ("sent", sent, False), ids[1]: ("failed", sent, True), ids[2]: ("failed", sent, False),
                   ids[3]: ("retry", None, False)}
    assert stats.totals(svc_engine, stats.DELIVERY) == {("email", "sent"): 1, ("email", "bounced"): 1,
                                                        ("email", "failed"): 1}
    assert stats.series(svc_engine, stats.DELIVERY, T0) == [
        (datetime(2026, 11, 29, 6, 15, tzinfo=timezone.utc), "email", o, 1) for o in ("bounced", "failed", "sent")]
    # An operator's retry takes a row back: no longer finished, no longer bounced (the counts stay: it happened).
    assert outbox.retry_deliveries(svc_engine, [ids[1]]) == 1
    with svc_engine.connect() as conn:
        again = conn.execute(select(deliveries.c.state, deliveries.c.finished_at, deliveries.c.bounced)
                             .where(deliveries.c.id == ids[1])).one()
    assert tuple(again) == ("pending", None, False)
    assert stats.totals(svc_engine, stats.DELIVERY)[("email", "bounced")] == 1


@pytest.mark.parametrize("at, bucket", [
    (datetime(2026, 11, 29, 6, 0, tzinfo=timezone.utc), datetime(2026, 11, 29, 6, 0, tzinfo=timezone.utc)),
    (datetime(2026, 11, 29, 6, 14, 59, 999999, tzinfo=timezone.utc), datetime(2026, 11, 29, 6, 0, tzinfo=timezone.utc)),
    (datetime(2026, 11, 29, 7, 50, tzinfo=timezone(timedelta(hours=1))), datetime(2026, 11, 29, 6, 45, tzinfo=timezone.utc)),
    (datetime(2026, 11, 29, 12, 20, tzinfo=timezone(timedelta(hours=5, minutes=45))),
     datetime(2026, 11, 29, 6, 30, tzinfo=timezone.utc)),  # Kathmandu: quarters still line up
])
def test_buckets_are_utc_quarter_hours(at, bucket):
    assert stats.bucket_of(at) == bucket


def test_folding_old_buckets_keeps_the_totals(svc_engine):
    with svc_engine.begin() as conn:
        for days in (0, 10, 40, 100):
            stats.bump(conn, stats.POLL, [(T0 - timedelta(days=days), "", "ok")], n=days + 1)
    before = stats.totals(svc_engine, stats.POLL)
    assert stats.fold(svc_engine, T0) == 2
    assert stats.totals(svc_engine, stats.POLL) == before == {("", "ok"): 1 + 11 + 41 + 101}
    assert [n for _, _, _, n in stats.series(svc_engine, stats.POLL, T0 - timedelta(days=30))] == [11, 1]
    assert stats.fold(svc_engine, T0) == 0


def test_poll_history_is_a_ring_of_the_last_polls(svc_engine, tmp_path):
    cfg = build_config(tmp_path)
    sid = add_source(svc_engine, "ring")
    outcomes = []
    for k in range(HISTORY_SLOTS + 5):
        row = store_sources.get_source(svc_engine, sid)
        at = T0 + timedelta(minutes=k)
        if k % 7 == 3:
            store_sources.record_failure(svc_engine, row, FeedResult(status=503, error="HTTP 503"), cfg, at)
            outcomes.append("error")
        elif k % 2:
            store_sources.record_successes(svc_engine, [(row, FeedResult(status=304, not_modified=True), at)], cfg)
            outcomes.append("not_modified")
        else:
            store_sources.record_success(svc_engine, row, FeedResult(status=200, elapsed=0.25), cfg, at)
            outcomes.append("ok")
    history = polls.recent(svc_engine, [sid])[sid]
    assert len(history) == HISTORY_SLOTS
    assert [p["seq"] for p in history] == list(range(6, HISTORY_SLOTS + 6))
    assert [p["outcome"] for p in history] == outcomes[-HISTORY_SLOTS:]
    assert history[-1]["at"] == T0 + timedelta(minutes=HISTORY_SLOTS + 4)
    assert next(p for p in history if p["outcome"] == "error")["error"] == "HTTP 503"
    assert next(p for p in history if p["outcome"] == "ok")["duration_ms"] == 250
    assert store_sources.get_source(svc_engine, sid)["poll_count"] == HISTORY_SLOTS + 5
    assert sum(stats.totals(svc_engine, stats.POLL).values()) == HISTORY_SLOTS + 5


def test_subscriber_events_are_counted(svc_engine):
    row, _ = subs.signup(svc_engine, "new@example.org", "both", "fr", [])
    subs.confirm(svc_engine, row["id"], row["token_nonce"])
    subs.unsubscribe(svc_engine, row["id"])
    subs.reactivate(svc_engine, "new@example.org")
    subs.erase(svc_engine, row["id"])
    subs.add(svc_engine, ["op@example.org", "op2@example.org"])
    subs.insert_many(svc_engine, [{"email": f"i{i}@example.org"} for i in range(5)] + [{"email": "op@example.org"}])
    pending, _ = subs.signup(svc_engine, "p@example.org", "both", "fr", [])
    subs.unsubscribe(svc_engine, pending["id"])  # never active: not a departure
    assert stats.totals(svc_engine, stats.SUBSCRIBER) == {
        ("", "signup"): 1 + 2 + 5 + 1, ("", "confirm"): 1 + 1 + 2 + 5, ("", "unsubscribe"): 2}


def test_suppression_is_counted(svc_engine):
    sid = add_subscriber(svc_engine, "gone@example.org")
    item = add_item(svc_engine, add_source(svc_engine), "a", T0, is_flash=True)
    ids = _rows(svc_engine, item, "email", 1)
    outbox.record(svc_engine, [_outcome(ids[0], DeliveryState.FAILED, bounce_subscriber=sid)], bounce_limit=1, now=T0)
    assert subs.get(svc_engine, sid)["status"] == "suppressed"
    assert stats.totals(svc_engine, stats.SUBSCRIBER)[("", "suppress")] == 1


def test_live_progress_per_alert_and_channel(svc_engine):
    src = add_source(svc_engine, name="Le Fil")
    now = T0 + timedelta(seconds=100)
    item = add_item(svc_engine, src, "flash", T0, is_flash=True, published_at=T0 - timedelta(seconds=40),
                    first_telegram_at=T0 + timedelta(seconds=1), first_email_at=T0 + timedelta(seconds=2))
    old = add_item(svc_engine, src, "old", T0 - timedelta(hours=8), is_flash=True)
    ids = _rows(svc_engine, item, "email", 100)
    _rows(svc_engine, old, "email", 3, state="sent")
    tg = _rows(svc_engine, item, "telegram", 1)
    finished = [(ids[i], DeliveryState.SENT, now - timedelta(seconds=25 - i * 0.4)) for i in range(60)]  # 60 sent
    finished[0] = (ids[0], DeliveryState.SENT, now - timedelta(seconds=80))  # an early one, outside the window
    results = [_outcome(i, st, sent=at) for i, st, at in finished]
    results += [_outcome(ids[60 + k], DeliveryState.FAILED) for k in range(3)]
    results += [_outcome(ids[63], DeliveryState.FAILED, bounce_subscriber=None)]
    results += [_outcome(tg[0], DeliveryState.SENT, channel="telegram", sent=T0 + timedelta(seconds=1))]
    outbox.record(svc_engine, results, bounce_limit=5, now=now - timedelta(seconds=5))
    bouncer = add_subscriber(svc_engine, "gone@example.org")  # one bounce, recorded as the engine records it
    outbox.record(svc_engine, [_outcome(ids[64], DeliveryState.FAILED, bounce_subscriber=bouncer)], bounce_limit=5,
                  now=now - timedelta(seconds=5))
    (entry,) = reports.fanouts(svc_engine, now)  # the 8-hour-old alert is outside the window
    assert entry["id"] == item and entry["running"] and entry["source_name"] == "Le Fil"
    email, telegram = entry["groups"]
    assert {k: email[k] for k in ("channel", "total", "sent", "failed", "bounced", "pending", "cancelled")} == {
        "channel": "email", "total": 100, "sent": 60, "failed": 4, "bounced": 1, "pending": 35, "cancelled": 0}
    # 64 rows finished in the last 30 s (59 sent + 5 failed or bounced): 64 / 30 rows per second.
    assert email["recent"] == 64 and email["rate"] == pytest.approx(64 / 30)
    assert email["eta"] == pytest.approx(35 / (64 / 30))
    assert telegram["running"] is False and telegram["total"] == telegram["sent"] == 1 and telegram["eta"] is None
    assert entry["latency"]["telegram"] == {"published": 41.0, "detected": 1.0}
    assert entry["latency"]["email"]["detected"] == 2.0
    # The old alert comes back while it still has rows to send, however old it is.
    with svc_engine.begin() as conn:
        summary.move(conn, deliveries.c.item_id == old, ["sent"], state="retry")
    assert [e["id"] for e in reports.fanouts(svc_engine, now)] == [item, old]


def test_finished_fanout_reports_its_duration_and_average_rate(svc_engine):
    item = add_item(svc_engine, add_source(svc_engine), "a", T0, is_flash=True)
    ids = _rows(svc_engine, item, "email", 10)
    outbox.record(svc_engine, [_outcome(i, DeliveryState.SENT, sent=T0 + timedelta(seconds=4)) for i in ids],
                  bounce_limit=5)
    (g,) = reports.fanouts(svc_engine, T0 + timedelta(minutes=5))[0]["groups"]
    assert not g["running"] and g["duration"] == 4.0 and g["rate"] == 2.5 and g["eta"] is None


def _walk(engine, **filters) -> list[list[int]]:
    pages, after = [], None
    while True:
        page = listing.subscriber_page(engine, limit=4, after=after, **filters)
        pages.append([r["id"] for r in page.rows])
        if page.next_after is None:
            return pages
        after = page.next_after


def test_keyset_pages_forward_back_and_filtered(svc_engine, monkeypatch):
    for i in range(10):
        add_subscriber(svc_engine, f"p{i}@{'example.org' if i % 2 else 'exemple.fr'}", language="en" if i % 3 else "fr")
    assert _walk(svc_engine) == [[10, 9, 8, 7], [6, 5, 4, 3], [2, 1]]
    second = listing.subscriber_page(svc_engine, limit=4, after=7)
    assert second.prev_before == 6 and second.next_after == 3
    back = listing.subscriber_page(svc_engine, limit=4, before=second.prev_before)
    assert [r["id"] for r in back.rows] == [10, 9, 8, 7] and back.prev_before is None and back.next_after == 7
    assert _walk(svc_engine, search="EXAMPLE.ORG") == [[10, 8, 6, 4], [2]]
    assert _walk(svc_engine, language="fr", search="%") == [[]]  # % is a character, not a wildcard
    exact = listing.subscriber_page(svc_engine, search=" P3@Exemple.FR ")
    assert exact.exact_address and exact.total == 0 and exact.rows == []  # p3 is @example.org
    exact = listing.subscriber_page(svc_engine, search="p3@example.org")
    assert exact.exact_address and [r["email"] for r in exact.rows] == ["p3@example.org"] and exact.total == 1
    counts = {"active": {"both": 7, "digest": 2}, "pending": {"both": 1}}  # the dashboard's cached summary
    assert listing.subscriber_page(svc_engine, status="active", counts=counts).total == 9
    assert listing.subscriber_page(svc_engine, mode="both", counts=counts).total == 8
    assert listing.subscriber_page(svc_engine, language="fr", counts=counts).total == 4  # counted: not in the summary
    monkeypatch.setattr(listing, "COUNT_CAP", 3)
    capped = listing.subscriber_page(svc_engine, search="example")
    assert capped.capped and capped.total == 3
    exact_total = listing.subscriber_page(svc_engine, status="active")
    assert not exact_total.capped and exact_total.total == 10  # an index counts it: never capped


def test_source_pages_by_name_with_state_filter(svc_engine):
    for name, kw in [("b-ok", {"last_success_at": T0}), ("a-failing", {"consecutive_failures": 2}),
                     ("c-paused", {"paused": True}), ("d-new", {})]:
        add_source(svc_engine, name, **kw, **({"last_polled_at": T0} if name != "d-new" else {}))
    page = listing.source_page(svc_engine, limit=2)
    assert [r["name"] for r in page.rows] == ["a-failing", "b-ok"] and page.next_after == "b-ok"
    nxt = listing.source_page(svc_engine, limit=2, after=page.next_after)
    assert [r["name"] for r in nxt.rows] == ["c-paused", "d-new"] and nxt.next_after is None
    assert [r["name"] for r in listing.source_page(svc_engine, state="failing").rows] == ["a-failing"]
    assert [r["name"] for r in listing.source_page(svc_engine, search="PAUSED").rows] == ["c-paused"]
    assert page.extra["counts"] == {"ok": 1, "failing": 1, "paused": 1, "new": 1, "websub": 0}


def test_latency_histogram_keeps_pruned_alerts(svc_engine):
    src = add_source(svc_engine)
    old = T0 - timedelta(days=200)
    add_item(svc_engine, src, "old", old, is_flash=True, published_at=old - timedelta(seconds=40),
             first_email_at=old + timedelta(seconds=3))
    add_item(svc_engine, src, "new", T0, is_flash=True, published_at=T0 - timedelta(seconds=4),
             first_email_at=T0 + timedelta(seconds=1))
    before = dashboard.alert_latency_histogram(svc_engine)
    assert before[("email", "detected")]["count"] == 2 and before[("email", "detected")]["sum"] == 4.0
    assert before[("email", "published")]["buckets"][dashboard.ALERT_BUCKETS.index(5)] == 1  # 5 s, not 43 s
    assert maintenance.prune(svc_engine, 90, T0)["items"] == 1
    with svc_engine.connect() as conn:
        assert conn.execute(select(items.c.key)).scalars().all() == ["new"]
    assert dashboard.alert_latency_histogram(svc_engine) == before
