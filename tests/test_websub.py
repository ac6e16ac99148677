"""WebSub against the bundled W3C hub: subscribe, intent verification, signed pushes, renewal."""
from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
import pytest
from starlette.applications import Starlette

from bot.ingest import websub
from bot.web import websub as websub_routes
from bot.store import websub as wstore
from bot.store.db import utcnow
from bot.demo.hub import Hub
from fixtures_service import ServedApp, add_source

TOPIC = "http://127.0.0.1:9/feed.xml"  # only compared, never fetched


@pytest.mark.parametrize("header, ok", [
    (websub.sign("s3cret-key", b"body", "sha1"), True),
    (websub.sign("s3cret-key", b"body", "sha256"), True),
    (websub.sign("s3cret-key", b"body", "sha384"), True),
    (websub.sign("s3cret-key", b"body", "sha512"), True),
    (websub.sign("s3cret-key", b"body", "sha256").upper().replace("SHA256", "sha256"), True),
    (websub.sign("other-key", b"body", "sha256"), False),
    (websub.sign("s3cret-key", b"body!", "sha256"), False),
    ("md5=" + "0" * 32, False),
    ("sha256", False),
    ("", False),
    (None, False),
])
def test_verify_signature(header, ok):
    assert websub.verify_signature("s3cret-key", b"body", header) is ok


class Pushes:
    def __init__(self):
        self.got: list[tuple[int, bytes]] = []
        self.event = asyncio.Event()

    async def __call__(self, source_id, body, headers):
        self.got.append((source_id, body))
        self.event.set()


@pytest.fixture
async def served(svc_engine, svc_config, tmp_path):
    """A Starlette app with the WebSub routes on a real port, a hub, and a config pointing at both."""
    pushes = Pushes()
    ctx = websub_routes.WebSubContext(svc_engine, None, pushes)
    app = Starlette(routes=websub_routes.routes(ctx))
    with Hub() as hub:
        async with ServedApp(app) as srv:
            ctx.cfg = svc_config(bot={"public_url": srv.url}, websub={"lease_seconds": 600})
            yield ctx, hub, srv, pushes


async def _subscribed(ctx, hub, sid):
    async with httpx.AsyncClient() as client:
        assert await websub.renew_due(client, ctx.engine, ctx.cfg) == 1
    await asyncio.to_thread(hub.wait_subscribed, TOPIC)
    for _ in range(100):
        if wstore.get_source(ctx.engine, sid)["websub_state"] == "active":
            return
        await asyncio.sleep(0.01)
    raise AssertionError("never active")


@pytest.mark.parametrize("algorithm", ["sha1", "sha256", "sha384", "sha512"])
async def test_subscribe_verify_and_signed_push(served, algorithm):
    ctx, hub, srv, pushes = served
    sid = add_source(ctx.engine, "s")
    assert wstore.note_hub(ctx.engine, sid, hub.url, TOPIC)
    assert not wstore.note_hub(ctx.engine, sid, hub.url, TOPIC)  # unchanged: no new subscription
    before = utcnow()
    await _subscribed(ctx, hub, sid)
    row = wstore.get_source(ctx.engine, sid)
    lease = timedelta(seconds=600)  # websub.lease_seconds, granted by the hub and counted from verification
    assert before + lease <= row["websub_lease_until"] <= utcnow() + lease
    assert len(row["websub_callback"]) >= 32  # the secret segment of the callback URL
    sub = hub.subscriptions[(f"{srv.url}/websub/{sid}/{row['websub_callback']}", TOPIC)]
    assert sub.secret == row["websub_secret"] and len(sub.secret) == 64
    hub.algorithm = algorithm
    [d] = await asyncio.to_thread(hub.publish, TOPIC, b"<feed/>")
    assert d.status == 202
    await asyncio.wait_for(pushes.event.wait(), 2)
    assert pushes.got == [(sid, b"<feed/>")]


