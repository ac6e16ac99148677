"""A local Telegram Bot API stand-in: a real HTTP server on 127.0.0.1 for tests, the demo and bench.

It answers `/bot<token>/<method>` the way api.telegram.org does for the calls Flashbot makes
(getMe, getChat, sendMessage, editMessageText), validates `parse_mode=HTML` with Telegram's rules
(see `telegram_entities`), records what was posted and edited, and can be told to misbehave:
flood control (429 + retry_after), 5xx, hangs, 403 "bot was kicked", arbitrary 400s.
"""
from __future__ import annotations

import email.parser
import json
import secrets
import socketserver
import threading
import time
import zlib
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from bot.testing.telegram_entities import MAX_LENGTH, EntityError, parse_html, utf16_len

SEND_METHODS = frozenset({"sendmessage", "editmessagetext"})
NOT_MODIFIED = ("Bad Request: message is not modified: specified new message content and reply markup "
                "are exactly the same as a current content and reply markup of the message")
KICKED = "Forbidden: bot was kicked from the channel chat"


@dataclass
class Post:
    """One accepted sendMessage or editMessageText call."""

    method: str
    chat_id: str
    text: str  # as sent (HTML source)
    parse_mode: str | None
    message_id: int
    plain: str  # text after entity parsing, as subscribers see it
    entities: list[dict]
    link_preview_options: dict | None
    disable_web_page_preview: bool | None
    time: float

    @property
    def preview(self) -> bool:
        """Whether Telegram would show a link preview under this post."""
        lpo = self.link_preview_options or {}
        return not (lpo.get("is_disabled") or self.disable_web_page_preview)


@dataclass
class Fault:
    """An injected answer for the next `count` calls of `methods` (count None: until reset)."""

    status: int
    description: str
    count: int | None = 1
    retry_after: int | None = None
    hang: float | None = None  # seconds to hold the request, then drop the connection unanswered
    methods: frozenset = SEND_METHODS


@dataclass
class _Answer:
    status: int
    body: bytes
    content_type: str = "application/json"
    hang: float | None = None


@dataclass
class _Message:
    plain: str
    entities: list[dict]
    preview: dict | None = field(default=None)


def _error(status: int, description: str, retry_after: int | None = None) -> _Answer:
    body = {"ok": False, "error_code": status, "description": description}
    if retry_after is not None:
        body["parameters"] = {"retry_after": retry_after}
    return _Answer(status, json.dumps(body).encode())


def _ok(result) -> _Answer:
    return _Answer(200, json.dumps({"ok": True, "result": result}, ensure_ascii=False).encode())


