"""Digest selection and scheduling with a frozen clock: once per day, catch-up once, never twice."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from bot import digest
from bot.store.schema import deliveries, digest_items, digests
from fixtures_service import add_item, add_source, add_subscriber

PARIS_7AM_UTC = datetime(2026, 11, 29, 6, 0, tzinfo=timezone.utc)  # 07:00 in Paris (UTC+1)
EMAIL = {"sender": "Flash <a@example.org>"}


def _rows(engine, table):
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(table))]


def _digest_of(engine, subscriber_id):
    """Item ids per digest delivery of a subscriber, in delivery order."""
    out = {}
    for r in _rows(engine, digest_items):
        if r["subscriber_id"] == subscriber_id:
            out.setdefault(r["delivery_id"], []).append(r["item_id"])
    return list(out.values())


@pytest.mark.parametrize("now, expected", [
    (datetime(2026, 11, 29, 6, 0, tzinfo=timezone.utc), datetime(2026, 11, 29, 6, 0, tzinfo=timezone.utc)),
    (datetime(2026, 11, 29, 5, 59, tzinfo=timezone.utc), datetime(2026, 11, 28, 6, 0, tzinfo=timezone.utc)),
    (datetime(2026, 11, 29, 23, 0, tzinfo=timezone.utc), datetime(2026, 11, 29, 6, 0, tzinfo=timezone.utc)),
    # Summer time: 07:00 in Paris is 05:00 UTC.
    (datetime(2026, 7, 1, 12, 0, tzinfo=timezone.utc), datetime(2026, 7, 1, 5, 0, tzinfo=timezone.utc)),
])
def test_last_fire_in_bot_timezone(svc_config, now, expected):
    cfg = svc_config(email=EMAIL)
    assert digest.last_fire(cfg, now) == expected


@pytest.mark.parametrize("schedule, key", [("0 7 * * *", "2026-11-29"), ("0 7,19 * * *", "2026-11-29T07:00"),
                                           ("*/30 * * * *", "2026-11-29T07:00")])
def test_run_key(svc_config, schedule, key):
    cfg = svc_config(email=EMAIL, digest={"schedule": schedule})
    assert digest.run_key(cfg, PARIS_7AM_UTC) == key


def test_order_flash_first_then_source_and_category(svc_config, svc_engine):
    t = PARIS_7AM_UTC - timedelta(hours=3)
    b = add_source(svc_engine, "b-source", category="Sport")
    a = add_source(svc_engine, "a-source", category="Monde")
    ids = {
        "b1": add_item(svc_engine, b, "b1", t),
        "a1": add_item(svc_engine, a, "a1", t + timedelta(minutes=1)),
        "flash-b": add_item(svc_engine, b, "flash-b", t, is_flash=True),
        "a2": add_item(svc_engine, a, "a2", t + timedelta(minutes=2)),
        "base": add_item(svc_engine, a, "base", t, baseline=True),
        "held": add_item(svc_engine, a, "held", t, is_flash=True, alert_state="held"),
        "old": add_item(svc_engine, a, "old", t - timedelta(days=3)),
    }
    sub = add_subscriber(svc_engine, "x@example.org")
    cfg = svc_config(email=EMAIL)
    r = digest.queue_digest(svc_engine, cfg, "k1", PARIS_7AM_UTC)
    assert r["queued"] == 1
    names = {v: k for k, v in ids.items()}
    assert [names[i] for i in _digest_of(svc_engine, sub)[0]] == ["flash-b", "a2", "a1", "b1"]


def test_modes_statuses_and_topics(svc_config, svc_engine):
    t = PARIS_7AM_UTC - timedelta(hours=1)
    src = add_source(svc_engine, "s")
    add_item(svc_engine, src, "eco", t, categories=["Économie"])
    add_item(svc_engine, src, "sport", t, categories=["Sport"])
    subs = {
        "both": add_subscriber(svc_engine, "both@example.org", mode="both"),
        "digest": add_subscriber(svc_engine, "digest@example.org", mode="digest"),
        "instant": add_subscriber(svc_engine, "instant@example.org", mode="instant"),
        "pending": add_subscriber(svc_engine, "pending@example.org", status="pending"),
        "unsub": add_subscriber(svc_engine, "unsub@example.org", status="unsubscribed"),
        "sport": add_subscriber(svc_engine, "sport@example.org", topics=["Sport"]),
        "none": add_subscriber(svc_engine, "none@example.org", topics=["Culture"]),
    }
    r = digest.queue_digest(svc_engine, svc_config(email=EMAIL), "k", PARIS_7AM_UTC)
    got = {name: len(sum(_digest_of(svc_engine, sid), [])) for name, sid in subs.items()}
    assert got == {"both": 2, "digest": 2, "instant": 0, "pending": 0, "unsub": 0, "sport": 1, "none": 0}
    assert r["queued"] == 3 and r["empty"] == 1
    rows = _rows(svc_engine, deliveries)
    assert {(d["kind"], d["channel"], d["state"], d["item_id"]) for d in rows} == {("digest", "email", "pending", None)}
    assert sorted(d["recipient"] for d in rows) == sorted(str(subs[n]) for n in ("both", "digest", "sport"))


def test_once_per_day_and_catch_up_once_after_downtime(svc_config, svc_engine):
    cfg = svc_config(email=EMAIL)
    day = timedelta(days=1)
    src = add_source(svc_engine, "s")
    sub = add_subscriber(svc_engine, "x@example.org", mode="digest")
    digest.note_first_start(svc_engine, PARIS_7AM_UTC - timedelta(hours=2))
    add_item(svc_engine, src, "d1", PARIS_7AM_UTC - timedelta(hours=1))
    # The scheduled run, then the same run fired again (misfire, restart, second process): once.
    assert digest.send_due(svc_engine, cfg, PARIS_7AM_UTC + timedelta(seconds=2))["queued"] == 1
    assert digest.send_due(svc_engine, cfg, PARIS_7AM_UTC + timedelta(minutes=30)) is None
    assert digest.send_due(svc_engine, cfg, PARIS_7AM_UTC + timedelta(hours=20)) is None
    # Down for two days: items from both days arrive in ONE catch-up digest at restart.
    add_item(svc_engine, src, "d2", PARIS_7AM_UTC + day + timedelta(hours=3))
    add_item(svc_engine, src, "d3", PARIS_7AM_UTC + 2 * day + timedelta(hours=1))
    restart = PARIS_7AM_UTC + 2 * day + timedelta(hours=4)  # 11:00 local, today's 07:00 was missed
    assert digest.send_due(svc_engine, cfg, restart)["queued"] == 1
    assert digest.send_due(svc_engine, cfg, restart + timedelta(minutes=1)) is None
    assert [len(x) for x in _digest_of(svc_engine, sub)] == [1, 2]
    assert [d["run_key"] for d in _rows(svc_engine, digests)] == ["2026-11-29", "2026-12-01"]
    # Next day, nothing new: a run row but no email.
    r = digest.send_due(svc_engine, cfg, PARIS_7AM_UTC + 3 * day)
    assert r["queued"] == 0 and r["empty"] == 1


def test_no_catch_up_for_runs_before_first_start(svc_config, svc_engine):
    cfg = svc_config(email=EMAIL)
    add_subscriber(svc_engine, "x@example.org")
    add_item(svc_engine, add_source(svc_engine), "i", PARIS_7AM_UTC - timedelta(hours=1))
    digest.note_first_start(svc_engine, PARIS_7AM_UTC + timedelta(hours=3))
    assert digest.send_due(svc_engine, cfg, PARIS_7AM_UTC + timedelta(hours=3)) is None
    assert _rows(svc_engine, digests) == []


def test_item_never_in_two_digests_even_manual(svc_config, svc_engine):
    cfg = svc_config(email=EMAIL)
    sub = add_subscriber(svc_engine, "x@example.org")
    add_item(svc_engine, add_source(svc_engine), "i", PARIS_7AM_UTC - timedelta(hours=1))
    assert digest.send_now(svc_engine, cfg, PARIS_7AM_UTC)["queued"] == 1
    # Same window again (last_digest_at reset would not matter: digest_items forbids repeats).
    assert digest.send_now(svc_engine, cfg, PARIS_7AM_UTC + timedelta(seconds=1))["queued"] == 0
    assert len(_digest_of(svc_engine, sub)) == 1


def test_disabled_or_no_email(svc_config, svc_engine):
    add_subscriber(svc_engine, "x@example.org")
    assert digest.send_due(svc_engine, svc_config(email=EMAIL, digest={"enabled": False}), PARIS_7AM_UTC) is None
    r = digest.queue_digest(svc_engine, svc_config(), "k", PARIS_7AM_UTC)
    assert r["queued"] == 0 and "email: off" in r["skipped"]


def test_max_items_keeps_flash(svc_config, svc_engine):
    cfg = svc_config(email=EMAIL, digest={"max_items": 3})
    src = add_source(svc_engine)
    for n in range(6):
        add_item(svc_engine, src, f"n{n}", PARIS_7AM_UTC - timedelta(minutes=10 * n + 5))
    flash = add_item(svc_engine, src, "old-flash", PARIS_7AM_UTC - timedelta(hours=20), is_flash=True)
    sub = add_subscriber(svc_engine, "x@example.org")
    digest.queue_digest(svc_engine, cfg, "k", PARIS_7AM_UTC)
    got = _digest_of(svc_engine, sub)[0]
    assert len(got) == 3 and got[0] == flash
