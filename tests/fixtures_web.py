"""Web fixtures: a real SMTP inbox (aiosmtpd on 127.0.0.1:0), a config, a database, the app and a client."""
from __future__ import annotations

import asyncio
import email
import email.policy
import re
import threading
import time
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest
from aiosmtpd.controller import Controller

from bot.config import parse_config
from bot.store import open_db

ADMIN_PASSWORD = "correct horse battery staple"
METRICS_TOKEN = "metrics-token-0123456789abcdef"
METRICS_AUTH = {"authorization": f"Bearer {METRICS_TOKEN}"}


class _PortZeroController(Controller):
    """aiosmtpd's Controller on an ephemeral port (it needs the real port to self-test)."""

    def _trigger_server(self):
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class _Handler:
    def __init__(self, inbox: "Inbox") -> None:
        self.inbox = inbox

    async def handle_DATA(self, server, session, envelope):
        if self.inbox.delay:
            await asyncio.sleep(self.inbox.delay)  # a slow relay
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.inbox.lock:
            self.inbox.messages.append(msg)
            self.inbox.raw.append(envelope.original_content or envelope.content)
            self.inbox.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 OK"


class Inbox:
    """A real SMTP server on 127.0.0.1 that keeps every message it receives."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.raw: list[bytes] = []  # the bytes as received (DKIM checks need them unparsed)
        self.envelopes: list[tuple[str, list[str]]] = []
        self.lock = threading.Lock()
        self.delay = 0.0  # seconds each DATA waits before "250 OK"
        self.controller = _PortZeroController(_Handler(self), hostname="127.0.0.1", port=0)

    def start(self) -> "Inbox":
        """Start listening."""
        self.controller.start()
        return self

    def stop(self) -> None:
        """Stop listening."""
        self.controller.stop()

    @property
    def port(self) -> int:
        """The bound port."""
        return self.controller.port

    def wait(self, count: int = 1, timeout: float = 10) -> list[EmailMessage]:
        """Block until `count` messages arrived (or fail); for apps served in another thread."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.messages) >= count:
                    return list(self.messages)
            time.sleep(0.02)
        raise AssertionError(f"expected {count} mails, got {len(self.messages)}")

    async def arrive(self, count: int = 1, timeout: float = 10) -> list[EmailMessage]:
        """Wait (without blocking the event loop: the app sends mails after its response) for `count` messages."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.messages) >= count:
                    return list(self.messages)
            await asyncio.sleep(0.02)
        raise AssertionError(f"expected {count} mails, got {len(self.messages)}")

    def to(self, address: str) -> list[EmailMessage]:
        """Messages whose To: is this address."""
        with self.lock:
            return [m for m in self.messages if m["To"] == address]


def mail_text(msg: EmailMessage) -> str:
    """The text/plain part of a message."""
    return msg.get_body(preferencelist=("plain",)).get_content()


def mail_link(msg: EmailMessage, purpose: str) -> str:
    """The first /<purpose>/<token> link in a message's text part."""
    m = re.search(rf"https?://\S+/{purpose}/[A-Za-z0-9_.\-]+", mail_text(msg))
    assert m, f"no {purpose} link in mail"
    return m.group(0)


def csrf_of(html: str) -> str:
    """The CSRF hidden field of the first form of a page."""
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, "no csrf field"
    return m.group(1)


def make_web_config(tmp_path: Path, smtp_port: int | None = None, database: str | None = None, **web: object) -> object:
    """A validated config for web tests (email on when smtp_port is given; `database` a URL or None for SQLite)."""
    data: dict = {"bot": {"database": database or str(tmp_path / "web.db"), "public_url": "http://testserver"},
                  "web": {"admin_password": ADMIN_PASSWORD, "secret_key": "test-secret-key-0123456789",
                          "metrics_token": METRICS_TOKEN, **web}}
    if smtp_port is not None:
        data["email"] = {"host": "127.0.0.1", "port": smtp_port, "sender": "Flashbot <alerts@example.org>",
                         "tls": "none", "timeout": 5}
    return parse_config(data, tmp_path, env={})


@pytest.fixture
def smtp_inbox():
    """A started Inbox, stopped after the test."""
    inbox = Inbox().start()
    yield inbox
    inbox.stop()


@pytest.fixture
def web_config(tmp_path, smtp_inbox, database):
    """Config with email to the test inbox, an admin password and a fixed secret key."""
    return make_web_config(tmp_path, smtp_inbox.port, database)


@pytest.fixture
def web_engine(web_config):
    """The migrated test database; at the end, the delivery summary must match the rows."""
    from fixtures_delivery import assert_summary_in_step

    engine = open_db(web_config.database_url)
    yield engine
    assert_summary_in_step(engine)
    engine.dispose()


@pytest.fixture
def web_app(web_config, web_engine):
    """The Starlette app under test."""
    from bot.web import create_app

    app = create_app(web_config, web_engine)
    app.state.web.sleep = no_wait  # the failed-login delay is asserted where it matters, never waited for
    return app


async def no_wait(seconds: float) -> None:
    """Stand-in for asyncio.sleep in the failed-login delay: yields, never waits."""
    await asyncio.sleep(0)


@pytest.fixture
async def web_client(web_app):
    """An httpx client talking to the app in-process (ASGI transport), as if from 127.0.0.1."""
    transport = httpx.ASGITransport(app=web_app, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client
    await settle(web_app)


def client_for(app, ip: str = "127.0.0.1", base_url: str = "http://testserver") -> httpx.AsyncClient:
    """An httpx client talking to the app in-process (ASGI) as if connecting from `ip`."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(ip, 50000)), base_url=base_url)


async def settle(app) -> None:
    """Wait until the app's background mails are done (before asserting that none was sent)."""
    from bot.web import drain_mail

    assert await drain_mail(app, timeout=10) == 0, "a confirmation mail was still being sent after 10 s"


class LiveServer:
    """uvicorn serving an ASGI app in a thread on 127.0.0.1 (socket bound before start: port known)."""

    def __init__(self, sock) -> None:
        self.sock = sock
        self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = None
        self.thread = None

    def start(self, app) -> "LiveServer":
        """Serve app until stop()."""
        import uvicorn

        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        """Ask uvicorn to exit and wait for it."""
        if self.server is not None:
            self.server.should_exit = True
            self.thread.join(10)
        self.sock.close()


@pytest.fixture
def live_socket():
    """A listening-ready socket on 127.0.0.1:0 wrapped in a LiveServer (start it with .start(app))."""
    import socket

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    live = LiveServer(sock)
    yield live
    live.stop()
