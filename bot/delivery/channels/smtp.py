"""One open SMTP session for MAIL/RCPT/DATA, pipelined (RFC 2920) when the server offers it.

aiosmtplib opens the session (TCP or TLS, greeting, EHLO, STARTTLS, AUTH); then the transport is
handed to this protocol, which sends MAIL FROM, RCPT TO and DATA in ONE write when the server
advertises PIPELINING and reads the three replies together, then the message and its final reply:
two round trips per message instead of four. aiosmtplib reads one reply per command and drops
bytes arriving while a parsed reply waits, so it cannot read pipelined replies itself. Errors are
aiosmtplib's exception classes, so `channels.email.map_error` maps them the same way.
"""
from __future__ import annotations

import asyncio
import re
from collections import deque

import aiosmtplib
from aiosmtplib import errors as E
from aiosmtplib.response import SMTPResponse

MAX_REPLY = 64 * 1024  # a reply longer than this is not SMTP
_LONE_EOL = re.compile(rb"\r\n|\r|\n")
_CONTROL = re.compile(rb"[\x00-\x1f\x7f]")  # CR/LF in an address would inject commands


def wire_body(body: bytes) -> bytes:
    """The DATA payload: CRLF line ends, dot-stuffed (RFC 5321 §4.5.2), ending with CRLF.CRLF."""
    crlf = body.count(b"\r\n")
    if body.count(b"\n") != crlf or body.count(b"\r") != crlf:  # a lone CR or LF: normalize (rare)
        body = _LONE_EOL.sub(b"\r\n", body)
    if not body.endswith(b"\r\n"):
        body += b"\r\n"
    if body.startswith(b"."):
        body = b"." + body
    return body.replace(b"\r\n.", b"\r\n..") + b".\r\n"


