"""Confirmation and "already subscribed" mails: built from templates/confirm.* by the delivery mail
builder (bot.delivery.mime), DKIM-signed like every other mail, sent after the response."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import make_msgid, parseaddr
from typing import Protocol

import aiosmtplib
from jinja2 import Environment

from bot import i18n
from bot.config import Config, EmailConfig
from bot.delivery import mime

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Mail:
    """One finished message: envelope sender, recipient and the exact (signed) bytes."""

    sender: str
    to: str
    data: bytes


class Mailer(Protocol):
    """Anything that can send one ready-made message."""

    async def send_message(self, message: Mail) -> None:
        """Send or raise."""


class SMTPMailer:
    """One SMTP connection per message: sign-up mails are rare, a pool would sit idle."""

    def __init__(self, email_cfg: EmailConfig) -> None:
        self.cfg = email_cfg

    def _tls(self) -> dict:
        mode = self.cfg.tls
        if mode == "tls":
            return {"use_tls": True}
        if mode == "starttls":
            return {"start_tls": True}
        if mode == "none":
            return {"start_tls": False}
        return {"start_tls": None}  # auto: upgrade when the server offers STARTTLS

    async def send_message(self, message: Mail) -> None:
        """Deliver one message to the configured relay (raises aiosmtplib errors)."""
        options = [] if message.to.isascii() else ["SMTPUTF8"]
        await aiosmtplib.send(message.data, sender=message.sender, recipients=[message.to], mail_options=options,
                              hostname=self.cfg.host, port=self.cfg.port, username=self.cfg.username,
                              password=self.cfg.password, timeout=self.cfg.timeout, **self._tls())


def build_message(cfg: Config, env: Environment, to: str, language: str, kind: str, link: str,
                  dkim: mime.DKIMSigner | None = None) -> Mail:
    """The confirmation ('confirm') or 'already' mail for one address, text + HTML, in its language.

    Built by the same code as alerts (bot.delivery.mime) and signed by the same DKIM signer, so a
    strict DMARC policy treats every mail of the domain alike."""
    assert cfg.email is not None
    language = i18n.pick_language(language, cfg.bot.language)
    t = i18n.translator(language)
    name = cfg.bot.name
    hours = int(cfg.web.confirm_hours) if float(cfg.web.confirm_hours).is_integer() else cfg.web.confirm_hours
    subject = t.gettext("mail_confirm_subject", name=name) if kind == "confirm" else \
        t.gettext("mail_already_subject", name=name)
    ctx = {"lang": language, "dir": i18n.direction(language), "kind": kind, "link": link, "name": name,
           "hours": hours, "email": to, "subject": subject}
    data = mime.build_single(cfg.email.sender, to, subject, language,
                             datetime.now(timezone.utc), make_msgid(domain=mime.sender_domain(cfg.email.sender)),
                             env.get_template("confirm.txt").render(ctx), env.get_template("confirm.html").render(ctx))
    if dkim is not None:
        data = dkim.sign(data)
    return Mail(parseaddr(cfg.email.sender)[1], mime.check_address(to), data)


async def send(mailer: Mailer, message: Mail) -> bool:
    """Send; log the failure and return False (nobody waits for the answer: the page is already shown)."""
    try:
        await mailer.send_message(message)
    except Exception as exc:  # noqa: BLE001 - SMTP, DNS, TLS, timeouts: all mean "not sent"
        # SMTP refusals often quote the recipient: the log names the error, not the person.
        detail = str(exc).replace(message.to, "<recipient>")[:200]
        log.error("confirmation mail not sent: %s: %s", type(exc).__name__, detail)
        return False
    return True


class MailJobs:
    """Mails sent after the response: tracked tasks, bounded concurrency, every failure logged.

    Sending during the request would make a new address (mail sent) answer slower than a known or
    limited one (no mail): a timing side channel on who subscribed. Here the page never waits.
    """

    def __init__(self, concurrency: int = 4, max_pending: int = 1000) -> None:
        self._tasks: set[asyncio.Task] = set()
        self._slots = asyncio.Semaphore(concurrency)  # SMTP connections at once
        self.max_pending = max_pending
        self.dropped = 0

    @property
    def pending(self) -> int:
        """Jobs started and not finished."""
        return len(self._tasks)

    def spawn(self, job: Callable[[], Awaitable[object]], what: str = "confirmation mail") -> bool:
        """Run `job()` in the background; False (logged) when too many are already waiting."""
        if len(self._tasks) >= self.max_pending:
            self.dropped += 1
            log.error("%s dropped: %d mails already waiting for the SMTP server", what, len(self._tasks))
            return False
        task = asyncio.get_running_loop().create_task(self._run(job, what))
        self._tasks.add(task)  # a strong reference: asyncio keeps only weak ones
        task.add_done_callback(self._tasks.discard)
        return True

    async def _run(self, job: Callable[[], Awaitable[object]], what: str) -> None:
        async with self._slots:
            try:
                await job()
            except asyncio.CancelledError:
                log.warning("%s cancelled before it was sent (shutting down)", what)
                raise
            except Exception as exc:  # noqa: BLE001 - a background job has nobody else to tell
                log.error("%s failed: %s", what, type(exc).__name__ + ": " + str(exc)[:200])

    async def drain(self, timeout: float = 10) -> int:
        """Wait for the jobs in flight; cancel those still running after `timeout`; return that count."""
        if not self._tasks:
            return 0
        _, late = await asyncio.wait(set(self._tasks), timeout=timeout)
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)
        return len(late)
