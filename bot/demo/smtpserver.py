"""A real SMTP server on 127.0.0.1 (aiosmtpd) for tests, the demo and benchmarks, with fault injection.

    with SMTPServer() as smtp:                        # free port picked by the OS
        smtp.fail(550, stage="rcpt", pattern="*@bad.example")
        smtp.fail(451, stage="rcpt", times=1)         # only the next message
        smtp.fail(421, stage="connect")               # greeting refused
        smtp.fail(stage="data", drop=True)            # connection dropped before the DATA reply
        smtp.delay = 0.05                             # seconds per message
        ... smtp.messages -> [Received(mail_from, rcpt_tos, data)]
"""
from __future__ import annotations

import asyncio
import fnmatch
import shutil
import ssl
import subprocess
import threading
from dataclasses import dataclass, field
from email import policy
from email.parser import BytesParser
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

DEFAULT_MESSAGES = {421: "Service not available, closing channel", 450: "Mailbox busy", 451: "Local error, try later",
                    452: "Insufficient storage", 550: "No such user", 552: "Message too big",
                    553: "Mailbox name not allowed", 554: "Transaction failed"}


@dataclass
class Received:
    """One accepted message."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes

    def parsed(self):
        """The message parsed with the modern email policy."""
        return BytesParser(policy=policy.default).parsebytes(self.data)


@dataclass
class Fault:
    code: int | None
    stage: str  # connect | mail | rcpt | data
    pattern: str | None = None  # fnmatch on the recipient; None = everyone
    times: int | None = None  # None = forever
    drop: bool = False  # close the connection instead of answering
    message: str | None = None
    hits: int = 0


@dataclass
class _State:
    faults: list[Fault] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Session(SMTP):
    """aiosmtpd's SMTP with a fault hook before the greeting (421 at connect)."""

    async def _handle_client(self) -> None:
        server: SMTPServer = self.event_handler
        server.connections += 1
        fault = server._take("connect", None)
        if fault:
            if not fault.drop:
                await self.push(f"{fault.code or 421} {fault.message or DEFAULT_MESSAGES.get(fault.code or 421, 'refused')}")
            self.transport.close()
            return
        await super()._handle_client()


class _Controller(Controller):
    """Controller binding the given port or, with 0, whatever free port the OS picks."""

    def factory(self):
        return _Session(self.handler, **self.SMTP_kwargs)

    def _create_server(self):
        async def make():
            server = await self.loop.create_server(self._factory_invoker, host=self.hostname, port=self.port, ssl=self.ssl_context)
            self.port = server.sockets[0].getsockname()[1]
            return server
        return make()