def _params(query: str, content_type: str, body: bytes) -> dict:
    """Bot API parameters from the query string and a JSON, form or multipart body."""
    params: dict = dict(parse_qsl(query, keep_blank_values=True))
    ctype = content_type.split(";")[0].strip().lower()
    if ctype == "application/json" and body:
        params.update(json.loads(body))
    elif ctype == "multipart/form-data":
        msg = email.parser.BytesParser().parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
        for part in msg.get_payload():
            params[part.get_param("name", header="content-disposition")] = part.get_payload(decode=True).decode()
    elif body:
        params.update(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    for key in ("link_preview_options", "reply_markup", "entities"):
        if isinstance(params.get(key), str) and params[key][:1] in "{[":
            params[key] = json.loads(params[key])
    if isinstance(params.get("disable_web_page_preview"), str):
        params["disable_web_page_preview"] = params["disable_web_page_preview"].lower() == "true"
    return params


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

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


class BotAPIStandin:
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
            self._messages: dict[tuple[str, int], _Message] = {}
            self._next_id: dict[str, int] = {}
            self._recent: dict[str, deque] = {}

    @property
    def posts(self) -> list[Post]:
        """Accepted sendMessage calls, in order."""
        with self._lock:
            return list(self._posts)

    @property
    def edits(self) -> list[Post]:
        """Accepted editMessageText calls, in order."""
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
                answer = self._answer(method, params)
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
                   "editmessagetext": self._edit}.get(method)
        return handler(params) if handler else _error(404, "Not Found")

    @staticmethod
    def _fault_answer(fault: Fault) -> _Answer:
        if fault.hang is not None:
            return _Answer(0, b"", hang=fault.hang)
        if fault.status == 502:  # the front proxy answers with HTML, not Bot API JSON
            return _Answer(502, b"<html><body><h1>502 Bad Gateway</h1></body></html>", "text/html")
        return _error(fault.status, fault.description, fault.retry_after)

    def _get_me(self, params: dict) -> _Answer:
        return _ok({"id": int(self.token.split(":")[0]), "is_bot": True, "first_name": "Flashbot",
                    "username": self.username, "can_join_groups": True, "can_read_all_group_messages": False,
                    "supports_inline_queries": False})

    def _chat(self, chat_id) -> dict | None:
        key = str(chat_id).strip()
        if not key or (self.known_chats is not None and key not in self.known_chats):
            return None
        if key.startswith("@"):
            return {"id": -(10**12) - zlib.crc32(key.lower().encode()), "type": "channel",
                    "title": key[1:], "username": key[1:]}
        if key.lstrip("-").isdigit():
            return {"id": int(key), "type": "channel", "title": f"Channel {key}"}
        return None

    def _get_chat(self, params: dict) -> _Answer:
        chat = self._chat(params.get("chat_id", ""))
        if chat is None:
            return _error(400, "Bad Request: chat not found")
        gifts = dict.fromkeys(("unlimited_gifts", "limited_gifts", "unique_gifts", "premium_subscription",
                                "gifts_from_channels"), False)
        return _ok({**chat, "accent_color_id": 0, "max_reaction_count": 11, "accepted_gift_types": gifts})

    def _parse_text(self, params: dict) -> tuple[_Message | None, _Answer | None]:
        """Telegram's checks on `text` + `parse_mode`, in Telegram's order."""
        text = params.get("text")
        if not isinstance(text, str) or not text.strip():
            return None, _error(400, "Bad Request: message text is empty")
        mode = params.get("parse_mode") or None
        if mode is not None and str(mode).lower() != "html":
            return None, _error(400, f"Bad Request: unsupported parse_mode {mode!r} (the stand-in speaks HTML)")
        try:
            parsed = parse_html(text, self.strict) if mode else parse_html(_escape(text), False)
        except EntityError as exc:
            return None, _error(400, f"Bad Request: can't parse entities: {exc}")
        if not parsed.text:
            return None, _error(400, "Bad Request: message text is empty")
        if utf16_len(parsed.text) > MAX_LENGTH:
            return None, _error(400, "Bad Request: message is too long")
        return _Message(parsed.text, parsed.entities, params.get("link_preview_options")), None

    def _rate_limited(self, key: str) -> _Answer | None:
        if not self.per_chat_per_minute:
            return None
        now, recent = time.monotonic(), self._recent.setdefault(key, deque())
        while recent and now - recent[0] >= 60:
            recent.popleft()
        if len(recent) >= self.per_chat_per_minute:
            wait = max(1, int(60 - (now - recent[0]) + 0.999))
            return _error(429, f"Too Many Requests: retry after {wait}", wait)
        recent.append(now)
        return None

    def _record(self, method: str, params: dict, key: str, mid: int, msg: _Message) -> dict:
        post = Post(method, key, params["text"], params.get("parse_mode") or None, mid, msg.plain, msg.entities,
                    params.get("link_preview_options"), params.get("disable_web_page_preview"), time.time())
        (self._posts if method == "sendMessage" else self._edits).append(post)
        chat = self._chat(key)
        result = {"message_id": mid, "date": int(post.time), "chat": chat, "sender_chat": chat, "text": msg.plain}
        if msg.entities:
            result["entities"] = msg.entities
        if method == "editMessageText":
            result["edit_date"] = int(post.time)
        return result

    def _send(self, params: dict) -> _Answer:
        key = str(params.get("chat_id", "")).strip()
        if not key:
            return _error(400, "Bad Request: chat_id is empty")
        if self._chat(key) is None:
            return _error(400, "Bad Request: chat not found")
        msg, err = self._parse_text(params)
        if err is not None:
            return err
        limited = self._rate_limited(key)
        if limited is not None:
            return limited
        mid = self._next_id[key] = self._next_id.get(key, 0) + 1
        self._messages[(key, mid)] = msg
        return _ok(self._record("sendMessage", params, key, mid, msg))

    def _edit(self, params: dict) -> _Answer:
        key = str(params.get("chat_id", "")).strip()
        if not key or "message_id" not in params:
            return _error(400, "Bad Request: message identifier is not specified")
        try:
            mid = int(params["message_id"])
        except (TypeError, ValueError):
            return _error(400, "Bad Request: message identifier is not specified")
        old = self._messages.get((key, mid))
        if old is None:
            return _error(400, "Bad Request: message to edit not found")
        msg, err = self._parse_text(params)
        if err is not None:
            return err
        if (msg.plain, msg.entities, msg.preview) == (old.plain, old.entities, old.preview):
            return _error(400, NOT_MODIFIED)
        self._messages[(key, mid)] = msg
        return _ok(self._record("editMessageText", params, key, mid, msg))


def _escape(text: str) -> str:
    """Plain text (no parse_mode) is taken literally: escape it for the shared parser."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
