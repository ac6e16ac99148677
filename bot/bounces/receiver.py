"""The built-in bounce receiver: an SMTP server (aiosmtpd) that the MTA routes the bounce domain to.

It accepts only recipients of `[bounces] domain` (550 for anything else: never an open relay),
caps the message size (552 beyond `bounces.max_bytes`, checked while reading, so a huge mail never
sits in memory) and answers 250 only once the message is committed to the database. Processing
happens afterwards (bot.bounces.worker); a crash between the two leaves the mail `new`, not lost.
"""
from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from aiosmtpd.smtp import SMTP, Envelope, Session, syntax

from bot import logs
from bot.bounce_config import host_port
from bot.store import bounces as inbox
from bot.store import retry_locked

log = logging.getLogger(__name__)
MAX_RECIPIENTS = 50
MAX_SESSIONS = 200  # connections served at once; more get 421 at the greeting
GROUP = 256  # messages written per transaction at most
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_PLAIN_ADDR = re.compile(rf"\s*<(({_ATOM}(?:\.{_ATOM})*)@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)>\s*(.*)\Z", re.S)


class _Writer:
    """Group commit: messages arriving together are stored in one transaction, each caller waits for it."""

    def __init__(self, engine):
        self.engine = engine
        self._queue: list[tuple[dict, asyncio.Future]] = []
        self._running: asyncio.Task | None = None
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="flashbot-bounces")

    async def store(self, row: dict) -> tuple[int, bool]:
        """Commit one received message; (id, newly stored)."""
        fut = asyncio.get_running_loop().create_future()
        self._queue.append((row, fut))
        if self._running is None or self._running.done():
            self._running = asyncio.ensure_future(self._drain())
        return await fut

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while self._queue:
            batch, self._queue = self._queue[:GROUP], self._queue[GROUP:]
            try:
                ids = await loop.run_in_executor(self._thread, retry_locked, lambda: inbox.store(self.engine, [r for r, _ in batch]))
            except Exception as exc:  # noqa: BLE001 - every waiter gets the error (451 to its client)
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            for (_, fut), result in zip(batch, ids):
                if not fut.done():
                    fut.set_result(result)

    def close(self) -> None:
        """Release the writer thread."""
        self._thread.shutdown(wait=False)


class _Session(SMTP):
    """aiosmtpd's SMTP with a cap on simultaneous sessions."""

    async def _handle_client(self) -> None:
        receiver: Receiver = self.event_handler
        if receiver.sessions >= MAX_SESSIONS:
            await self.push("421 4.3.2 too many connections, try again later")
            self.transport.close()
            return
        receiver.sessions += 1
        try:
            await super()._handle_client()
        finally:
            receiver.sessions -= 1

    def _getaddr(self, arg: str):
        """aiosmtpd's address parsing, with a regex for the plain `<local@domain>` every MTA sends (a tenth of the cost)."""
        if arg.startswith("<>"):  # the null reverse-path of every bounce
            return "<>", arg[2:]
        m = _PLAIN_ADDR.match(arg)
        if m is None or (self.local_part_limit and len(m.group(2)) > self.local_part_limit):
            return super()._getaddr(arg)
        return m.group(1), m.group(3)

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        """aiosmtpd's DATA with the message read in chunks, not line by line (a tenth of the CPU per bounce)."""
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        data = await self._read_data()
        if data is None:  # over data_size_limit: read to its end, then refused
            self._set_post_data_state()
            await self.push("552 Error: Too much mail data")
            return
        self.envelope.content = self.envelope.original_content = data
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()
        await self.push(status)

    async def _read_data(self) -> bytes | None:
        """The message up to the line holding a lone dot, dot-unstuffed (RFC 5321 4.5.2); None when over the limit."""
        buf = bytearray(b"\r\n")  # a leading CRLF makes an empty message end like any other
        size, scanned, too_big = 0, 0, False
        while True:
            chunk = await self._reader.read(65536)
            if not chunk:  # the client went away mid-DATA
                raise ConnectionResetError("connection lost during DATA")
            size += len(chunk)
            buf += chunk
            end = buf.find(b"\r\n.\r\n", max(0, scanned - 4))
            if end >= 0:
                break
            if self.data_size_limit and size > self.data_size_limit:
                too_big = True
                del buf[:-4]  # only the tail is kept: a 100 MB message never sits in memory
            scanned = len(buf)
        extra = bytes(buf[end + 5:])
        if extra:  # a client that did not wait for our reply (no PIPELINING offered): keep its next command
            self._reader._buffer[:0] = extra  # noqa: SLF001 - asyncio.StreamReader has no unread()
        if too_big or (self.data_size_limit and size - len(extra) - 3 > self.data_size_limit):
            return None
        return bytes(buf[:end + 2]).replace(b"\r\n.", b"\r\n")[2:]


class Receiver:
    """aiosmtpd handler and server; `on_stored` is called after each newly stored message."""

    def __init__(self, cfg, engine, on_stored: Callable[[], None] | None = None, listen: str | None = None):
        self.domain = cfg.bounces.domain
        self.max_bytes = cfg.bounces.max_bytes
        self.host, self.port = host_port(listen or cfg.bounces.listen)
        self.on_stored = on_stored or (lambda: None)
        self.writer = _Writer(engine)
        self.sessions = 0
        self.server: asyncio.AbstractServer | None = None

    def _factory(self) -> SMTP:
        return _Session(self, data_size_limit=self.max_bytes, enable_SMTPUTF8=True, decode_data=False,
                        hostname=self.domain, ident="Flashbot bounce receiver", timeout=60)

    async def start(self) -> int:
        """Listen; returns the port (useful with port 0)."""
        loop = asyncio.get_running_loop()
        try:
            self.server = await loop.create_server(self._factory, host=self.host, port=self.port)
        except OSError as exc:
            raise OSError(f"bounces.listen: cannot listen on {self.host}:{self.port}: {exc.strerror}") from None
        self.port = self.server.sockets[0].getsockname()[1]
        logs.event(log, "bounce_receiver_listening", host=self.host, port=self.port, domain=self.domain)
        return self.port

    async def stop(self) -> None:
        """Stop accepting; sessions in progress are closed."""
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None
        self.writer.close()

    # -- aiosmtpd hooks ------------------------------------------------------------------------------
    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options) -> str:
        """Only addresses of the bounce domain: this server relays nothing."""
        if address.rpartition("@")[2].lower().rstrip(".") != self.domain:
            logs.event(log, "bounce_receiver_refused", logging.WARNING, peer=str(session.peer), reason="not the bounce domain")
            return f"550 5.7.1 relaying denied: this server only takes mail for {self.domain}"
        if len(envelope.rcpt_tos) >= MAX_RECIPIENTS:
            return "452 4.5.3 too many recipients"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """Store the message; 250 only once it is committed."""
        raw = envelope.original_content or b""
        row = {"source": "smtp", "raw": bytes(raw), "envelope_to": ",".join(a.lower() for a in envelope.rcpt_tos),
               "envelope_from": envelope.mail_from}
        try:
            row_id, new = await self.writer.store(row)
        except Exception as exc:  # noqa: BLE001 - the MTA keeps the bounce and tries again
            logs.event(log, "bounce_store_failed", logging.ERROR, error=repr(exc))
            return "451 4.3.0 cannot store the message now; try again later"
        if new:
            self.on_stored()
        return f"250 2.0.0 stored as bounce #{row_id}" if new else f"250 2.0.0 already stored as bounce #{row_id}"