class SMTPServer:
    """Threaded aiosmtpd server collecting messages; see the module docstring for faults."""

    def __init__(self, *, port: int = 0, save_dir: str | Path | None = None, tls_cert: tuple[str, str] | None = None,
                 implicit_tls: bool = False, users: dict[str, str] | None = None, hostname: str = "127.0.0.1"):
        self.host = hostname
        self.port = port
        self.save_dir = Path(save_dir) if save_dir else None
        self.messages: list[Received] = []
        self.delay = 0.0
        self.pipelining = False  # advertise PIPELINING (RFC 2920) in EHLO; aiosmtpd handles pipelined input
        self.connections = 0
        self.logins: list[str] = []  # user names tried (no auth_ prefix: aiosmtpd reads those as mechanisms)
        self._users = users
        self._state = _State()
        self._tls_cert = tls_cert
        self._implicit = implicit_tls
        self._controller: _Controller | None = None
        self._saved = 0

    # -- life cycle -------------------------------------------------------------------------
    def start(self) -> "SMTPServer":
        """Start listening (again on the same port after a stop())."""
        kwargs: dict = {"hostname": self.host, "port": self.port, "ready_timeout": 10,
                        "data_size_limit": 50 * 1024 * 1024}
        if self._tls_cert:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(*self._tls_cert)
            kwargs["ssl_context" if self._implicit else "tls_context"] = ctx
        if self._users is not None:
            kwargs.update(authenticator=self._authenticate, auth_require_tls=False)
        self._controller = _Controller(self, **kwargs)
        self._controller.start()
        self.port = self._controller.port
        self.connections = 0  # the controller's own readiness probe does not count
        return self

    def stop(self) -> None:
        """Stop listening (connections are refused until start())."""
        if self._controller:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> "SMTPServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- faults ---------------------------------------------------------------------------
    def fail(self, code: int | None = None, *, stage: str = "rcpt", pattern: str | None = None, times: int | None = None,
             drop: bool = False, message: str | None = None) -> Fault:
        """Inject a fault: answer `code` at `stage` (or drop the connection) for matching recipients."""
        if stage not in ("connect", "mail", "rcpt", "data"):
            raise ValueError(f"unknown stage {stage!r}")
        fault = Fault(code, stage, pattern, times, drop, message)
        with self._state.lock:
            self._state.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        """Remove every fault."""
        with self._state.lock:
            self._state.faults.clear()

    def _take(self, stage: str, recipient: str | None) -> Fault | None:
        with self._state.lock:
            for f in self._state.faults:
                if f.stage != stage or (f.times is not None and f.hits >= f.times):
                    continue
                if f.pattern and not (recipient and fnmatch.fnmatch(recipient.lower(), f.pattern.lower())):
                    continue
                f.hits += 1
                return f
        return None

    @staticmethod
    def _reply(f: Fault) -> str:
        return f"{f.code} {f.message or DEFAULT_MESSAGES.get(f.code, 'error')}"

    # -- aiosmtpd handler hooks -----------------------------------------------------------------
    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        user, password = auth_data.login.decode(), auth_data.password.decode()
        self.logins.append(user)
        return AuthResult(success=self._users.get(user) == password, handled=False)

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        if self.pipelining:
            responses.insert(1, "250-PIPELINING")
        return responses

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        f = self._take("mail", None)
        if f:
            if f.drop:
                server.transport.abort()
                return "421 dropped"
            return self._reply(f)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        f = self._take("rcpt", address)
        if f:
            if f.drop:
                server.transport.close()
            return self._reply(f) if f.code else "421 closing"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.delay:
            await asyncio.sleep(self.delay)
        for rcpt in envelope.rcpt_tos:
            f = self._take("data", rcpt)
            if f:
                if f.drop:
                    server.transport.abort()  # no reply at all: the client sees the connection vanish
                    return "421 dropped"
                return self._reply(f)
        data = envelope.original_content or envelope.content
        msg = Received(envelope.mail_from, list(envelope.rcpt_tos), bytes(data))
        with self._state.lock:
            self.messages.append(msg)
            number = len(self.messages)
        if self.save_dir:
            self._save(number, msg)
        return "250 OK queued"

    def _save(self, number: int, msg: Received) -> None:
        self.save_dir.mkdir(parents=True, exist_ok=True)
        (self.save_dir / f"{number:04d}.eml").write_bytes(msg.data)
        body = msg.parsed().get_body(("html",))
        if body is not None:
            (self.save_dir / f"{number:04d}.html").write_text(body.get_content(), encoding="utf-8")

    # -- helpers for assertions ------------------------------------------------------------------
    def recipients(self) -> list[str]:
        """Every recipient of every accepted message, in order (duplicates kept)."""
        with self._state.lock:
            return [r for m in self.messages for r in m.rcpt_tos]


def self_signed_cert(folder: str | Path, host: str = "127.0.0.1") -> tuple[str, str] | None:
    """(certfile, keyfile) for a throwaway certificate made with the openssl CLI, or None without it."""
    if not shutil.which("openssl"):
        return None
    folder = Path(folder)
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={host}",
         "-addext", f"subjectAltName=IP:{host}", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return str(cert), str(key)
