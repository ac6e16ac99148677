"""Issue #13, findings 1-4 replayed against the real app (ASGI, and uvicorn as `flashbot run` serves it):
forged WebSub verification, /metrics enumeration, unbounded bodies, spoofed X-Forwarded-For.

Each test is the attack as it was probed on a running service; on the code before the fix it
succeeds (the test fails), now it is refused. Counts go to TESTING.md's figures.
"""
from __future__ import annotations

import asyncio
import re
import socket
from datetime import timedelta

import httpx
import pytest
from fixtures_service import ServedApp, add_source
from fixtures_web import METRICS_AUTH, client_for, csrf_of, make_web_config, settle

from bot.store import open_db, utcnow
from bot.store import subscribers as subs
from bot.store import websub as wstore
from bot.web import create_app
from bot.web.websub import WebSubContext

TOPIC = "https://news.example.org/feed.xml"  # the feed's public rel=self URL: anyone knows it
TEN_YEARS = "315360000"


@pytest.fixture
def world(tmp_path, smtp_inbox):
    """The app with its WebSub routes (as `flashbot run` builds it), one source subscribed to a hub."""
    cfg = make_web_config(tmp_path, smtp_inbox.port, signup_limit_per_ip=100)
    cfg.fetch.max_bytes = 1 << 20
    engine = open_db(cfg.database_url)
    sid = add_source(engine, "s")
    wstore.note_hub(engine, sid, "http://127.0.0.1:9/hub", TOPIC)
    pushes: list = []

    async def on_push(source_id, body, headers):
        pushes.append((source_id, body))

    app = create_app(cfg, engine, websub=WebSubContext(engine, cfg, on_push))
    yield {"cfg": cfg, "engine": engine, "sid": sid, "app": app, "pushes": pushes,
           "callback": wstore.get_source(engine, sid)["websub_callback"]}
    engine.dispose()


def _state(world, state: str) -> dict:
    """Put the subscription in `state` (active: a lease of one day, as the hub granted it)."""
    engine, sid = world["engine"], world["sid"]
    wstore.start(engine, sid, "s3cret" * 8, "pending", utcnow(), world["callback"])
    if state == "active":
        wstore.verified(engine, sid, "active", utcnow() + timedelta(days=1))
    elif state == "unsubscribing":
        wstore.start(engine, sid, "s3cret" * 8, "unsubscribing", utcnow(), world["callback"])
    return wstore.get_source(engine, sid)


def _sub(challenge="c", lease=TEN_YEARS, topic=TOPIC):
    return {"hub.mode": "subscribe", "hub.topic": topic, "hub.challenge": challenge, "hub.lease_seconds": lease}


DENY = {"hub.mode": "denied", "hub.topic": TOPIC, "hub.reason": "<b>stop</b> forever"}
# (state before, path kind, query): every one of these must change nothing and answer the same 404.
FORGERIES = [
    ("active", "old", _sub()),  # the probe of the issue: the guessable /websub/{id}
    ("active", "right", _sub()),  # even knowing the URL: no request of ours is waiting
    ("active", "wrong", _sub()),
    ("pending", "wrong", _sub()),
    ("pending", "right", _sub(topic="https://news.example.org/other.xml")),
    ("pending", "right", _sub(lease="99999999999999")),  # was a 500 (OverflowError)
    ("pending", "right", _sub(lease="-5")),
    ("pending", "right", _sub(lease="1e9")),
    ("pending", "right", _sub(lease="0")),
    ("pending", "right", _sub(challenge="c" * 10_000)),
    ("pending", "right", {"hub.mode": "unsubscribe", "hub.topic": TOPIC, "hub.challenge": "c"}),
    ("active", "old", DENY),
    ("active", "wrong", DENY),
    ("unsubscribing", "right", DENY),  # leaving: a denial makes no sense
    ("pending", "long-id", _sub()),  # 23 digits: was a 500
]


def _path(world, kind: str) -> str:
    sid, cb = world["sid"], world["callback"]
    return {"old": f"/websub/{sid}", "right": f"/websub/{sid}/{cb}", "wrong": f"/websub/{sid}/{'A' * len(cb)}",
            "long-id": f"/websub/{'9' * 23}/{cb}"}[kind]


