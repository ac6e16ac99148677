"""WebSub (W3C PubSubHubbub) subscriber: subscribe, answer intent verification, take signed pushes."""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta

import httpx
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from sqlalchemy import Engine

from bot import logs
from bot.store import websub as store
from bot.store.db import utcnow

log = logging.getLogger("flashbot.ingest.websub")
ALGORITHMS = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "sha384": hashlib.sha384, "sha512": hashlib.sha512}
PushHandler = Callable[[int, bytes, dict], Awaitable[object]]


def callback_url(cfg, source_id: int) -> str:
    """Where the hub calls us back for one source."""
    return f"{cfg.bot.public_url}/websub/{source_id}"


def sign(secret: str, body: bytes, algorithm: str = "sha256") -> str:
    """The X-Hub-Signature value a hub sends: `sha256=<hex HMAC of the body>`."""
    return f"{algorithm}={hmac.new(secret.encode(), body, ALGORITHMS[algorithm]).hexdigest()}"


def verify_signature(secret: str | None, body: bytes, header: str | None) -> bool:
    """Whether X-Hub-Signature is a valid HMAC of the body with our per-subscription secret."""
    if not secret or not header or "=" not in header:
        return False
    algorithm, _, given = header.strip().partition("=")
    digest = ALGORITHMS.get(algorithm.lower())
    if digest is None:
        return False
    expected = hmac.new(secret.encode(), body, digest).hexdigest()
    return hmac.compare_digest(expected, given.strip().lower())


def renewal_margin(cfg) -> timedelta:
    """Renew this long before the lease ends: a tenth of it, between one minute and one hour."""
    return timedelta(seconds=min(3600, max(60, cfg.websub.lease_seconds // 10)))


async def subscribe(client: httpx.AsyncClient, engine: Engine, cfg, source: dict, mode: str = "subscribe") -> bool:
    """Ask the source's hub to (un)subscribe us with a fresh secret; True when the hub accepted it."""
    secret = secrets.token_hex(32)  # a new secret per request: an old leaked one dies with the lease
    now = utcnow()
    store.start(engine, source["id"], secret, "pending" if mode == "subscribe" else "unsubscribing", now)
    form = {"hub.mode": mode, "hub.topic": source["topic_url"], "hub.callback": callback_url(cfg, source["id"]),
            "hub.lease_seconds": str(cfg.websub.lease_seconds), "hub.secret": secret}
    try:
        resp = await client.post(source["hub_url"], data=form)
    except httpx.HTTPError as exc:
        store.failed(engine, source["id"], now, timedelta(minutes=5))
        logs.event(log, "websub_hub_unreachable", logging.WARNING, source=source["name"], error=str(exc) or type(exc).__name__)
        return False
    if resp.status_code not in (202, 204):
        store.failed(engine, source["id"], now, timedelta(minutes=30))
        logs.event(log, "websub_hub_refused", logging.WARNING, source=source["name"], status=resp.status_code,
                   error=resp.text[:200])
        return False
    logs.event(log, "websub_requested", source=source["name"], mode=mode, hub=source["hub_url"])
    return True


async def renew_due(client: httpx.AsyncClient, engine: Engine, cfg) -> int:
    """Subscribe sources with a new hub and renew leases about to end; returns requests sent."""
    if not cfg.websub.enabled:
        return 0
    todo = store.needing_subscription(engine, utcnow(), renewal_margin(cfg))
    results = await asyncio.gather(*(subscribe(client, engine, cfg, s) for s in todo))
    return sum(results)


@dataclass
class WebSubContext:
    """What the callback routes need: the database, the config, and the pipeline's push entry."""

    engine: Engine
    cfg: object
    on_push: PushHandler
    tasks: set = field(default_factory=set)


async def _verify_intent(ctx: WebSubContext, request: Request, source_id: int) -> Response:
    q = request.query_params
    mode, topic, challenge = q.get("hub.mode"), q.get("hub.topic"), q.get("hub.challenge")
    source = store.get_source(ctx.engine, source_id)
    if source is None or not topic or topic != source["topic_url"]:
        return PlainTextResponse("unknown subscription", status_code=404)
    if mode == "denied":
        store.denied(ctx.engine, source_id, q.get("hub.reason"))
        logs.event(log, "websub_denied", logging.WARNING, source=source["name"], reason=q.get("hub.reason"))
        return PlainTextResponse("ok")
    wanted = {"subscribe": ("pending", "active"), "unsubscribe": ("unsubscribing",)}.get(mode or "")
    if not wanted or source["websub_state"] not in wanted or not challenge:
        return PlainTextResponse("no such pending request", status_code=404)
    if mode == "subscribe":
        try:
            lease = int(q.get("hub.lease_seconds") or ctx.cfg.websub.lease_seconds)
        except ValueError:
            return PlainTextResponse("bad hub.lease_seconds", status_code=400)
        store.verified(ctx.engine, source_id, "active", utcnow() + timedelta(seconds=lease))
    else:
        store.verified(ctx.engine, source_id, "unsubscribed", None)
    logs.event(log, "websub_verified", source=source["name"], mode=mode)
    return PlainTextResponse(challenge)


async def _push(ctx: WebSubContext, request: Request, source_id: int) -> Response:
    source = store.get_source(ctx.engine, source_id)
    if source is None or not source["websub_secret"]:
        return PlainTextResponse("unknown subscription", status_code=404)
    limit = ctx.cfg.fetch.max_bytes
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return PlainTextResponse("too large", status_code=413)
    if not verify_signature(source["websub_secret"], bytes(body), request.headers.get("x-hub-signature")):
        # The spec says: acknowledge, but ignore the content as invalid.
        logs.event(log, "websub_bad_signature", logging.WARNING, source=source["name"], bytes=len(body))
        return PlainTextResponse("ignored", status_code=202)
    if source["paused"]:
        return PlainTextResponse("source paused", status_code=202)
    headers = {k.lower(): v for k, v in request.headers.items()}
    # Answer the hub at once; the feed goes through the pipeline in the background.
    task = asyncio.get_running_loop().create_task(ctx.on_push(source_id, bytes(body), headers))
    ctx.tasks.add(task)
    task.add_done_callback(ctx.tasks.discard)
    logs.event(log, "websub_push", source=source["name"], bytes=len(body))
    return PlainTextResponse("accepted", status_code=202)


def routes(ctx: WebSubContext) -> list[Route]:
    """Starlette routes for `/websub/{source_id}` (GET: intent verification, POST: content push)."""
    async def endpoint(request: Request) -> Response:
        source_id = request.path_params["source_id"]
        if request.method == "GET":
            return await _verify_intent(ctx, request, source_id)
        return await _push(ctx, request, source_id)

    return [Route("/websub/{source_id:int}", endpoint, methods=["GET", "POST"])]
