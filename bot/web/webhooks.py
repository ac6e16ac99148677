"""Provider webhooks for bounces and complaints: POST /webhooks/{ses,mailgun,postmark,sendgrid}.

Each request is verified before its events are read (bot.bounces.signatures): a bad signature is
403 and changes nothing. Verified events are stored (bot.store.bounces) and answered 200 at once;
the one processor (bot.bounces.process) handles them right after, as it does SMTP and IMAP bounces.
A route exists only when its provider is configured in `[bounces]`.
"""
from __future__ import annotations

import asyncio
import json
import logging
from typing import TYPE_CHECKING

import httpx
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from bot import logs
from bot.bounces import providers, signatures
from bot.bounces.process import Processor
from bot.store import bounces as inbox

if TYPE_CHECKING:
    from bot.web.context import Web

log = logging.getLogger(__name__)
MAX_BODY = 4 * 1024 * 1024


def https_get(url: str) -> bytes:
    """GET an SNS URL (certificate or subscription confirmation), size-capped, TLS verified."""
    with httpx.stream("GET", url, timeout=10, follow_redirects=False) as r:
        r.raise_for_status()
        data = b""
        for chunk in r.iter_bytes():
            data += chunk
            if len(data) > signatures.MAX_CERT_BYTES:
                raise signatures.BadSignature("SNS answer too large")
        return data


class Webhooks:
    """The webhook endpoints of one app: verifiers, storage, and processing right after storing."""

    def __init__(self, w: Web):
        self.w = w
        self.cfg = w.cfg.bounces
        self.sns = signatures.SNSVerifier(self.cfg.ses_topic_arns if self.cfg else [], https_get)
        self.processor: Processor | None = None
        self.tasks: set[asyncio.Task] = set()

    def routes(self) -> list[Route]:
        """Routes of the configured providers only."""
        c = self.cfg
        if c is None:
            return []
        wanted = {"ses": bool(c.ses_topic_arns), "mailgun": bool(c.mailgun_signing_key),
                  "postmark": bool(c.postmark_username), "sendgrid": bool(c.sendgrid_public_key)}
        return [Route(f"/webhooks/{name}", self._endpoint(name), methods=["POST"]) for name, on in wanted.items() if on]

    def _endpoint(self, source: str):
        async def endpoint(request: Request) -> Response:
            return await self.handle(source, request)
        endpoint.__name__ = f"webhook_{source}"
        return endpoint

    async def handle(self, source: str, request: Request) -> Response:
        """Read (capped), verify, store, answer; process in the background."""
        if source == "postmark":  # the credentials come before the body is even read
            try:
                signatures.basic_auth(request.headers.get("authorization"), self.cfg.postmark_username, self.cfg.postmark_password)
            except signatures.BadSignature as exc:
                return self._refuse(source, exc)
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY:
                return PlainTextResponse("too large", status_code=413)
        body = bytes(body)
        try:
            await self._verify(source, request, body)
        except signatures.BadSignature as exc:
            return self._refuse(source, exc)
        if source == "ses":
            answered = await self._sns_control(body)
            if answered is not None:
                return answered
        try:
            found = providers.events(source, body)
        except providers.BadEvent as exc:
            return PlainTextResponse(f"bad request: {exc}", status_code=400)
        rows = [{"source": source, "raw": raw, "event_id": eid} for eid, raw in found]
        try:
            stored = await self.w.db(inbox.store, self.w.engine, rows) if rows else []
        except Exception:  # noqa: BLE001 - 500: the provider retries later, nothing is lost
            log.exception("could not store %s webhook events", source)
            return PlainTextResponse("cannot store now", status_code=500)
        new = [i for i, fresh in stored if fresh]
        logs.event(log, "bounce_webhook", source=source, events=len(rows), new=len(new))
        if new:
            self._process(new)
        return PlainTextResponse(f"stored {len(new)} of {len(rows)}")

    async def _verify(self, source: str, request: Request, body: bytes) -> None:
        c = self.cfg
        if source == "sendgrid":
            h = request.headers
            signatures.sendgrid(c.sendgrid_public_key, h.get("x-twilio-email-event-webhook-signature"),
                                h.get("x-twilio-email-event-webhook-timestamp"), body)
        elif source in ("ses", "mailgun"):
            try:
                data = json.loads(body)
            except (ValueError, UnicodeDecodeError):
                raise signatures.BadSignature("not JSON") from None
            if source == "mailgun":
                signatures.mailgun(c.mailgun_signing_key, data)
            elif isinstance(data, dict):
                await self.w.db(self.sns.verify, data)  # may fetch the certificate (blocking)
            else:
                raise signatures.BadSignature("not an SNS message")

    async def _sns_control(self, body: bytes) -> Response | None:
        """SNS subscription handshakes (already verified): confirm by visiting SubscribeURL (SNS hosts only)."""
        msg = json.loads(body)
        if msg.get("Type") == "SubscriptionConfirmation":
            url = str(msg.get("SubscribeURL") or "")
            if not signatures.sns_host_ok(url):
                return self._refuse("ses", signatures.BadSignature("SubscribeURL is not an SNS host"))
            try:
                await self.w.db(self.sns.fetch, url)
            except Exception as exc:  # noqa: BLE001 - SNS sends the confirmation again
                logs.event(log, "sns_subscribe_failed", logging.WARNING, topic=msg.get("TopicArn"), error=repr(exc))
                return PlainTextResponse("cannot confirm now", status_code=502)
            logs.event(log, "sns_subscribed", topic=msg.get("TopicArn"))
            return PlainTextResponse("subscribed")
        if msg.get("Type") == "UnsubscribeConfirmation":
            logs.event(log, "sns_unsubscribed", logging.WARNING, topic=msg.get("TopicArn"))
            return PlainTextResponse("ok")
        return None

    def _refuse(self, source: str, exc: Exception) -> Response:
        logs.event(log, "bounce_webhook_refused", logging.WARNING, source=source, reason=str(exc))
        return PlainTextResponse("forbidden", status_code=403)

    def _process(self, ids: list[int]) -> None:
        async def run() -> None:
            try:
                if self.processor is None:
                    self.processor = Processor(self.w.cfg, self.w.engine, self.w.key)
                await self.w.db(self.processor.run_pending, 200, ids)
            except Exception:  # noqa: BLE001 - the rows stay new; the service's worker retries them
                log.exception("processing webhook events failed")
        task = asyncio.get_running_loop().create_task(run())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
