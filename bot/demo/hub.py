"""A small W3C WebSub hub on 127.0.0.1 for tests and the demo.

It accepts subscribe/unsubscribe requests (202, then verifies intent with a GET carrying
hub.challenge to the callback), distributes content to verified subscribers with
`X-Hub-Signature: <algo>=<HMAC>` and `Link: rel=hub / rel=self` headers, and has a publish
endpoint (`hub.mode=publish&hub.url=TOPIC`: the hub fetches the topic and distributes it) plus a
Python `publish(topic, body)` for direct use. Switches: `algorithm`, `tamper` (wrong signatures),
`deny` (refuse subscriptions with a `denied` callback).
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl

import httpx


@dataclass
class Subscription:
    """One verified subscription."""

    callback: str
    topic: str
    secret: str | None
    lease_seconds: int
    expires_at: float


@dataclass
class Delivery:
    """One content distribution attempt to a subscriber."""

    callback: str
    status: int | None
    at: float = field(default_factory=time.time)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "_Server"

    def log_message(self, fmt, *args) -> None:  # the hub's own logs replace stderr noise
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        form = dict(parse_qsl(self.rfile.read(length).decode("utf-8", "replace")))
        status, text = self.server.owner.handle(form)
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: "Hub"


class Hub:
    """The hub; use as a context manager or start()/stop(). `url` is the hub endpoint."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, default_lease: int = 3600):
        self._server = _Server((host, port), _Handler)
        self._server.owner = self
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self.default_lease = default_lease
        self.subscriptions: dict[tuple[str, str], Subscription] = {}
        self.requests: list[dict] = []  # every hub request received (form fields)
        self.deliveries: list[Delivery] = []
        self.algorithm = "sha256"
        self.tamper = False
        self.deny = False
        self._http = httpx.Client(timeout=10)

    @property
    def url(self) -> str:
        """The hub endpoint URL."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/"

    def start(self) -> "Hub":
        """Serve in a background thread."""
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="websub-hub", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the client."""
        self._server.shutdown()
        self._server.server_close()
        self._http.close()

    def __enter__(self) -> "Hub":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def handle(self, form: dict) -> tuple[int, str]:
        """Answer one hub request (form fields) with (status, text)."""
        with self._lock:
            self.requests.append(form)
        mode = form.get("hub.mode")
        if mode in ("subscribe", "unsubscribe"):
            if not form.get("hub.callback", "").startswith(("http://", "https://")) or not form.get("hub.topic"):
                return 400, "hub.callback and hub.topic are required"
            threading.Thread(target=self._verify, args=(dict(form),), daemon=True).start()
            return 202, "accepted"
        if mode == "publish":
            topic = form.get("hub.url") or form.get("hub.topic")
            if not topic:
                return 400, "hub.url is required"
            resp = self._http.get(topic)
            self.publish(topic, resp.content, resp.headers.get("content-type", "application/atom+xml"))
            return 204, ""
        return 400, f"unsupported hub.mode {mode!r}"

    def _verify(self, form: dict) -> None:
        mode, topic, callback = form["hub.mode"], form["hub.topic"], form["hub.callback"]
        if self.deny and mode == "subscribe":
            self._http.get(callback, params={"hub.mode": "denied", "hub.topic": topic, "hub.reason": "denied by test hub"})
            return
        challenge = secrets.token_urlsafe(16)
        lease = int(form.get("hub.lease_seconds") or self.default_lease)
        params = {"hub.mode": mode, "hub.topic": topic, "hub.challenge": challenge}
        if mode == "subscribe":
            params["hub.lease_seconds"] = str(lease)
        try:
            resp = self._http.get(callback, params=params)
        except httpx.HTTPError:
            return
        if not (200 <= resp.status_code < 300 and resp.text == challenge):
            return  # intent not confirmed: nothing changes
        with self._changed:
            if mode == "subscribe":
                self.subscriptions[(callback, topic)] = Subscription(
                    callback, topic, form.get("hub.secret"), lease, time.time() + lease)
            else:
                self.subscriptions.pop((callback, topic), None)
            self._changed.notify_all()

    def wait_subscribed(self, topic: str, count: int = 1, timeout: float = 5.0) -> list[Subscription]:
        """Block until `count` verified subscriptions to the topic exist (TimeoutError otherwise)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                subs = [s for s in self.subscriptions.values() if s.topic == topic]
                if len(subs) >= count:
                    return subs
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no verified subscription to {topic} after {timeout}s")
                self._changed.wait(left)

    def signature(self, secret: str, body: bytes) -> str:
        """The X-Hub-Signature header for a body (wrong on purpose when `tamper` is set)."""
        digest = hmac.new(secret.encode(), body, getattr(hashlib, self.algorithm)).hexdigest()
        if self.tamper:
            digest = digest[::-1]
        return f"{self.algorithm}={digest}"

    def publish(self, topic: str, body: bytes, content_type: str = "application/atom+xml") -> list[Delivery]:
        """Distribute content to every live subscriber of the topic; returns one Delivery each."""
        with self._lock:
            subs = [s for s in self.subscriptions.values() if s.topic == topic and s.expires_at > time.time()]
        out = []
        for sub in subs:
            headers = {"Content-Type": content_type, "Link": f'<{self.url}>; rel="hub", <{topic}>; rel="self"'}
            if sub.secret:
                headers["X-Hub-Signature"] = self.signature(sub.secret, body)
            try:
                status = self._http.post(sub.callback, content=body, headers=headers).status_code
            except httpx.HTTPError:
                status = None
            out.append(Delivery(sub.callback, status))
        with self._lock:
            self.deliveries += out
        return out
