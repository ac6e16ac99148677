"""Confirmation mails go out after the response: same page, same time, whatever the address and the SMTP server do."""
from __future__ import annotations

import asyncio
import re
import time

import pytest
from fixtures_web import settle
from test_web_signup import signup

from bot.store import subscribers as subs
from bot.web.mailer import MailJobs

SLOW = 1.5  # seconds the SMTP server sits on each message


def bare(html: str) -> str:
    return re.sub(r'value="[^"]*"', "", html)  # the CSRF field differs per page


async def test_slow_smtp_delays_no_answer_and_answers_match(web_client, web_app, smtp_inbox, web_engine):
    subs.add(web_engine, ["known@example.org"])
    subs.signup(web_engine, "waiting@example.org", "both", "fr", [])
    smtp_inbox.delay = SLOW
    pages = {}
    for email in ("fresh@example.org", "known@example.org", "waiting@example.org", "fresh@example.org"):
        await web_client.get("/")
        pages.setdefault(email, []).append(await signup(web_client, email))
    assert {r.status_code for rs in pages.values() for r in rs} == {200}
    assert len({bare(r.text) for rs in pages.values() for r in rs}) == 1
    assert smtp_inbox.messages == []  # the answers came back before any mail was delivered
    got = await smtp_inbox.arrive(4, timeout=15)
    assert sorted(m["To"] for m in got) == ["fresh@example.org", "fresh@example.org", "known@example.org",
                                           "waiting@example.org"]
    assert "déjà inscrit" in smtp_inbox.to("known@example.org")[0]["Subject"]
    await settle(web_app)


class Failing:
    """A mailer whose relay refuses everything."""

    def __init__(self) -> None:
        self.tried = 0

    async def send_message(self, message) -> None:
        self.tried += 1
        raise ConnectionRefusedError(f"relay said no to {message.to}")


async def test_refused_mail_is_logged_not_shown(web_client, web_app, web_engine, caplog):
    web_app.state.web.mailer = failing = Failing()
    r = await signup(web_client, "x@example.org")
    assert r.status_code == 200 and "Vérifiez votre boîte" in r.text
    await settle(web_app)
    assert failing.tried == 1 and "confirmation mail not sent: ConnectionRefusedError: relay said no to <recipient>" in caplog.text
    assert "x@example.org" not in caplog.text
    assert subs.by_email(web_engine, "x@example.org")["status"] == "pending"  # a new sign-up sends a fresh link


async def test_mail_jobs_bound_log_and_drain(caplog):
    jobs = MailJobs(concurrency=2, max_pending=3)
    started, release = [], asyncio.Event()

    async def stuck(n):
        started.append(n)
        await release.wait()

    async def broken():
        raise RuntimeError("template exploded")

    assert [jobs.spawn(lambda n=n: stuck(n)) for n in range(4)] == [True, True, True, False]
    assert jobs.dropped == 1 and "dropped: 3 mails already waiting" in caplog.text
    await asyncio.sleep(0.05)
    assert started == [0, 1]  # two SMTP connections at most; the third waits for a slot
    assert await jobs.drain(timeout=0.1) == 3 and jobs.pending == 0  # shutdown: cut after the timeout
    assert "cancelled before it was sent" in caplog.text
    assert jobs.spawn(broken) and await jobs.drain(1) == 0
    assert "confirmation mail failed: RuntimeError: template exploded" in caplog.text
    release.set()


@pytest.mark.parametrize("limit", [1, 3])
async def test_racing_signups_of_one_address_respect_its_limit(tmp_path, smtp_inbox, monkeypatch, limit):
    import threading

    import httpx

    from bot.store import open_db, ratelimit
    from bot.web import create_app
    from fixtures_web import make_web_config

    real_allow, lock, inside = ratelimit.allow, threading.Lock(), {"now": 0, "max": 0}

    def slow_allow(*args, **kwargs):
        # Widen the window and record how many run at once: the app runs them one at a time (and
        # ratelimit.take is atomic in the database besides).
        with lock:
            inside["now"] += 1
            inside["max"] = max(inside["max"], inside["now"])
        time.sleep(0.03)
        try:
            return real_allow(*args, **kwargs)
        finally:
            with lock:
                inside["now"] -= 1

    monkeypatch.setattr(ratelimit, "allow", slow_allow)
    cfg = make_web_config(tmp_path, smtp_inbox.port, signup_limit_per_address=limit)
    engine = open_db(cfg.database_url)
    app = create_app(cfg, engine)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as c:
        await c.get("/")  # one CSRF cookie for all of them
        # Concurrent requests: their background jobs check the per-address limit at the same moment.
        codes = await asyncio.gather(*(signup(c, "race@example.org") for _ in range(6)))
        # The per-IP limit (10 an hour) holds under the same race: 4 of these 6 pass, 2 get 429.
        more = await asyncio.gather(*(signup(c, "race@example.org") for _ in range(6)))
    assert [r.status_code for r in codes] == [200] * 6
    assert sorted(r.status_code for r in more) == [200] * 4 + [429] * 2
    await settle(app)
    assert len(smtp_inbox.to("race@example.org")) == limit
    assert inside["max"] == 1
    engine.dispose()
