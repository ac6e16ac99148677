"""The Telegram channel: one post per item in each chat of `[telegram] channel` / `[[telegram.channels]]`
(rows carry the chat as recipient), in that chat's language; a photo post (sendPhoto, the post as
caption) when the item has a photo; edits (of the text, or of the caption) for updates.

Built on python-telegram-bot's `telegram.Bot`. The channel sends each message exactly once and
maps every failure onto the outbox's vocabulary; waiting and retrying belong to the outbox
(`bot.delivery.engine`), which honours `TemporaryError.retry_after` (Telegram's flood-control wait).
"""
from __future__ import annotations

import asyncio
import logging
import warnings
from datetime import timedelta

from telegram import Bot, LinkPreviewOptions, Message
from telegram.constants import ParseMode
from telegram.error import (BadRequest, ChatMigrated, Forbidden, InvalidToken, NetworkError, RetryAfter,
                            TelegramError, TimedOut)
from telegram.request import HTTPXRequest

from bot.delivery.channels.base import ChannelPaused, Outgoing, PermanentError, Sent, TemporaryError
from bot.delivery.compose import PHOTO_PREFIX
from bot.config import TelegramConfig

log = logging.getLogger(__name__)
# PTB >= 22.2 warns from inside RetryAfter() itself on every 429; we already read the timedelta form.
warnings.filterwarnings("ignore", message=r"(?s).*attribute `retry_after` will be of type")

NOT_MODIFIED = "message is not modified"


