"""Email channel: a pool of persistent SMTP sessions with TLS, auth, rate cap and error mapping.

aiosmtplib opens each session (TLS, STARTTLS, AUTH, EHLO); `smtpsession.Session` then carries the
messages, pipelining MAIL/RCPT/DATA when the server offers PIPELINING.
"""
from __future__ import annotations

import asyncio
import logging
import ssl
from email.utils import parseaddr

import aiosmtplib
from aiosmtplib import errors as E

from bot.config import EmailConfig
from bot.delivery.channels.base import DeliveryError, Outgoing, PermanentError, Scope, Sent, TemporaryError
from bot.delivery.channels.smtp import Session

log = logging.getLogger(__name__)


def channel_wide(err: DeliveryError) -> DeliveryError:
    """Mark an error as affecting the whole channel (server down, auth refused), not one recipient."""
    err.scope = Scope.CHANNEL
    return err


def map_error(exc: BaseException) -> DeliveryError:
    """Translate an aiosmtplib/OS error into Temporary (4xx, network) or Permanent (5xx) errors."""
    if isinstance(exc, E.SMTPRecipientsRefused):
        exc = exc.recipients[0] if exc.recipients else E.SMTPResponseException(451, "all recipients refused")
    if isinstance(exc, E.SMTPAuthenticationError):
        return channel_wide(TemporaryError(f"SMTP authentication refused ({exc.code}): check email.username/password"))
    if isinstance(exc, E.SMTPConnectResponseError):
        return channel_wide(TemporaryError(f"SMTP server refused the connection: {exc.code} {exc.message}"))
    if isinstance(exc, E.SMTPResponseException):
        text = f"{exc.code} {exc.message}".strip()
        if 400 <= exc.code < 500 or 500 <= exc.code <= 504:
            # 4xx: try later. 500-504: syntax/sequence errors are a session problem, not the address's.
            return TemporaryError(text)
        at_recipient = isinstance(exc, (E.SMTPRecipientRefused, E.SMTPDataError))
        if at_recipient:
            return PermanentError(text, bounce=True)
        return PermanentError(text, bounce=False)
    if isinstance(exc, (E.SMTPConnectError, E.SMTPConnectTimeoutError, ConnectionRefusedError, E.SMTPNotSupported)):
        return channel_wide(TemporaryError(f"cannot connect to the SMTP server: {exc}"))
    if isinstance(exc, (E.SMTPTimeoutError, asyncio.TimeoutError, TimeoutError)):
        return TemporaryError(f"SMTP timeout: {exc}" if str(exc) else "SMTP timeout")
    if isinstance(exc, (E.SMTPServerDisconnected, ConnectionError, OSError, E.SMTPException)):
        return TemporaryError(f"SMTP connection lost: {exc}")
    if isinstance(exc, ValueError):  # aiosmtplib's address check
        return PermanentError(f"invalid address: {exc}")
    return TemporaryError(f"unexpected SMTP error: {exc!r}")


class _Stale(Exception):
    """A reused session turned out to be closed by the server."""


class RateLimiter:
    """Spaces calls at most `rate` per second (0 = unlimited); shared by every connection."""

    def __init__(self, rate: float):
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self._next = 0.0

    async def wait(self) -> None:
        """Sleep until the next send is allowed."""
        if not self.interval:
            return
        now = asyncio.get_running_loop().time()
        slot = max(self._next, now)
        self._next = slot + self.interval
        if slot > now:
            await asyncio.sleep(slot - now)


