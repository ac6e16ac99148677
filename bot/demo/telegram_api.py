"""A local Telegram Bot API stand-in: a real HTTP server on 127.0.0.1 for tests, the demo and bench.

It answers `/bot<token>/<method>` the way api.telegram.org does for the calls Flashbot makes
(getMe, getChat, sendMessage, editMessageText, sendPhoto, editMessageCaption), validates
`parse_mode=HTML` (and caption lengths) with Telegram's rules
(see `telegram_entities`), records what was posted and edited, and can be told to misbehave:
flood control (429 + retry_after), 5xx, hangs, 403 "bot was kicked", arbitrary 400s.
"""
from __future__ import annotations

import secrets
import socketserver
import threading
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from bot.demo.telegram_methods import KICKED, SEND_METHODS, BotAPIMethods, Fault, Post, _Answer, _error, _params

__all__ = ["BotAPIStandin", "Fault", "Post", "SEND_METHODS"]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 256  # the default backlog of 5 refuses connections under a fan-out burst

    def server_bind(self):
        # Skip HTTPServer's getfqdn(): a reverse DNS lookup that can stall in a sandbox.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as python-telegram-bot's httpx pool expects

    def do_POST(self):
        """Answer one Bot API call."""
        standin: BotAPIStandin = self.server.standin
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        answer = standin._handle(self.path, self.headers.get("Content-Type", ""), body)
        if answer.hang is not None:
            standin._stopping.wait(answer.hang)
            self.close_connection = True
            return
        try:
            self.send_response(answer.status)
            self.send_header("Content-Type", answer.content_type)
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            self.wfile.write(answer.body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    do_GET = do_POST

    def log_message(self, format, *args):  # noqa: A002 - paths carry the token: never log them
        pass


class BotAPIStandin(BotAPIMethods):
    """Telegram Bot API on 127.0.0.1:<ephemeral port>; use `.base_url` as `[telegram] api_url`."""

    def __init__(self, token: str | None = None, *, strict: bool = True, username: str = "flashbot_test_bot",
                 per_chat_per_minute: int | None = None, known_chats: set[str] | None = None):
        self.token = token or f"{secrets.randbelow(9 * 10**8) + 10**8}:{secrets.token_urlsafe(26)}"
        self.strict = strict
        self.username = username
        self.per_chat_per_minute = per_chat_per_minute  # Telegram's ~20/min channel limit, if wanted
        self.known_chats = known_chats
        self._lock = threading.Condition()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.reset()

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> BotAPIStandin:
        """Bind 127.0.0.1 on an ephemeral port and serve in a daemon thread."""
        self._stopping.clear()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.standin = self
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="bot-api-standin",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; requests held by a hang fault are released."""
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(5)
            self._server = None

    def __enter__(self) -> BotAPIStandin:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    async def __aenter__(self) -> BotAPIStandin:
        return self.start()

    async def __aexit__(self, *exc) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """http://127.0.0.1:PORT"""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def base_url(self) -> str:
        """The value for `[telegram] api_url` (python-telegram-bot appends the token)."""
        return self.url + "/bot"

    # -- records ---------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget posts, edits, calls, messages and faults."""
        with self._lock:
            self._posts: list[Post] = []
            self._edits: list[Post] = []
            self._calls: list[tuple[str, int | str]] = []
            self._faults: list[Fault] = []
            self._messages: dict[tuple[str, int], object] = {}
            self._next_id: dict[str, int] = {}
            self._recent: dict[str, deque] = {}

    @property
    def posts(self) -> list[Post]:
        """Accepted sendMessage and sendPhoto calls, in order (a photo post has `.photo`)."""
        with self._lock:
            return list(self._posts)

    @property
    def edits(self) -> list[Post]:
        """Accepted editMessageText and editMessageCaption calls, in order."""
        with self._lock:
            return list(self._edits)

    @property
    def calls(self) -> list[tuple[str, int | str]]:
        """Every call as (method, HTTP status or "hang"), including refused ones."""
        with self._lock:
            return list(self._calls)

    def message(self, chat_id: str, message_id: int) -> str | None:
        """The current plain text of a posted message, or None."""
        with self._lock:
            msg = self._messages.get((str(chat_id), int(message_id)))
            return msg.plain if msg else None

    def wait_posts(self, count: int, timeout: float = 5.0) -> list[Post]:
        """Block until at least `count` posts arrived (or the timeout passed); return them."""
        with self._lock:
            self._lock.wait_for(lambda: len(self._posts) >= count, timeout)
            return list(self._posts)

    # -- fault switches --------------------------------------------------------------------
    def fail(self, fault: Fault) -> None:
        """Queue an injected answer; faults are used in the order queued."""
        with self._lock:
            self._faults.append(fault)

    def flood(self, retry_after: int = 1, count: int | None = 1) -> None:
        """Answer 429 "Too Many Requests: retry after N" with parameters.retry_after."""
        self.fail(Fault(429, f"Too Many Requests: retry after {retry_after}", count, retry_after=retry_after))

    def server_error(self, status: int = 500, count: int | None = 1) -> None:
        """Answer 500 (JSON, like the Bot API) or 502 (an HTML page, like its front proxy)."""
        self.fail(Fault(status, "Internal Server Error" if status == 500 else "Bad Gateway", count))

    def hang(self, seconds: float = 30.0, count: int | None = 1) -> None:
        """Hold requests without answering (the client times out), then drop them unprocessed."""
        self.fail(Fault(0, "hang", count, hang=seconds))

    def kick(self, count: int | None = None) -> None:
        """Answer 403 "bot was kicked from the channel chat" (until reset by default)."""
        self.fail(Fault(403, KICKED, count))

    def bad_request(self, description: str = "Bad Request: chat not found", count: int | None = 1) -> None:
        """Answer 400 with the given Telegram description."""
        self.fail(Fault(400, description, count))

    def clear_faults(self) -> None:
        """Behave normally again."""
        with self._lock:
            self._faults.clear()

    # -- request handling (called from server threads) -------------------------------------
    def _handle(self, path: str, content_type: str, body: bytes) -> _Answer:
        parts = urlsplit(path)
        prefix, _, method = parts.path.rpartition("/")
        method = method.lower()
        if not prefix.startswith("/bot"):
            return _error(404, "Not Found")
        if prefix[4:] != self.token:
            answer = _error(401, "Unauthorized")
        else:
            try:
                params = _params(parts.query, content_type, body)
            except (ValueError, UnicodeDecodeError, AttributeError, TypeError):
                params = None
            with self._lock:
                try:
                    answer = self._answer(method, params)
                except Exception as exc:  # a stand-in bug must surface as an answer, not a dropped socket
                    answer = _error(500, f"Internal Server Error: stand-in failed: {exc!r}")
        with self._lock:
            self._calls.append((method, "hang" if answer.hang is not None else answer.status))
            self._lock.notify_all()
        return answer

    def _answer(self, method: str, params: dict | None) -> _Answer:
        fault = next((f for f in self._faults if method in f.methods), None)
        if fault is not None:
            if fault.count is not None:
                fault.count -= 1
                if fault.count <= 0:
                    self._faults.remove(fault)
            return self._fault_answer(fault)
        if params is None:
            return _error(400, "Bad Request: can't parse request body")
        handler = {"getme": self._get_me, "getchat": self._get_chat, "sendmessage": self._send,
                   "editmessagetext": self._edit, "sendphoto": self._send_photo,
                   "editmessagecaption": self._edit_caption}.get(method)
        return handler(params) if handler else _error(404, "Not Found")
