"""Channel faults through the whole pipeline: a served Flash Info item → `run_once` → a misbehaving SMTP
server or Telegram Bot API. Each fault must end in its documented state — sent after a retry with
backoff, failed permanently (with a bounce counted), or the channel paused with the operator told —
with nothing lost and nothing retried forever.
"""
from __future__ import annotations

import time
from collections import Counter

import pytest
from sqlalchemy import select

from bot.config import parse_config
from bot.service.once import run_once
from bot.store import open_db
from bot.store import channels as channel_store
from bot.store.schema import deliveries, subscribers
from bot.demo.smtpserver import SMTPServer
from bot.demo.telegram_api import BotAPIStandin
from fixtures_delivery import add_subscribers

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")
GOOD = ["anne@example.org", "bruno@example.org", "chloe@example.org"]
BAD = "nobody@bad.example"
FEED = ('<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Q</title><link>https://q.example/</link>'
        '<item><title>FLASH INFO : Crue de la Seine</title><guid>f1</guid><link>https://q.example/f1</link>'
        '<description>Texte.</description></item></channel></rss>')


def make(tmp_path, feed_url, smtp=None, tg=None, **delivery):
    cfg = parse_config({
        "bot": {"database": str(tmp_path / "f.db"), "public_url": "https://news.example.org"},
        "web": {"secret_key": "faults-secret-key-0123456789abcdef"}, "digest": {"enabled": False},
        "sources": [{"name": "q", "url": feed_url, "alert_on_first_poll": True}],
        **({"email": {"host": "127.0.0.1", "port": smtp.port, "sender": "Flash <a@example.org>", "tls": "none",
                      "timeout": 1, "concurrency": 2}} if smtp else {}),
        **({"telegram": {"token": tg.token, "channel": "@flash", "api_url": tg.base_url, "timeout": 1}} if tg else {}),
        "delivery": {"retry_delays": [1], "max_attempts": 3, "bounce_limit": 1, **delivery},
    }, tmp_path, env={})
    engine = open_db(cfg.database_url)
    return cfg, engine


def rows(engine, channel="email") -> dict[str, dict]:
    with engine.connect() as conn:
        q = select(deliveries, subscribers.c.email).join(subscribers, subscribers.c.id == deliveries.c.subscriber_id,
                                                         isouter=True).where(deliveries.c.channel == channel)
        return {(r["email"] or r["recipient"]): dict(r) for r in conn.execute(q).mappings()}


# (name, how to break the server, how to heal it after the first run or None, final state of GOOD, of BAD)
SMTP_FAULTS = [
    ("421 at connect", lambda s: s.fail(421, stage="connect", times=1), None, "sent", "sent"),
    ("451 at RCPT", lambda s: s.fail(451, stage="rcpt", times=2), None, "sent", "sent"),
    ("452 at RCPT", lambda s: s.fail(452, stage="rcpt", pattern="*@bad.example", times=1), None, "sent", "sent"),
    ("550 at RCPT", lambda s: s.fail(550, stage="rcpt", pattern="*@bad.example"), None, "sent", "failed"),
    ("553 at RCPT", lambda s: s.fail(553, stage="rcpt", pattern="*@bad.example"), None, "sent", "failed"),
    ("552 at DATA", lambda s: s.fail(552, stage="data", pattern="*@bad.example"), None, "sent", "failed"),
    ("554 at DATA", lambda s: s.fail(554, stage="data", pattern="*@bad.example"), None, "sent", "failed"),
    ("dropped mid-DATA", lambda s: s.fail(stage="data", drop=True, times=1), None, "sent", "sent"),
    ("451 forever", lambda s: s.fail(451, stage="rcpt", pattern="*@bad.example"), None, "sent", "failed"),
    ("slower than the timeout", lambda s: setattr(s, "delay", 2.5), lambda s: setattr(s, "delay", 0), "sent", "sent"),
    ("down at start, back later", lambda s: s.stop(), lambda s: s.start(), "sent", "sent"),
]