class Session(asyncio.Protocol):
    """An SMTP session taken over from a connected aiosmtplib client (see the module docstring)."""

    def __init__(self, client: aiosmtplib.SMTP, timeout: float | None):
        self._loop = asyncio.get_running_loop()
        self.timeout = timeout
        self.extensions = dict(client.esmtp_extensions)
        ehlo = client.last_ehlo_response
        self.banner = (ehlo.message.splitlines()[0] if ehlo and ehlo.message else "").strip()
        self.tls = bool(client.get_transport_info("sslcontext"))
        self.pipelining = "pipelining" in self.extensions
        self._buf = bytearray()
        self._replies: deque[SMTPResponse] = deque()
        self._waiter: asyncio.Future | None = None
        self._want = 0
        self._error: Exception | None = None
        self.transport = client.transport
        self.transport.set_protocol(self)  # from now on every byte the server sends comes here

    # -- protocol callbacks -------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        """Collect complete replies (several may come in one segment when pipelining)."""
        buf = self._buf
        buf += data
        start = done = 0
        lines: list[bytes] = []
        while (end := buf.find(b"\n", start)) >= 0:
            line = bytes(buf[start:end + 1])
            start = end + 1
            lines.append(line)
            if line[3:4] == b"-":
                continue  # a multiline reply goes on
            try:
                code = int(line[:3])
            except ValueError:
                return self._fail(E.SMTPResponseException(-1, f"malformed SMTP reply: {line[:80]!r}"))
            text = "\n".join(ln[4:].strip(b" \t\r\n").decode("utf-8", "surrogateescape") for ln in lines)
            self._replies.append(SMTPResponse(code, text))
            lines, done = [], start
        del buf[:done]
        if len(buf) > MAX_REPLY:
            return self._fail(E.SMTPResponseException(-1, "SMTP reply too long"))
        waiter = self._waiter
        if waiter is not None and not waiter.done() and len(self._replies) >= self._want:
            waiter.set_result(None)

    def eof_received(self) -> bool:
        """The server closed its side."""
        self._fail(E.SMTPServerDisconnected("Unexpected EOF received"))
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        """The connection is gone: a waiting read fails."""
        err = E.SMTPServerDisconnected("Connection lost")
        err.__cause__ = exc
        self._fail(err)
        self.transport = None

    def _fail(self, exc: Exception) -> None:
        if self._error is None:
            self._error = exc
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        if self.transport is not None and not isinstance(exc, E.SMTPServerDisconnected):
            self.transport.close()

    # -- commands -----------------------------------------------------------------------------
    @property
    def is_connected(self) -> bool:
        """Whether the connection is still open."""
        return self._error is None and self.transport is not None and not self.transport.is_closing()

    def supports(self, extension: str) -> bool:
        """Whether the server advertised this ESMTP extension in its EHLO reply."""
        return extension.lower() in self.extensions

    def write(self, data: bytes) -> None:
        """Send bytes (raises SMTPServerDisconnected when the connection is gone)."""
        if not self.is_connected:
            raise self._error or E.SMTPServerDisconnected("Connection lost")
        self.transport.write(data)

    async def replies(self, n: int) -> list[SMTPResponse]:
        """The next n replies, in order (SMTPReadTimeoutError after `timeout` seconds of waiting)."""
        while len(self._replies) < n:
            if self._error is not None:
                raise self._error
            self._waiter, self._want = self._loop.create_future(), n
            timer = self._loop.call_later(self.timeout, self._timed_out) if self.timeout else None
            try:
                await self._waiter
            finally:
                self._waiter = None
                if timer is not None:
                    timer.cancel()
        return [self._replies.popleft() for _ in range(n)]

    def _timed_out(self) -> None:
        self._fail(E.SMTPReadTimeoutError("Timed out waiting for server response"))

    async def command(self, line: bytes) -> SMTPResponse:
        """One command (without CRLF) and its reply."""
        self.write(line + b"\r\n")
        return (await self.replies(1))[0]

    async def mail(self, sender: bytes, recipient: bytes, body: bytes, options: bytes = b"") -> SMTPResponse:
        """MAIL FROM, RCPT TO, DATA and the message; the final reply, or aiosmtplib's errors."""
        if _CONTROL.search(sender) or _CONTROL.search(recipient) or _CONTROL.search(options):
            raise ValueError("address contains a control character")
        mail = b"MAIL FROM:<" + sender + b">" + options + b"\r\n"
        rcpt = b"RCPT TO:<" + recipient + b">\r\n"
        if self.pipelining:
            self.write(mail + rcpt + b"DATA\r\n")
            try:
                r_mail, r_rcpt, r_data = await self.replies(3)
            except E.SMTPServerDisconnected:  # e.g. 421 to MAIL, then the server hung up: report the 421
                early = next((r for r in self._replies if r.code >= 400), None)
                if early is None:
                    raise
                raise E.SMTPResponseException(early.code, early.message) from None
        else:  # one command at a time; stop at the first refusal
            self.write(mail)
            r_mail, = await self.replies(1)
            r_rcpt = r_data = SMTPResponse(503, "not sent")
            if r_mail.code == 250:
                self.write(rcpt)
                r_rcpt, = await self.replies(1)
                if r_rcpt.code in (250, 251):
                    self.write(b"DATA\r\n")
                    r_data, = await self.replies(1)
        refused = r_mail.code != 250 or r_rcpt.code not in (250, 251)
        if r_data.code == 354 and refused:  # a server that opened DATA anyway: end the empty message
            self.write(b".\r\n")
            await self.replies(1)
        if r_mail.code != 250:
            raise E.SMTPSenderRefused(r_mail.code, r_mail.message, sender.decode("utf-8", "replace"))
        if refused:
            raise E.SMTPRecipientRefused(r_rcpt.code, r_rcpt.message, recipient.decode("utf-8", "replace"))
        if r_data.code != 354:
            raise E.SMTPDataError(r_data.code, r_data.message)
        self.write(wire_body(body))
        done, = await self.replies(1)
        if done.code != 250:
            raise E.SMTPDataError(done.code, done.message)
        return done

    def close(self) -> None:
        """Drop the connection."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    async def quit(self) -> None:
        """QUIT politely, then close (best effort)."""
        try:
            if self.is_connected:
                await self.command(b"QUIT")
        except (E.SMTPException, ConnectionError, OSError):
            pass
        finally:
            self.close()