async def test_forged_websub_verifications_change_nothing(world, figures):
    answers, passed = set(), 0
    async with client_for(world["app"]) as c:
        for state, kind, query in FORGERIES:
            before = _state(world, state)
            r = await c.get(_path(world, kind), params=query)
            after = wstore.get_source(world["engine"], world["sid"])
            keep = ("websub_state", "websub_lease_until", "last_error")
            ok = r.status_code == 404 and all(before[k] == after[k] for k in keep)
            ok = ok and r.headers.get("x-content-type-options") == "nosniff"  # the security headers too
            if kind in ("right", "wrong"):
                answers.add((r.status_code, r.text))
            passed += ok
            assert ok, (state, kind, query.get("hub.mode"), r.status_code, r.text[:80])
    # One answer for every refusal: nothing tells an attacker which part of a guess was right.
    assert answers == {(404, "not found")}
    figures.add("web: 1 forged WebSub verification / denial", tried=len(FORGERIES), passed=passed)


async def test_the_hub_we_asked_is_still_believed_and_bounded(world, figures):
    async with client_for(world["app"]) as c:
        _state(world, "pending")
        r = await c.get(_path(world, "right"), params=_sub(challenge="xyz", lease=TEN_YEARS))
        row = wstore.get_source(world["engine"], world["sid"])
        assert r.text == "xyz" and row["websub_state"] == "active"
        # A ten-year lease from the hub is recorded as at most what we asked for: renewal happens.
        assert row["websub_lease_until"] <= utcnow() + timedelta(seconds=world["cfg"].websub.lease_seconds)
        _state(world, "pending")
        r = await c.get(_path(world, "right"), params={**DENY, "hub.reason": "\x1b[31mno\r\nway" + "!" * 900})
        row = wstore.get_source(world["engine"], world["sid"])
        assert r.status_code == 200 and row["websub_state"] == "denied"
        assert "\x1b" not in row["last_error"] and "\n" not in row["last_error"] and len(row["last_error"]) < 240
    figures.add("web: 1 forged WebSub verification / denial", tried=1, passed=1)


async def test_real_hub_through_the_served_app(world, figures):
    from bot.demo.hub import Hub
    from bot.ingest import websub

    with Hub() as hub:
        async with ServedApp(world["app"]) as srv:
            world["cfg"].bot.public_url = srv.url
            wstore.note_hub(world["engine"], world["sid"], hub.url, TOPIC)
            async with httpx.AsyncClient() as client:
                assert await websub.renew_due(client, world["engine"], world["cfg"]) == 1
            [sub] = await asyncio.to_thread(hub.wait_subscribed, TOPIC)
            callback = wstore.get_source(world["engine"], world["sid"])["websub_callback"]
            assert sub.callback == f"{srv.url}/websub/{world['sid']}/{callback}"
            [d] = await asyncio.to_thread(hub.publish, TOPIC, b"<feed/>")
            await asyncio.sleep(0.1)
    assert d.status == 202 and world["pushes"] == [(world["sid"], b"<feed/>")]
    figures.add("web: 1 forged WebSub verification / denial", tried=1, passed=1)


async def _signup(c, email):
    page = await c.get("/")
    return await c.post("/subscribe", data={"csrf": csrf_of(page.text), "email": email, "mode": "both",
                                            "language": "fr"})


async def test_metrics_and_public_pages_do_not_tell_who_signed_up(world, figures):
    subs.add(world["engine"], ["known@example.org"])
    pages = ["/", "/healthz", "/metrics", "/admin/login"]
    strip = lambda t: re.sub(r'value="[^"]*"', "", t)  # noqa: E731 - CSRF fields differ per page
    async with client_for(world["app"]) as c:
        before = [strip((await c.get(p)).text) for p in pages]
        await _signup(c, "known@example.org")
        after_known = [strip((await c.get(p)).text) for p in pages]
        await _signup(c, "unknown@example.org")
        after_new = [strip((await c.get(p)).text) for p in pages]
        no_token, wrong = await c.get("/metrics"), await c.get("/metrics", headers={"authorization": "Bearer nope"})
        scrape = await c.get("/metrics", headers=METRICS_AUTH)
    await settle(world["app"])
    assert before == after_known == after_new  # no unauthenticated page moves with a sign-up
    assert no_token.status_code == wrong.status_code == 401 and "flashbot_" not in no_token.text + wrong.text
    assert scrape.status_code == 200 and 'flashbot_subscribers{status="pending"} 1.0' in scrape.text
    figures.add("web: 2 /metrics enumeration", tried=len(pages) + 2, passed=len(pages) + 2)


