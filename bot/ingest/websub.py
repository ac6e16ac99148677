"""WebSub (W3C PubSubHubbub) subscriber, hub side: subscribe, renew leases, check push signatures
(the callback routes are bot.web.websub)."""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
from datetime import timedelta

import httpx
from sqlalchemy import Engine

from bot import logs
from bot.store import websub as store
from bot.store.db import utcnow

log = logging.getLogger(__name__)
ALGORITHMS = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "sha384": hashlib.sha384, "sha512": hashlib.sha512}


def callback_url(cfg, source_id: int, callback: str) -> str:
    """Where the hub calls us back for one source: the id, then the subscription's secret path segment."""
    return f"{cfg.bot.public_url}/websub/{source_id}/{callback}"


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
    # The callback URL stays the same across renewals (the hub identifies a subscription by it);
    # a new hub or topic gets a new one (store.note_hub).
    callback = source.get("websub_callback") or store.new_callback()
    now = utcnow()
    store.start(engine, source["id"], secret, "pending" if mode == "subscribe" else "unsubscribing", now, callback)
    form = {"hub.mode": mode, "hub.topic": source["topic_url"], "hub.callback": callback_url(cfg, source["id"], callback),
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
