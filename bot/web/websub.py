"""The WebSub callback routes: intent verification (GET) and signed content pushes (POST) at /websub/{id}."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import Engine
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from bot import logs
from bot.ingest.websub import verify_signature
from bot.store import websub as store
from bot.store.db import utcnow

log = logging.getLogger(__name__)
PushHandler = Callable[[int, bytes, dict], Awaitable[object]]


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