async def test_metrics_are_off_without_a_token(tmp_path, figures):
    cfg = make_web_config(tmp_path, None, metrics_token=None)
    engine = open_db(cfg.database_url)
    async with client_for(create_app(cfg, engine)) as c:
        r = await c.get("/metrics")
    engine.dispose()
    assert r.status_code == 404 and "flashbot_" not in r.text
    figures.add("web: 2 /metrics enumeration", tried=1, passed=1)


class Body:
    """A request body streamed in 1 MiB chunks up to `total` bytes; counts what the server pulled."""

    CHUNK = b"x" * (1 << 20)

    def __init__(self, total: int) -> None:
        self.total, self.pulled = total, 0

    async def __aiter__(self):
        while self.pulled < self.total:
            self.pulled += len(self.CHUNK)
            yield self.CHUNK


async def test_every_body_is_capped_while_it_streams(world, figures):
    from bot import tokens

    key = world["cfg"].web.secret_key
    _state(world, "active")  # a push is read only for a live subscription
    row, _ = subs.signup(world["engine"], "p@example.org", "both", "fr", [])
    subs.add(world["engine"], ["a@example.org"])
    active = subs.by_email(world["engine"], "a@example.org")
    confirm = tokens.make_token(key, tokens.CONFIRM, row["id"], row["token_nonce"])
    prefs = tokens.make_token(key, tokens.PREFERENCES, active["id"], active["token_nonce"])
    # Valid links, so each handler gets as far as reading the body.
    posts = ["/unsubscribe/x", "/subscribe", f"/confirm/{confirm}", "/admin/login", f"/preferences/{prefs}",
             f"/preferences/{prefs}/delete", f"/websub/{world['sid']}/{world['callback']}", "/no/such/route"]
    bodies = {}
    async with client_for(world["app"]) as c:
        async def attack(path):
            body = Body(32 << 20)
            bodies[path] = body
            return await c.post(path, content=body, headers={"content-type": "text/plain"})
        # Four at a time, like the probe: none is read past its cap.
        answers = []
        for i in range(0, len(posts), 4):
            answers += await asyncio.gather(*(attack(p) for p in posts[i:i + 4]))
        declared = await c.post("/subscribe", content=b"x" * 10,
                                headers={"content-type": "text/plain", "content-length": str(256 << 20)})
    results = []
    for path, r in zip(posts, answers):
        cap = world["cfg"].fetch.max_bytes if path.startswith("/websub/") else 64 * 1024
        read_at_most = bodies[path].pulled <= cap + 2 * len(Body.CHUNK)
        results.append(r.status_code in (413, 404, 405) and read_at_most)
        assert read_at_most, (path, bodies[path].pulled)
        assert r.status_code == 413 or path == "/no/such/route", (path, r.status_code)
    assert declared.status_code == 413
    figures.add("web: 3 unbounded request bodies", tried=len(posts) + 1, passed=sum(results) + 1)


