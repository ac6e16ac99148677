"""Service parts without the delivery engine: scheduler reconcile, housekeeping, lock, logs.

The due rule the scheduler applies is tested with the batch poll's in test_source_schedule.py."""
from __future__ import annotations

import asyncio
import io
import json
import logging
import subprocess
import sys
import textwrap
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from bot import logs
from bot.service.scheduler import Jobs, Scheduler
from bot.store import maintenance, outbox
from bot.store.db import utcnow
from bot.store.lock import InstanceLock, lock_path
from bot.store.schema import bounce_mails, deliveries, digests, items, sources
from fixtures_service import add_item, add_source, add_subscriber


async def until(condition, timeout: float = 10.0) -> None:
    """Wait for the running scheduler to make `condition` true (a generous deadline, not a measurement)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_reconcile_follows_sources_table(svc_config, svc_engine):
    polled: list[int] = []

    async def poll(sid):
        polled.append(sid)

    async def nothing():
        return None

    cfg = svc_config(digest={"enabled": False})
    a = add_source(svc_engine, "a", interval=1)
    sched = Scheduler(cfg, svc_engine, Jobs(poll, nothing, nothing), reconcile_seconds=0.2)
    sched.start()
    try:
        assert set(sched.intervals) == {a}
        b = add_source(svc_engine, "b", interval=1)  # as `sources add` would, while running
        with svc_engine.begin() as conn:
            conn.execute(update(sources).where(sources.c.id == a).values(paused=True))
        await until(lambda: set(sched.intervals) == {b})  # the next reconcile (every 0.2 s)
        polled.clear()
        await until(lambda: b in polled)
        assert a not in polled
        with svc_engine.begin() as conn:
            conn.execute(update(sources).where(sources.c.id == b).values(interval=30))
        assert sched.reconcile() == {"added": 0, "removed": 0, "changed": 1}
        with svc_engine.begin() as conn:
            conn.execute(sources.delete().where(sources.c.id == b))
        assert sched.reconcile()["removed"] == 1 and sched.aps.get_job(f"poll:{b}") is None
        job_ids = {j.id for j in sched.aps.get_jobs()}
        assert {"reconcile", "housekeeping"} <= job_ids and "digest" not in job_ids
    finally:
        sched.shutdown()


def test_digest_job_misfire_grace(svc_config, svc_engine):
    async def go():
        async def nothing(*a):
            return None
        sched = Scheduler(svc_config(), svc_engine, Jobs(nothing, nothing, nothing))
        sched.start()
        job = sched.aps.get_job("digest")
        sched.shutdown()
        return job
    job = asyncio.run(go())
    assert job.misfire_grace_time >= 3600 and job.coalesce and str(job.trigger.timezone) == "Europe/Paris"


def test_housekeeping_prunes_only_old_finished(svc_engine):
    now = utcnow()
    old = now - timedelta(days=100)
    src = add_source(svc_engine)
    sub = add_subscriber(svc_engine, "x@example.org")
    old_item = add_item(svc_engine, src, "old", old)
    old_pending = add_item(svc_engine, src, "old-pending", old)
    fresh = add_item(svc_engine, src, "fresh", now)
    relisted = add_item(svc_engine, src, "relisted", old, published_at=now - timedelta(days=2))
    with svc_engine.begin() as conn:
        # The pending row is the newest: the newest delivery row is never pruned (its id must not come back).
        for item_id, state in ((old_item, "sent"), (fresh, "sent"), (old_pending, "retry")):
            outbox.insert_rows(conn, [dict(item_id=item_id, channel="email", recipient=str(sub),
                                           subscriber_id=sub, state=state, created_at=old)])
        conn.execute(digests.insert().values(run_key="2026-01-01", created_at=old))
        conn.execute(bounce_mails.insert(), [  # an old processed one goes; an old unprocessed one and a fresh one stay
            {"source": "smtp", "dedupe": key, "raw": b"x", "received_at": at, "state": state}
            for key, at, state in (("a", old, "processed"), ("b", old, "new"), ("c", now, "processed"))])
    counts = maintenance.prune(svc_engine, 90, now)
    with svc_engine.connect() as conn:
        left = {r.key for r in conn.execute(select(items.c.key))}
        states = sorted(r.state for r in conn.execute(select(deliveries.c.state)))
    assert left == {"old-pending", "fresh", "relisted"}
    assert states == ["retry"]  # old finished rows go, a waiting one stays
    assert counts == {"deliveries": 2, "items": 1, "digests": 1, "bounce_mails": 1,
                      "stats_buckets": 0}  # no bucket is 35 days old
    with svc_engine.connect() as conn:
        assert sorted(conn.execute(select(bounce_mails.c.dedupe)).scalars()) == ["b", "c"]


async def test_housekeeping_job_also_prunes_stale_rate_limit_events(svc_config, svc_engine):
    from bot.service.daemon import housekeeping
    from bot.store import ratelimit
    from bot.store.schema import rate_events

    with svc_engine.begin() as conn:
        conn.execute(rate_events.insert(), [{"bucket": "ip:1", "at": utcnow() - timedelta(days=3)},
                                            {"bucket": "ip:1", "at": utcnow()}])
    counts = await housekeeping(svc_config(), svc_engine)
    assert counts["rate_events"] == 1
    assert ratelimit.count(svc_engine, "ip:1", 86400) == 1


async def test_housekeeping_stops_between_batches_when_the_service_stops(svc_config, svc_engine):
    from bot.service.daemon import housekeeping

    src = add_source(svc_engine)
    old = utcnow() - timedelta(days=10)
    for k in range(3):  # three alerts queued 10 days ago, sent: three groups to compact
        item = add_item(svc_engine, src, f"k{k}", old, is_flash=True)
        sub = add_subscriber(svc_engine, f"p{k}@example.org")
        with svc_engine.begin() as conn:
            outbox.insert_rows(conn, [dict(item_id=item, channel="email", recipient=str(sub), subscriber_id=sub,
                                           state="sent", created_at=old)])
    counts = await housekeeping(svc_config(), svc_engine, stop=lambda: True)  # SIGTERM during housekeeping
    assert counts["compacted"] == 1 and counts["compacted_groups"] == 0  # one batch, then it stopped
    assert "requeued" not in counts and maintenance.housekeeping_due(svc_engine, timedelta(hours=1))
    counts = await housekeeping(svc_config(), svc_engine)
    # The next run goes on with the two groups that still have rows (the first one was done).
    assert counts["compacted"] == 2 and counts["compacted_groups"] == 2
    assert not maintenance.housekeeping_due(svc_engine, timedelta(hours=1))


def test_orphaned_alerts_are_recent_unqueued_flash_items_only(svc_engine):
    now = utcnow()
    src = add_source(svc_engine)
    sub = add_subscriber(svc_engine, "o@example.org")
    orphan = add_item(svc_engine, src, "orphan", now, is_flash=True)
    approved = add_item(svc_engine, src, "approved", now, is_flash=True, alert_state="approved")
    add_item(svc_engine, src, "ancient", now - timedelta(days=100), is_flash=True)  # its rows were pruned
    add_item(svc_engine, src, "held", now, is_flash=True, alert_state="held")
    add_item(svc_engine, src, "cancelled", now, is_flash=True, alert_state="cancelled")
    add_item(svc_engine, src, "plain", now)
    queued = add_item(svc_engine, src, "queued", now, is_flash=True)
    with svc_engine.begin() as conn:
        outbox.insert_rows(conn, [dict(item_id=queued, channel="email", recipient=str(sub),
                                       subscriber_id=sub, state="pending", created_at=now)])
    assert maintenance.orphaned_alerts(svc_engine, 90, now) == [orphan, approved]


@pytest.mark.sqlite_only  # PostgreSQL has no instance lock: several processes share it (test_cluster.py)
def test_instance_lock_excludes_second_holder(svc_config, tmp_path):
    cfg = svc_config()
    path = lock_path(cfg)
    assert path == tmp_path / "svc.db.lock"
    first = InstanceLock(path)
    assert first.acquire()
    code = textwrap.dedent(f"""
        from pathlib import Path
        from bot.store.lock import InstanceLock
        print(InstanceLock(Path({str(path)!r})).acquire(0.3))
    """)
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert other.stdout.strip() == "False"
    first.release()
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert other.stdout.strip() == "True"


SECRETS = {"password": "smtp-Pa55word!", "token": "123456:AAH-secret_tokenValue", "admin": "admin-pass-xyz",
           "key": "k3y-signing-s3cret"}


def _secret_config(svc_config):
    return svc_config(email={"sender": "a@example.org", "password": SECRETS["password"]},
                      telegram={"token": SECRETS["token"], "channel": "@c"},
                      web={"admin_password": SECRETS["admin"], "secret_key": SECRETS["key"]})


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_secrets_never_logged(svc_config, fmt):
    cfg = _secret_config(svc_config)
    stream = io.StringIO()
    logs.setup(fmt, secrets=logs.config_secrets(cfg), stream=stream)
    try:
        log = logging.getLogger("flashbot.test")
        logs.event(log, "login", user="u", password=SECRETS["password"])
        log.info("GET https://api.telegram.org/bot%s/getMe", SECRETS["token"])
        logging.getLogger("httpx").warning("url %s", "https://x/bot" + SECRETS["token"].replace(":", "%3A"))
        log.warning("token half %s", SECRETS["token"].split(":")[1])
        try:
            raise RuntimeError(f"auth failed for {SECRETS['admin']} / {SECRETS['key']}")
        except RuntimeError:
            log.exception("crash")
    finally:
        logs.setup("text")
    text = stream.getvalue()
    assert text.count(logs.REDACTED) >= 6, text
    for value in SECRETS.values():
        assert value not in text
    assert "AAH-secret_tokenValue" not in text
    if fmt == "json":
        lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
        assert lines[0]["event"] == "login" and lines[0]["user"] == "u" and lines[0]["password"] == logs.REDACTED
    else:
        assert "login user=u password=" in text


def test_text_format_one_line_with_fields():
    stream = io.StringIO()
    logs.setup("text", stream=stream)
    try:
        logs.event(logging.getLogger("flashbot.pipeline"), "poll", source="le monde", new=2, duration=0.2104)
    finally:
        logs.setup("text")
    line = stream.getvalue().strip()
    assert "\n" not in line
    assert line.endswith('INFO flashbot.pipeline poll source="le monde" new=2 duration=0.210')
