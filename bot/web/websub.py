"""The WebSub callback routes at /websub/{id}/{callback}: intent verification (GET), signed pushes (POST).

`callback` is a random segment only the hub we subscribed to learns; a verification must match
the request we are waiting for, and every number from the hub is bounded.
"""
from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from bot import logs
from bot.ingest.websub import verify_signature
from bot.store import websub as store
from bot.store.db import utcnow
from bot.web import limits  # noqa: F401 - registers the {…:rowid} route convertor

log = logging.getLogger(__name__)
PushHandler = Callable[[int, bytes, dict], Awaitable[object]]


@dataclass
class WebSubContext:
    """What the callback routes need: the database, the config, and the pipeline's push entry."""

    engine: Engine
    cfg: object
    on_push: PushHandler
    tasks: set = field(default_factory=set)


NOT_FOUND = "not found"  # one answer for every refusal: nothing tells which part of a guess was right
MAX_CHALLENGE = 255
MAX_REASON = 200
MAX_LEASE_DIGITS = 10


def _refuse() -> Response:
    return PlainTextResponse(NOT_FOUND, status_code=404)


async def _source(ctx: WebSubContext, source_id: int, callback: str) -> dict | None:
    """The source when the callback's secret segment is the one we gave its hub, else None."""
    source = await run_in_threadpool(store.get_source, ctx.engine, source_id)
    if source is None or not source["websub_callback"]:
        return None
    return source if hmac.compare_digest(source["websub_callback"].encode(), callback.encode()) else None


def lease_seconds(raw: str | None, asked: int) -> int | None:
    """The hub's hub.lease_seconds, bounded: at most what we asked for; None when it is not a count of seconds."""
    if not raw:
        return asked
    if not raw.isascii() or not raw.isdigit() or len(raw) > MAX_LEASE_DIGITS or int(raw) < 1:
        return None
    return min(int(raw), asked)


def _reason(raw: str | None) -> str:
    text = "".join(ch if ch.isprintable() else " " for ch in (raw or "")[:MAX_REASON * 2])
    return " ".join(text.split())[:MAX_REASON] or "no reason"


async def _verify_intent(ctx: WebSubContext, request: Request, source: dict) -> Response:
    q = request.query_params
    mode, topic, challenge = q.get("hub.mode"), q.get("hub.topic"), q.get("hub.challenge")
    if not topic or topic != source["topic_url"]:
        return _refuse()
    sid = source["id"]
    if mode == "denied":
        # The hub refusing a request we made, or revoking the subscription it granted; never a
        # subscription we are leaving or never asked for.
        reason = _reason(q.get("hub.reason"))
        if not await run_in_threadpool(store.denied, ctx.engine, sid, reason):
            return _refuse()
        logs.event(log, "websub_denied", logging.WARNING, source=source["name"], reason=reason)
        return PlainTextResponse("ok")
    # Only a verification of the request we sent and are waiting for: an active subscription's
    # lease cannot be moved by a verification nobody asked for.
    expected = {"subscribe": "pending", "unsubscribe": "unsubscribing"}.get(mode or "")
    if expected is None or source["websub_state"] != expected or not challenge or len(challenge) > MAX_CHALLENGE:
        return _refuse()
    if mode == "subscribe":
        lease = lease_seconds(q.get("hub.lease_seconds"), ctx.cfg.websub.lease_seconds)
        if lease is None:
            return _refuse()
        done = await run_in_threadpool(store.verified, ctx.engine, sid, "active",
                                       utcnow() + timedelta(seconds=lease), expected)
    else:
        done = await run_in_threadpool(store.verified, ctx.engine, sid, "unsubscribed", None, expected)
    if not done:
        return _refuse()
    logs.event(log, "websub_verified", source=source["name"], mode=mode)
    return PlainTextResponse(challenge)


async def _push(ctx: WebSubContext, request: Request, source: dict) -> Response:
    if not source["websub_secret"]:
        return _refuse()
    body = await request.body()  # capped while streaming at [fetch] max_bytes (bot.web.limits)
    if not verify_signature(source["websub_secret"], body, request.headers.get("x-hub-signature")):
        # The spec says: acknowledge, but ignore the content as invalid.
        logs.event(log, "websub_bad_signature", logging.WARNING, source=source["name"], bytes=len(body))
        return PlainTextResponse("ignored", status_code=202)
    if source["paused"]:
        return PlainTextResponse("source paused", status_code=202)
    headers = {k.lower(): v for k, v in request.headers.items()}
    # Answer the hub at once; the feed goes through the pipeline in the background.
    task = asyncio.get_running_loop().create_task(ctx.on_push(source["id"], body, headers))
    ctx.tasks.add(task)
    task.add_done_callback(ctx.tasks.discard)
    logs.event(log, "websub_push", source=source["name"], bytes=len(body))
    return PlainTextResponse("accepted", status_code=202)


def routes(ctx: WebSubContext) -> list[Route]:
    """Starlette routes for `/websub/{source_id}/{callback}` (GET: intent verification, POST: content push)."""
    async def endpoint(request: Request) -> Response:
        source = await _source(ctx, request.path_params["source_id"], request.path_params["callback"])
        if source is None:
            return _refuse()
        if request.method == "GET":
            return await _verify_intent(ctx, request, source)
        return await _push(ctx, request, source)

    return [Route("/websub/{source_id:rowid}/{callback:str}", endpoint, methods=["GET", "POST"])]
