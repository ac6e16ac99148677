"""Confirmation and "already subscribed" mails: built from templates/confirm.*, sent with aiosmtplib."""
from __future__ import annotations

import logging
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from typing import Protocol

import aiosmtplib
from jinja2 import Environment

from ..config import Config, EmailConfig
from .i18n import translator

log = logging.getLogger("flashbot.web.mailer")


class Mailer(Protocol):
    """Anything that can send one ready-made message."""

    async def send_message(self, message: EmailMessage) -> None:
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

    async def send_message(self, message: EmailMessage) -> None:
        """Deliver one message to the configured relay (raises aiosmtplib errors)."""
        await aiosmtplib.send(message, hostname=self.cfg.host, port=self.cfg.port, username=self.cfg.username,
                              password=self.cfg.password, timeout=self.cfg.timeout, **self._tls())


def build_message(cfg: Config, env: Environment, to: str, language: str, kind: str, link: str) -> EmailMessage:
    """The confirmation ('confirm') or 'already' mail for one address, text + HTML, in its language."""
    assert cfg.email is not None
    _ = translator(language)
    name = cfg.bot.name
    hours = int(cfg.web.confirm_hours) if float(cfg.web.confirm_hours).is_integer() else cfg.web.confirm_hours
    ctx = {"_": _, "lang": language, "kind": kind, "link": link, "name": name, "hours": hours, "email": to}
    msg = EmailMessage()
    msg["Subject"] = _(f"mail_{kind}_subject", name=name)
    msg["From"] = cfg.email.sender
    msg["To"] = to
    msg["Date"] = formatdate(localtime=False)
    domain = parseaddr(cfg.email.sender)[1].rpartition("@")[2] or "flashbot.local"
    msg["Message-ID"] = make_msgid(domain=domain)
    # A transactional mail: mark it so vacation responders stay quiet.
    msg["Auto-Submitted"] = "auto-generated"
    msg["Content-Language"] = language
    msg.set_content(env.get_template("confirm.txt").render(ctx))
    msg.add_alternative(env.get_template("confirm.html").render(ctx), subtype="html")
    return msg


async def send(mailer: Mailer, message: EmailMessage) -> bool:
    """Send; log and return False on any failure (the caller shows a 'try later' page)."""
    try:
        await mailer.send_message(message)
    except Exception as exc:  # noqa: BLE001 - SMTP, DNS, TLS, timeouts: all mean "not sent"
        log.warning("confirmation mail not sent: %s", type(exc).__name__ + ": " + str(exc)[:200])
        return False
    return True