class _RedactTokens(logging.Filter):
    """Bot API URLs contain the token and httpx/PTB log them (INFO/DEBUG): mask every known token."""

    tokens: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record with tokens replaced; never drop it."""
        message = record.getMessage()
        if any(t in message for t in self.tokens):
            for token in self.tokens:
                message = message.replace(token, "<token>")
            record.msg, record.args = message, None
        return True


_REDACT = _RedactTokens()


def _guard_logs(token: str) -> None:
    """Attach the redacting filter to every httpx/httpcore/telegram logger (filters don't propagate)."""
    _REDACT.tokens.add(token)
    names = [n for n in list(logging.Logger.manager.loggerDict) if n.split(".")[0] in ("httpx", "httpcore", "telegram")]
    for name in names + ["httpx", "telegram.Bot"]:
        logger = logging.getLogger(name)
        if _REDACT not in logger.filters:
            logger.addFilter(_REDACT)


def retry_after_seconds(exc: RetryAfter) -> float:
    """Seconds Telegram asked us to wait (an int before PTB v22.2, a timedelta after)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PTB warns that the int form is deprecated
        value = getattr(exc, "_retry_after", None) or exc.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def _photo_problem(message: str) -> bool:
    """A sendPhoto refusal about the photo itself (unreachable URL, not an image, too big), not the chat or text."""
    text = message.lower()
    return not any(w in text for w in ("chat not found", "can't parse entities",
                                       "not enough rights", "have no rights"))


def _chat_id(recipient: str) -> int | str:
    """Numeric chat ids as int (the Bot API accepts both), `@channel` names unchanged."""
    text = recipient.strip()
    return int(text) if text.lstrip("-").isdigit() else text


class TelegramChannel:
    """Posts and edits Telegram HTML messages through the Bot API at `[telegram] api_url`."""

    name = "telegram"
    concurrency = 1  # one channel's posts go out in order
    per_subscriber = False  # one row per alert, addressed to the channel

    def __init__(self, cfg: TelegramConfig):
        self.cfg = cfg
        self._bot: Bot | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock: asyncio.Lock | None = None
        # A chat's own language, else [telegram] language (None: the renderer's [bot] language).
        self.languages = {t.chat.strip(): t.language or cfg.language for t in cfg.targets()}
        _guard_logs(cfg.token)

    def compose(self, composer, row: dict, item: dict, original: str | None) -> Outgoing:
        """The chat's post in its language, or an edit of the original post for a correction."""
        return composer.telegram(row, item, edit_id=original, language=self.languages.get(row["recipient"].strip()))

    def _redact(self, text: str) -> str:
        return text.replace(self.cfg.token, "<token>")

    def _new_bot(self) -> Bot:
        t = self.cfg.timeout
        request = HTTPXRequest(connection_pool_size=8, connect_timeout=t, read_timeout=t, write_timeout=t,
                               pool_timeout=t)
        # Files live under /file/bot<token> next to /bot<token> (api.telegram.org and local servers alike).
        file_url = self.cfg.api_url[: -len("bot")] + "file/bot" if self.cfg.api_url.endswith("/bot") else None
        return Bot(self.cfg.token, base_url=self.cfg.api_url, base_file_url=file_url or self.cfg.api_url,
                   request=request)

    async def _ready(self) -> Bot:
        """The initialized Bot for the running event loop (python-telegram-bot needs initialize())."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            # httpx connections belong to one event loop; a new loop (e.g. another asyncio.run) needs a new client.
            self._bot, self._loop, self._lock = None, loop, asyncio.Lock()
        async with self._lock:
            if self._bot is None:
                bot = self._new_bot()
                try:
                    await bot.initialize()  # getMe: also proves the token
                except BaseException:
                    await bot.shutdown()
                    raise
                self._bot = bot
        return self._bot

    async def send(self, msg: Outgoing) -> Sent:
        """Post `msg.body` (Telegram HTML) to `msg.recipient`, or edit message `msg.edit_id`."""
        text = msg.body.decode("utf-8") if isinstance(msg.body, bytes) else msg.body
        chat = _chat_id(msg.recipient)
        preview = LinkPreviewOptions(is_disabled=not self.cfg.link_preview)
        try:
            bot = await self._ready()
            if msg.edit_id:
                return await self._edit(bot, chat, msg.edit_id, text, preview)
            if msg.meta.get("photo"):
                return await self._photo(bot, chat, msg.meta["photo"], text, preview)
            sent = await bot.send_message(chat, text, parse_mode=ParseMode.HTML, link_preview_options=preview)
            return Sent(external_id=str(sent.message_id))
        except TelegramError as exc:
            raise self._map(exc, chat) from None

    async def _photo(self, bot: Bot, chat: int | str, photo: str, caption: str, preview: LinkPreviewOptions) -> Sent:
        """sendPhoto with the post as caption; a photo Telegram cannot fetch or use falls back to the text post."""
        try:
            sent = await bot.send_photo(chat, photo, caption=caption, parse_mode=ParseMode.HTML)
        except BadRequest as exc:
            if not _photo_problem(exc.message):
                raise
            log.warning("Telegram refused the photo %s (%s); posting the text instead", photo, exc.message)
            sent = await bot.send_message(chat, caption, parse_mode=ParseMode.HTML, link_preview_options=preview)
            return Sent(external_id=str(sent.message_id))
        return Sent(external_id=f"{PHOTO_PREFIX}{sent.message_id}")

    async def _edit(self, bot: Bot, chat: int | str, edit_id: str, text: str, preview: LinkPreviewOptions) -> Sent:
        """Edit a posted message (the caption of a photo post); "message is not modified" means it already says this."""
        caption = edit_id.startswith(PHOTO_PREFIX)
        try:
            message_id = int(edit_id.removeprefix(PHOTO_PREFIX))
        except ValueError:
            raise PermanentError(f"invalid Telegram message id {edit_id!r} to edit") from None
        try:
            if caption:
                result = await bot.edit_message_caption(chat_id=chat, message_id=message_id, caption=text,
                                                        parse_mode=ParseMode.HTML)
            else:
                result = await bot.edit_message_text(text, chat_id=chat, message_id=message_id,
                                                     parse_mode=ParseMode.HTML, link_preview_options=preview)
        except BadRequest as exc:
            if NOT_MODIFIED in exc.message.lower():
                return Sent(external_id=edit_id)
            raise
        mid = result.message_id if isinstance(result, Message) else message_id
        return Sent(external_id=f"{PHOTO_PREFIX}{mid}" if caption else str(mid))

    def _map(self, exc: TelegramError, chat: int | str | None = None) -> Exception:
        """Translate a python-telegram-bot error into the outbox's Temporary/Permanent/Paused."""
        text = self._redact(exc.message)
        if isinstance(exc, RetryAfter):
            wait = retry_after_seconds(exc)
            return TemporaryError(f"Telegram flood control: retry after {wait:g} s", retry_after=wait)
        if isinstance(exc, TimedOut):
            # The post may still have gone out: the outbox's retry can duplicate it, never lose it.
            return TemporaryError(f"Telegram timed out after {self.cfg.timeout:g} s: {text}")
        if isinstance(exc, BadRequest):  # before NetworkError: BadRequest subclasses it
            # PTB strips "Bad Request: " and capitalizes; give back Telegram's own description.
            return PermanentError(f"Bad Request: {text[:1].lower()}{text[1:]}")
        if isinstance(exc, Forbidden):
            where = chat if chat is not None else ", ".join(self.languages)
            return ChannelPaused(f"Telegram 403: {text} — add the bot back to {where} as an "
                                 "administrator allowed to post, then resume the channel")
        if isinstance(exc, InvalidToken):
            return ChannelPaused(f"Telegram rejected the bot token ({text}); check [telegram] token")
        if isinstance(exc, ChatMigrated):
            return PermanentError(f"Telegram chat {chat} moved to id {exc.new_chat_id}; use that id in [telegram]")
        if isinstance(exc, NetworkError):
            return TemporaryError(f"Telegram network error: {text}")
        return TemporaryError(f"Telegram error: {text}")

    async def check(self) -> str:
        """Call getMe and return the bot's @username; raise a clear DeliveryError otherwise."""
        try:
            bot = await self._ready()
            me = await bot.get_me()
        except InvalidToken as exc:
            raise ChannelPaused(f"Telegram rejected the bot token at {self.cfg.api_url} "
                                f"({self._redact(exc.message)}); check [telegram] token") from None
        except TelegramError as exc:
            raise self._map(exc) from None
        return me.username or str(me.id)

    async def close(self) -> None:
        """Shut the bot's HTTP clients down (safe to call more than once)."""
        bot, self._bot = self._bot, None
        if bot is not None and self._loop is asyncio.get_running_loop():
            await bot.shutdown()


def from_config(cfg) -> TelegramChannel | None:
    """The Telegram channel when `[telegram]` is configured."""
    return TelegramChannel(cfg.telegram) if cfg.telegram is not None else None