@pytest.mark.timeout(90)
@pytest.mark.parametrize("name,breaks,heals,good_state,bad_state", SMTP_FAULTS, ids=[f[0] for f in SMTP_FAULTS])
def test_smtp_fault_ends_in_its_documented_state(tmp_path, hostile_server, figures, name, breaks, heals,
                                                 good_state, bad_state):
    hostile_server.set("/faults.xml", FEED)
    with SMTPServer() as smtp:
        cfg, engine = make(tmp_path, hostile_server.url("/faults.xml"), smtp=smtp)
        add_subscribers(engine, [*GOOD, BAD])
        breaks(smtp)
        run_once(cfg, engine, horizon=0 if heals else 6)  # horizon: retries falling due within 6 s are sent now
        if heals:
            assert all(r["state"] in ("retry", "pending") for r in rows(engine).values()), rows(engine)
            heals(smtp)
            time.sleep(1.1)
            run_once(cfg, engine, horizon=6)
        # A run long after: nothing is left to retry (no row retried forever).
        final = rows(engine)
        got = Counter(smtp.recipients())
        extra = run_once(cfg, engine, horizon=0)
        lost = sum(1 for who in [*GOOD, BAD] if not got[who] and final[who]["state"] != "failed")
        dups = sum(n - 1 for n in got.values())
        figures.add("faults: SMTP", tried=1, lost=lost, duplicates=dups)
        assert {final[g]["state"] for g in GOOD} == {good_state}, final
        assert final[BAD]["state"] == bad_state, final[BAD]
        assert all(got[g] == 1 for g in GOOD) and dups == 0, got
        assert final[BAD]["attempts"] <= cfg.delivery.max_attempts
        if bad_state == "failed":
            assert final[BAD]["last_error"], final[BAD]
            assert got[BAD] == 0
        assert extra["delivery"].get("sent", 0) == 0
        with engine.connect() as conn:
            bad_sub = conn.execute(select(subscribers).where(subscribers.c.email == BAD)).mappings().one()
        permanent = name[:3] in ("550", "553", "552", "554")
        assert (bad_sub["status"] == "bounced" or bad_sub["bounces"] >= 1) == permanent, dict(bad_sub)
        figures.add("faults: SMTP", tried=0, passed=1)
        engine.dispose()


TELEGRAM_FAULTS = [
    # (name, inject, expected final state of the channel's row, channel paused?)
    ("429 retry_after", lambda t: t.flood(retry_after=1), "sent", False),
    ("500", lambda t: t.server_error(500), "sent", False),
    ("502 (HTML page)", lambda t: t.server_error(502), "sent", False),
    ("timeout", lambda t: t.hang(5), "sent", False),
    ("400 can't parse entities", lambda t: t.bad_request("Bad Request: can't parse entities: unsupported start tag"),
     "failed", False),
    ("403 bot kicked", lambda t: t.kick(), "pending", True),
]


@pytest.mark.timeout(90)
@pytest.mark.parametrize("name,inject,state,paused", TELEGRAM_FAULTS, ids=[f[0] for f in TELEGRAM_FAULTS])
def test_telegram_fault_ends_in_its_documented_state(tmp_path, hostile_server, figures, name, inject, state, paused):
    hostile_server.set("/tg.xml", FEED)
    with BotAPIStandin() as tg:
        cfg, engine = make(tmp_path, hostile_server.url("/tg.xml"), tg=tg)
        inject(tg)
        run_once(cfg, engine, horizon=6)
        run_once(cfg, engine, horizon=0)  # a later run: a permanent failure is not retried
        [row] = rows(engine, "telegram").values()
        sends = sum(1 for c in tg.calls if c[0] == "sendmessage")
        figures.add("faults: Telegram", tried=1, duplicates=max(len(tg.posts) - 1, 0),
                    lost=int(row["state"] not in ("sent", "failed") and not paused))
        assert row["state"] in ((state, "retry") if state == "pending" else (state,)), row
        assert len(tg.posts) == (1 if state == "sent" else 0)
        assert sends <= cfg.delivery.max_attempts + 1, f"{sends} sendMessage calls: retried in a loop"
        channel = {c["channel"]: c for c in channel_store.channel_states(engine)}.get("telegram", {})
        assert bool(channel.get("paused")) == paused, channel
        if paused:  # the operator is told: the pause and its reason are stored for `flashbot deliveries` and /admin
            assert "kicked" in (channel.get("last_error") or ""), channel
            tg.clear_faults()
            channel_store.resume_channel(engine, "telegram")  # what `flashbot deliveries --resume telegram` does
            run_once(cfg, engine, horizon=0)
            assert len(tg.posts) == 1 and rows(engine, "telegram")["@flash"]["state"] == "sent"
        if state == "failed":
            assert "parse entities" in row["last_error"] and sends == 1
        figures.add("faults: Telegram", tried=0, passed=1)
        engine.dispose()
