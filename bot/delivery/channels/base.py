"""The channel protocol (listmonk's Messenger): a name, its concurrency, who it addresses, compose,
send, check, close; and the errors whose `scope` says what a failure stops. A new channel is one new
file in this package with a `from_config(cfg)` (see bot.delivery.channels.build_channels)."""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable


@dataclass
class Outgoing:
    """One message ready to leave: produced by `render`/`deliver`, consumed by a channel."""

    delivery_id: int
    recipient: str  # email address, or the Telegram chat id / @channel
    body: bytes | str  # RFC 5322 bytes for email; Telegram HTML text for Telegram
    edit_id: str | None = None  # Telegram: message id to edit instead of posting
    envelope_from: str | None = None  # SMTP MAIL FROM (defaults to the sender)
    meta: dict = field(default_factory=dict)


@dataclass
class Sent:
    """Success: the external id is the SMTP Message-ID or the Telegram message_id."""

    external_id: str | None = None


class Scope(StrEnum):
    """What a failure stops: this one message, or every message of the channel for a while."""

    RECIPIENT = "recipient"
    CHANNEL = "channel"  # the server is down or refuses us: hold every row of the channel


class DeliveryError(Exception):
    """Base of channel failures; `permanent` decides between retry and failed, `scope` what waits."""

    permanent = False

    def __init__(self, message: str, retry_after: float | None = None, scope: Scope = Scope.RECIPIENT,
                 bounce: bool = False):
        super().__init__(message)
        self.retry_after = retry_after
        self.scope = scope
        self.bounce = bounce  # a hard bounce counts towards the subscriber's bounce limit


class TemporaryError(DeliveryError):
    """Try again later (SMTP 4xx, connection lost, Telegram 429/5xx, timeouts)."""


class PermanentError(DeliveryError):
    """Never retry this message (SMTP 5xx at RCPT/DATA, Telegram 400)."""

    permanent = True

    def __init__(self, message: str, bounce: bool = False):
        super().__init__(message, bounce=bounce)


class ChannelPaused(DeliveryError):
    """The whole channel must stop until an operator acts (Telegram 403: bot removed)."""


@runtime_checkable
class Channel(Protocol):
    """What the delivery engine knows of a channel; it never names one."""

    name: str
    concurrency: int  # sends in flight at once (1 keeps a channel's posts in order)
    per_subscriber: bool  # rows address subscribers (cancelled once they leave), not one broadcast target

    def compose(self, composer: Any, row: dict, item: dict, original: str | None) -> Outgoing:
        """The message for an alert or correction row; `original` is the external id of what it corrects."""
        ...

    async def check(self) -> str:
        """Prove the credentials at start (getMe, EHLO): a short description, or a DeliveryError."""
        ...

    async def send(self, msg: Outgoing) -> Sent:
        """Deliver one message or raise a DeliveryError subclass."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...
