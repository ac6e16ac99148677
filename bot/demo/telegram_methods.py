"""The Bot API methods the stand-in answers (getMe, getChat, sendMessage, editMessageText, sendPhoto,
editMessageCaption).

Split from `telegram_api` (the HTTP server, records and fault switches): this module is the
Telegram-side behaviour, with Telegram's checks in Telegram's order and its exact descriptions.
"""
from __future__ import annotations

import email.parser
import json
import re
import time
import zlib
from collections import deque
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from bot.demo.telegram_entities import MAX_LENGTH, EntityError, parse_html, utf16_len

SEND_METHODS = frozenset({"sendmessage", "editmessagetext", "sendphoto", "editmessagecaption"})
CAPTION_LENGTH = 1024  # UTF-16 code units of a photo caption after entity parsing
BAD_PHOTO = "Bad Request: wrong file identifier/HTTP URL specified"
_FILE_ID = re.compile(r"[A-Za-z0-9_\-]{20,}")
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
    photo: str | None = None  # sendPhoto: the photo URL or file id; `text` is then the caption

    @property
    def preview(self) -> bool:
        """Whether Telegram would show a link preview under this post."""
        lpo = self.link_preview_options or {}
        return not (lpo.get("is_disabled") or self.disable_web_page_preview)


@dataclass
class Fault:
    """An injected answer for the next `count` calls of `methods` (count None: until reset).

    `methods` are lower-case Bot API method names, as in `.calls` (e.g. "sendmessage")."""

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
    photo: str | None = None  # a photo message: its text is a caption


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


class BotAPIMethods:
    """Bot API method handlers; BotAPIStandin supplies the state and calls them under its lock."""

    token: str
    username: str
    strict: bool
    per_chat_per_minute: int | None
    known_chats: set[str] | None
    _posts: list[Post]
    _edits: list[Post]
    _messages: dict
    _next_id: dict
    _recent: dict

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

    def _parse_text(self, params: dict, caption: bool = False) -> tuple[_Message | None, _Answer | None]:
        """Telegram's checks on `text` (or a photo's `caption`) + `parse_mode`, in Telegram's order."""
        text = params.get("caption" if caption else "text")
        if caption and (text is None or text == ""):
            return _Message("", []), None  # a photo may go without a caption
        if not isinstance(text, str) or not text.strip():
            return None, _error(400, "Bad Request: message text is empty")
        mode = params.get("parse_mode") or None
        if mode is not None and str(mode).lower() != "html":
            return None, _error(400, f"Bad Request: unsupported parse_mode {mode!r} (the stand-in speaks HTML)")
        try:
            parsed = parse_html(text, self.strict) if mode else parse_html(_escape(text), False)
        except EntityError as exc:
            return None, _error(400, f"Bad Request: can't parse entities: {exc}")
        if caption:
            if utf16_len(parsed.text) > CAPTION_LENGTH:
                return None, _error(400, "Bad Request: message caption is too long")
            return _Message(parsed.text, parsed.entities), None
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
        text = params.get("caption", "") if msg.photo else params["text"]
        post = Post(method, key, text, params.get("parse_mode") or None, mid, msg.plain, msg.entities,
                    params.get("link_preview_options"), params.get("disable_web_page_preview"), time.time(), msg.photo)
        (self._posts if method.startswith("send") else self._edits).append(post)
        chat = self._chat(key)
        result = {"message_id": mid, "date": int(post.time), "chat": chat, "sender_chat": chat}
        if msg.photo:
            result["photo"] = [{"file_id": f"AgAC{mid:016d}", "file_unique_id": f"AQAD{mid:08d}", "width": w,
                                "height": w * 2 // 3, "file_size": w * 100} for w in (320, 800, 1280)]
            if msg.plain:
                result["caption"] = msg.plain
            if msg.entities:
                result["caption_entities"] = msg.entities
        else:
            result["text"] = msg.plain
            if msg.entities:
                result["entities"] = msg.entities
        if method.startswith("edit"):
            result["edit_date"] = int(post.time)
        return result

    def _chat_key(self, params: dict) -> tuple[str, _Answer | None]:
        key = str(params.get("chat_id", "")).strip()
        if not key:
            return key, _error(400, "Bad Request: chat_id is empty")
        return key, (_error(400, "Bad Request: chat not found") if self._chat(key) is None else None)

    def _post(self, method: str, params: dict, key: str, msg: _Message) -> _Answer:
        """A new message in the chat (flood control permitting)."""
        limited = self._rate_limited(key)
        if limited is not None:
            return limited
        mid = self._next_id[key] = self._next_id.get(key, 0) + 1
        self._messages[(key, mid)] = msg
        return _ok(self._record(method, params, key, mid, msg))

    def _send(self, params: dict) -> _Answer:
        key, err = self._chat_key(params)
        msg, err = (None, err) if err else self._parse_text(params)
        return err or self._post("sendMessage", params, key, msg)

    def _target(self, params: dict) -> tuple[str, int, _Message | None, _Answer | None]:
        """The message an edit names: (chat, message_id, message, None) or an error answer."""
        key = str(params.get("chat_id", "")).strip()
        if not key or "message_id" not in params:
            return key, 0, None, _error(400, "Bad Request: message identifier is not specified")
        try:
            mid = int(params["message_id"])
        except (TypeError, ValueError):
            return key, 0, None, _error(400, "Bad Request: message identifier is not specified")
        old = self._messages.get((key, mid))
        if old is None:
            return key, mid, None, _error(400, "Bad Request: message to edit not found")
        return key, mid, old, None

    def _edit(self, params: dict) -> _Answer:
        key, mid, old, err = self._target(params)
        if err is not None:
            return err
        if old.photo is not None:
            return _error(400, "Bad Request: there is no text in the message to edit")
        msg, err = self._parse_text(params)
        if err is not None:
            return err
        if (msg.plain, msg.entities, msg.preview) == (old.plain, old.entities, old.preview):
            return _error(400, NOT_MODIFIED)
        self._messages[(key, mid)] = msg
        return _ok(self._record("editMessageText", params, key, mid, msg))

    def _send_photo(self, params: dict) -> _Answer:
        key, err = self._chat_key(params)
        if err is not None:
            return err
        photo = params.get("photo")
        if not isinstance(photo, str) or not photo.strip():
            return _error(400, "Bad Request: there is no photo in the request")
        if not (photo.startswith(("http://", "https://")) and len(photo) <= 2048 and " " not in photo) \
                and not _FILE_ID.fullmatch(photo):
            return _error(400, BAD_PHOTO)  # data:, relative and other URLs Telegram cannot fetch
        msg, err = self._parse_text(params, caption=True)
        if err is not None:
            return err
        msg.photo = photo
        return self._post("sendPhoto", params, key, msg)

    def _edit_caption(self, params: dict) -> _Answer:
        key, mid, old, err = self._target(params)
        if err is not None:
            return err
        if old.photo is None:
            return _error(400, "Bad Request: there is no caption in the message to edit")
        msg, err = self._parse_text(params, caption=True)
        if err is not None:
            return err
        if (msg.plain, msg.entities) == (old.plain, old.entities):
            return _error(400, NOT_MODIFIED)
        msg.photo = old.photo
        self._messages[(key, mid)] = msg
        return _ok(self._record("editMessageCaption", params, key, mid, msg))


def _escape(text: str) -> str:
    """Plain text (no parse_mode) is taken literally: escape it for the shared parser."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