async def test_declared_huge_body_refused_by_the_real_server(world, figures):
    from bot.service.daemon import web_server

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = web_server(world["app"])
    task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        reader, writer = await asyncio.open_connection(*sock.getsockname())
        writer.write(b"POST /unsubscribe/x HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\n"
                     b"Content-Length: 268435456\r\n\r\n" + b"x" * 65536)
        await writer.drain()
        status = await asyncio.wait_for(reader.readline(), 10)
        writer.close()
    finally:
        server.should_exit = True
        await task
        sock.close()
    assert status.startswith(b"HTTP/1.1 413")
    figures.add("web: 3 unbounded request bodies", tried=1, passed=1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _login(c, password, headers=None):
    page = await c.get("/admin/login")
    return await c.post("/admin/login", data={"csrf": csrf_of(page.text), "password": password}, headers=headers)


async def test_spoofed_forwarded_for_from_loopback_is_not_believed(tmp_path, smtp_inbox, figures):
    """`flashbot run` itself (uvicorn as the service configures it), probed from 127.0.0.1."""
    from bot.service.daemon import Service
    from fixtures_web import ADMIN_PASSWORD

    port = _free_port()
    cfg = make_web_config(tmp_path, smtp_inbox.port, port=port, signup_limit_per_ip=5)
    cfg.bot.public_url = f"http://127.0.0.1:{port}"
    engine = open_db(cfg.database_url)
    service = Service(cfg, engine)
    await service.start()
    delays: list[float] = []

    async def no_wait(seconds):
        delays.append(seconds)

    service._server.config.app.state.pages.state.web.sleep = no_wait
    try:
        async with httpx.AsyncClient(base_url=cfg.bot.public_url, timeout=30) as c:
            signups = [await c.post("/subscribe", headers={"x-forwarded-for": f"203.0.113.{i}"},
                                    data={"csrf": csrf_of((await c.get("/")).text), "email": f"v{i}@example.org",
                                          "mode": "both", "language": "fr"}) for i in range(15)]
            # The admin works from 127.0.0.2; the attacker claims to be it.
            logins = [await _login(c, "guess", {"x-forwarded-for": "127.0.0.2"}) for _ in range(12)]
        async with httpx.AsyncClient(base_url=cfg.bot.public_url, timeout=30,
                                     transport=httpx.AsyncHTTPTransport(local_address="127.0.0.2")) as admin:
            mine = await _login(admin, ADMIN_PASSWORD)
    finally:
        await service.shutdown()
        engine.dispose()
    codes = [r.status_code for r in signups]
    assert codes == [200] * 5 + [429] * 10  # 15 rotating spoofed addresses: one client, one limit
    assert [r.status_code for r in logins] == [401] * 10 + [429] * 2  # rotating or not: limited
    assert mine.status_code == 303  # spoofing the admin's address locked nobody out
    figures.add("web: 4 X-Forwarded-For trusted from loopback", tried=3, passed=3)


@pytest.mark.parametrize("case", ["behind-proxy", "untrusted-peer", "ipv6-64"])
async def test_client_address_through_trusted_proxies_only(tmp_path, smtp_inbox, figures, case):
    cfg = make_web_config(tmp_path, smtp_inbox.port, signup_limit_per_ip=3, trusted_proxies=["10.0.0.1", "fd00::/8"])
    engine = open_db(cfg.database_url)
    app = create_app(cfg, engine)

    async def signups(peer, forwarded, n):
        async with client_for(app, peer) as c:
            out = []
            for i in range(n):
                page = await c.get("/")
                headers = {"x-forwarded-for": forwarded(i)} if forwarded else {}
                r = await c.post("/subscribe", headers=headers, data={"csrf": csrf_of(page.text), "mode": "both",
                                                                     "email": f"{case}{i}@example.org", "language": "fr"})
                out.append(r.status_code)
            return out

    if case == "behind-proxy":
        # Clients rotate what they write; the proxy appends the real address, which is what counts.
        alice = await signups("10.0.0.1", lambda i: f"6.6.6.{i}, 198.51.100.1", 5)
        bob = await signups("10.0.0.1", lambda i: "198.51.100.2", 3)  # another visitor: its own bucket
        ok = alice == [200] * 3 + [429] * 2 and bob == [200] * 3
    elif case == "untrusted-peer":
        codes = await signups("192.0.2.5", lambda i: f"10.0.0.1, 198.51.100.{i}", 5)
        ok = codes == [200] * 3 + [429] * 2
    else:
        # One IPv6 subscriber line is a /64: rotating the low bits is one client.
        first = await signups("2001:db8:1:2::1", None, 2)
        rotated = await signups("2001:db8:1:2:ffff::9", None, 2)
        other = await signups("2001:db8:1:3::1", None, 1)
        ok = first == [200, 200] and rotated == [200, 429] and other == [200]
    await settle(app)
    engine.dispose()
    figures.add("web: 4 X-Forwarded-For trusted from loopback", tried=1, passed=int(ok))
    assert ok