async def test_forged_push_is_ignored(served):
    ctx, hub, srv, pushes = served
    sid = add_source(ctx.engine, "s")
    wstore.note_hub(ctx.engine, sid, hub.url, TOPIC)
    await _subscribed(ctx, hub, sid)
    hub.tamper = True
    [d] = await asyncio.to_thread(hub.publish, TOPIC, b"<feed/>")
    callback = wstore.get_source(ctx.engine, sid)["websub_callback"]
    async with httpx.AsyncClient() as client:
        unsigned = await client.post(f"{srv.url}/websub/{sid}/{callback}", content=b"<feed/>")
        unknown = await client.post(f"{srv.url}/websub/999/{callback}", content=b"<feed/>")
        guessed = await client.post(f"{srv.url}/websub/{sid}/{'x' * len(callback)}", content=b"<feed/>")
    await asyncio.sleep(0.1)
    assert d.status == 202 and unsigned.status_code == 202 and unknown.status_code == guessed.status_code == 404
    assert pushes.got == []


@pytest.mark.parametrize("params, status", [
    ({"hub.mode": "subscribe", "hub.topic": "http://other/", "hub.challenge": "c"}, 404),
    ({"hub.mode": "unsubscribe", "hub.topic": TOPIC, "hub.challenge": "c"}, 404),
    ({"hub.mode": "subscribe", "hub.topic": TOPIC}, 404),
    ({"hub.mode": "subscribe", "hub.topic": TOPIC, "hub.challenge": "c", "hub.lease_seconds": "x"}, 404),
    ({"hub.mode": "subscribe", "hub.topic": TOPIC, "hub.challenge": "abc", "hub.lease_seconds": "60"}, 200),
])
async def test_intent_verification_only_for_our_request(served, params, status):
    ctx, hub, srv, _ = served
    sid = add_source(ctx.engine, "s")
    wstore.note_hub(ctx.engine, sid, hub.url, TOPIC)
    wstore.start(ctx.engine, sid, "secret-value", "pending", utcnow(), "cb-secret-segment")
    async with httpx.AsyncClient() as client:
        resp = await client.get(f"{srv.url}/websub/{sid}/cb-secret-segment", params=params)
    assert resp.status_code == status
    if status == 200:
        assert resp.text == "abc" and wstore.get_source(ctx.engine, sid)["websub_state"] == "active"


async def test_denied_and_renewal(served):
    ctx, hub, srv, _ = served
    sid = add_source(ctx.engine, "s")
    wstore.note_hub(ctx.engine, sid, hub.url, TOPIC)
    hub.deny = True
    async with httpx.AsyncClient() as client:
        await websub.renew_due(client, ctx.engine, ctx.cfg)
        for _ in range(200):
            if wstore.get_source(ctx.engine, sid)["websub_state"] == "denied":
                break
            await asyncio.sleep(0.01)
        assert wstore.get_source(ctx.engine, sid)["websub_state"] == "denied"
        assert await websub.renew_due(client, ctx.engine, ctx.cfg) == 0  # denied: no retry loop
        hub.deny = False
        wstore.note_hub(ctx.engine, sid, hub.url + "v2", TOPIC)  # a new hub: subscribe again
        hub_requests = len(hub.requests)
        assert await websub.renew_due(client, ctx.engine, ctx.cfg) == 1
        await asyncio.to_thread(hub.wait_subscribed, TOPIC)
        # Lease about to end (inside the renewal margin): renewed with a fresh secret.
        old_secret = wstore.get_source(ctx.engine, sid)["websub_secret"]
        wstore.verified(ctx.engine, sid, "active", utcnow() + timedelta(seconds=30))
        assert await websub.renew_due(client, ctx.engine, ctx.cfg) == 1
        assert wstore.get_source(ctx.engine, sid)["websub_secret"] != old_secret
        assert len(hub.requests) == hub_requests + 2


async def test_pending_request_not_resent_until_it_times_out(served):
    ctx, hub, srv, _ = served
    sid = add_source(ctx.engine, "s")
    wstore.note_hub(ctx.engine, sid, "http://127.0.0.1:9/hub", TOPIC)  # nobody listens: request fails
    async with httpx.AsyncClient() as client:
        assert await websub.renew_due(client, ctx.engine, ctx.cfg) == 0
        assert wstore.get_source(ctx.engine, sid)["websub_state"] == "error"
        assert await websub.renew_due(client, ctx.engine, ctx.cfg) == 0
        wstore.note_hub(ctx.engine, sid, hub.url, TOPIC)
        hub.deny = False
        assert await websub.renew_due(client, ctx.engine, ctx.cfg) == 1
        n = len(hub.requests)
        wstore.start(ctx.engine, sid, "x" * 64, "pending", utcnow(), "cb")  # still waiting for verification
        assert await websub.renew_due(client, ctx.engine, ctx.cfg) == 0 and len(hub.requests) == n
