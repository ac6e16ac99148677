"""Email channel: a pool of persistent aiosmtplib connections with TLS, auth, rate cap and error mapping."""
from __future__ import annotations

import asyncio
import logging
import ssl
from email.utils import parseaddr

import aiosmtplib
from aiosmtplib import errors as E

from ..config import EmailConfig
from .base import DeliveryError, Outgoing, PermanentError, Sent, TemporaryError

log = logging.getLogger(__name__)


def channel_wide(err: DeliveryError) -> DeliveryError:
    """Mark an error as affecting the whole channel (server down, auth refused), not one recipient."""
    err.scope = "channel"
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

    def __init__(self, cfg: EmailConfig, *, tls_context: ssl.SSLContext | None = None, local_hostname: str | None = None):
        self.cfg = cfg
        self.envelope_from = parseaddr(cfg.sender)[1]
        self._tls_context = tls_context
        self._local_hostname = local_hostname
        self._idle: list[aiosmtplib.SMTP] = []
        self._slots: asyncio.Semaphore | None = None
        self._limiter = RateLimiter(cfg.rate_limit)
        self.connects = 0  # sessions opened (tests and stats read it)

    def _client(self) -> aiosmtplib.SMTP:
        c = self.cfg
        tls = {"tls": dict(use_tls=True, start_tls=False), "starttls": dict(start_tls=True),
               "auto": dict(start_tls=None), "none": dict(start_tls=False)}[c.tls]
        return aiosmtplib.SMTP(
            hostname=c.host, port=c.port, timeout=c.timeout, username=c.username or None,
            password=c.password or None, tls_context=self._tls_context, local_hostname=self._local_hostname, **tls,
        )

    async def _connect(self) -> aiosmtplib.SMTP:
        client = self._client()
        try:
            await client.connect()
            if client.is_ehlo_or_helo_needed:
                await client.ehlo()  # before MAIL, so no implicit EHLO can reset a transaction later
        except BaseException as exc:
            client.close()
            if isinstance(exc, asyncio.CancelledError):
                raise
            err = map_error(exc)
            # Any failure while opening a session (refused, 421 greeting, TLS, auth) is channel-wide.
            raise channel_wide(err) if not err.permanent else err from None
        self.connects += 1
        return client

    async def send(self, msg: Outgoing) -> Sent:
        """Send one RFC 5322 message to msg.recipient; raise TemporaryError/PermanentError on failure."""
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.cfg.concurrency)
        await self._limiter.wait()
        async with self._slots:
            if self._idle:
                try:
                    return await self._send_on(self._idle.pop(), msg, fresh=False)
                except _Stale:
                    pass  # the server closed an idle session: one fresh session, one more try
            return await self._send_on(await self._connect(), msg, fresh=True)

    async def _send_on(self, client: aiosmtplib.SMTP, msg: Outgoing, fresh: bool) -> Sent:
        try:
            await self._transaction(client, msg)
        except asyncio.CancelledError:
            client.close()
            raise
        except (E.SMTPServerDisconnected, ConnectionError) as exc:
            client.close()
            if not fresh:
                raise _Stale() from None
            raise map_error(exc) from None
        except Exception as exc:  # noqa: BLE001 - every failure is mapped to a DeliveryError
            self._discard_or_keep(client, exc)
            raise map_error(exc) from None
        self._idle.append(client)
        return Sent(external_id=msg.meta.get("message_id"))

    async def _transaction(self, client: aiosmtplib.SMTP, msg: Outgoing) -> None:
        """MAIL, RCPT, DATA on an open session: aiosmtplib's sendmail minus its per-call address
        re-parsing and SIZE computation (addresses were validated when the message was built)."""
        utf8 = bool(msg.meta.get("smtputf8"))
        if utf8 and not client.supports_extension("smtputf8"):
            raise E.SMTPRecipientRefused(553, "the server does not support SMTPUTF8 for this address", msg.recipient)
        enc = "utf-8" if utf8 else "ascii"
        sender = (msg.envelope_from or self.envelope_from).encode(enc)
        options = (b"SMTPUTF8",) if utf8 else ()
        try:
            r = await client.execute_command(b"MAIL", b"FROM:<" + sender + b">", *options)
            if r.code != 250:
                raise E.SMTPSenderRefused(r.code, r.message, self.envelope_from)
            r = await client.execute_command(b"RCPT", b"TO:<" + msg.recipient.encode(enc) + b">")
            if r.code not in (250, 251):
                raise E.SMTPRecipientRefused(r.code, r.message, msg.recipient)
            await client.data(msg.body)
        except E.SMTPResponseException as exc:
            if exc.code != 421:
                try:  # reset the envelope so the session can carry the next message
                    await client.rset()
                except (ConnectionError, E.SMTPException):
                    pass
            raise

    def _discard_or_keep(self, client: aiosmtplib.SMTP, exc: BaseException) -> None:
        # A refused recipient leaves a healthy session (aiosmtplib sent RSET); anything else may not.
        healthy = isinstance(exc, (E.SMTPRecipientsRefused, E.SMTPRecipientRefused, E.SMTPDataError, E.SMTPSenderRefused))
        if healthy and client.is_connected and getattr(exc, "code", 0) != 421:
            self._idle.append(client)
        else:
            client.close()

    async def check(self) -> str:
        """Connect, EHLO (and STARTTLS/login as configured); a one-line verdict, or TemporaryError."""
        client = await self._connect()
        try:
            ehlo = client.last_ehlo_response
            features = sorted(k.upper() for k in client.esmtp_extensions)
            tls = "TLS" if client.get_transport_info("sslcontext") else "no TLS"
            banner = (ehlo.message.splitlines()[0] if ehlo and ehlo.message else "").strip()
            auth = ", authenticated" if self.cfg.username else ""
            return f"{self.cfg.host}:{self.cfg.port} ok ({banner}; {tls}{auth}; {', '.join(features)})"
        finally:
            await self._quit(client)

    async def _quit(self, client: aiosmtplib.SMTP) -> None:
        try:
            await asyncio.wait_for(client.quit(), timeout=min(self.cfg.timeout, 5))
        except Exception:  # noqa: BLE001 - closing politely is best effort
            client.close()

    async def close(self) -> None:
        """QUIT every idle session."""
        idle, self._idle = self._idle, []
        await asyncio.gather(*(self._quit(c) for c in idle), return_exceptions=True)