class EmailChannel:
    """The `email` channel: up to `email.concurrency` persistent SMTP sessions, reconnecting as needed."""

    name = "email"
    per_subscriber = True

    def __init__(self, cfg: EmailConfig, *, tls_context: ssl.SSLContext | None = None, local_hostname: str | None = None):
        self.cfg = cfg
        self.concurrency = cfg.concurrency  # one SMTP session per concurrent send
        self.envelope_from = parseaddr(cfg.sender)[1]
        self._tls_context = tls_context
        self._local_hostname = local_hostname
        self._idle: list[Session] = []
        self._slots: asyncio.Semaphore | None = None
        # The service swaps in a cluster-wide limiter (bot.delivery.throttle) via use_limiter().
        self._limiter = RateLimiter(cfg.rate_limit)
        self.connects = 0  # sessions opened (tests and stats read it)

    @property
    def rate_limit(self) -> float:
        """Messages per second allowed ([email] rate_limit; 0 = unlimited)."""
        return self.cfg.rate_limit

    def use_limiter(self, limiter) -> None:
        """Pace sends with `limiter` (anything with `async wait()`) instead of the local one."""
        self._limiter = limiter

    def compose(self, composer, row: dict, item: dict, original: str | None) -> Outgoing:
        """An alert mail, or a correction threaded under the original's Message-ID."""
        return composer.email(row, item, thread_id=original)

    def _client(self) -> aiosmtplib.SMTP:
        c = self.cfg
        tls = {"tls": dict(use_tls=True, start_tls=False), "starttls": dict(start_tls=True),
               "auto": dict(start_tls=None), "none": dict(start_tls=False)}[c.tls]
        return aiosmtplib.SMTP(
            hostname=c.host, port=c.port, timeout=c.timeout, username=c.username or None,
            password=c.password or None, tls_context=self._tls_context, local_hostname=self._local_hostname, **tls,
        )

    async def _connect(self) -> Session:
        client = self._client()
        try:
            await client.connect()
            if client.is_ehlo_or_helo_needed:
                await client.ehlo()
            session = Session(client, self.cfg.timeout)
        except BaseException as exc:
            client.close()
            if isinstance(exc, asyncio.CancelledError):
                raise
            err = map_error(exc)
            # Any failure while opening a session (refused, 421 greeting, TLS, auth) is channel-wide.
            raise channel_wide(err) if not err.permanent else err from None
        self.connects += 1
        return session

    async def send(self, msg: Outgoing) -> Sent:
        """Send one RFC 5322 message to msg.recipient; raise TemporaryError/PermanentError on failure."""
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.cfg.concurrency)
        await self._limiter.wait()
        async with self._slots:
            while self._idle:
                session = self._idle.pop()
                if not session.is_connected:  # the server closed it while idle
                    session.close()
                    continue
                try:
                    return await self._send_on(session, msg, fresh=False)
                except _Stale:
                    break  # the server closed an idle session: one fresh session, one more try
            return await self._send_on(await self._connect(), msg, fresh=True)

    async def _send_on(self, session: Session, msg: Outgoing, fresh: bool) -> Sent:
        try:
            await self._transaction(session, msg)
        except asyncio.CancelledError:
            session.close()
            raise
        except (E.SMTPServerDisconnected, ConnectionError) as exc:
            session.close()
            if not fresh:
                raise _Stale() from None
            raise map_error(exc) from None
        except Exception as exc:  # noqa: BLE001 - every failure is mapped to a DeliveryError
            await self._discard_or_keep(session, exc)
            raise map_error(exc) from None
        self._idle.append(session)
        return Sent(external_id=msg.meta.get("message_id"))

    async def _transaction(self, session: Session, msg: Outgoing) -> None:
        """MAIL, RCPT, DATA (pipelined when offered) on an open session (addresses were validated
        when the message was built)."""
        utf8 = bool(msg.meta.get("smtputf8"))
        if utf8 and not session.supports("smtputf8"):
            raise E.SMTPRecipientRefused(553, "the server does not support SMTPUTF8 for this address", msg.recipient)
        enc = "utf-8" if utf8 else "ascii"
        sender = (msg.envelope_from or self.envelope_from).encode(enc)
        await session.mail(sender, msg.recipient.encode(enc), msg.body, b" SMTPUTF8" if utf8 else b"")

    async def _discard_or_keep(self, session: Session, exc: BaseException) -> None:
        # A refused sender/recipient/message leaves a usable session once the envelope is reset (RSET);
        # anything else (timeout, garbage, 421) may not.
        healthy = isinstance(exc, (E.SMTPRecipientRefused, E.SMTPDataError, E.SMTPSenderRefused, ValueError))
        if healthy and session.is_connected and getattr(exc, "code", 0) != 421:
            try:
                if (await session.command(b"RSET")).code == 250:
                    self._idle.append(session)
                    return
            except (E.SMTPException, ConnectionError, OSError):
                pass
        session.close()

    async def check(self) -> str:
        """Connect, EHLO (and STARTTLS/login as configured); a one-line verdict, or TemporaryError."""
        session = await self._connect()
        try:
            features = sorted(k.upper() for k in session.extensions)
            tls = "TLS" if session.tls else "no TLS"
            auth = ", authenticated" if self.cfg.username else ""
            return f"{self.cfg.host}:{self.cfg.port} ok ({session.banner}; {tls}{auth}; {', '.join(features)})"
        finally:
            await self._quit(session)

    async def _quit(self, session: Session) -> None:
        try:
            await asyncio.wait_for(session.quit(), timeout=min(self.cfg.timeout, 5))
        except Exception:  # noqa: BLE001 - closing politely is best effort
            session.close()

    async def close(self) -> None:
        """QUIT every idle session."""
        idle, self._idle = self._idle, []
        await asyncio.gather(*(self._quit(c) for c in idle), return_exceptions=True)


def from_config(cfg) -> EmailChannel | None:
    """The email channel when `[email]` is configured."""
    return EmailChannel(cfg.email) if cfg.email is not None else None
