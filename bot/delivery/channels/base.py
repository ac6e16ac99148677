"""The channel protocol (listmonk's Messenger): a name, send, close. A new channel is one new file."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


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


class DeliveryError(Exception):
    """Base of channel failures; `permanent` decides between retry and failed."""

    permanent = False

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class TemporaryError(DeliveryError):
    """Try again later (SMTP 4xx, connection lost, Telegram 429/5xx, timeouts)."""


class PermanentError(DeliveryError):
    """Never retry this message (SMTP 5xx at RCPT/DATA, Telegram 400)."""

    permanent = True

    def __init__(self, message: str, bounce: bool = False):
        super().__init__(message)
        self.bounce = bounce  # a hard bounce counts towards the subscriber's bounce limit


class ChannelPaused(DeliveryError):
    """The whole channel must stop until an operator acts (Telegram 403: bot removed)."""


@runtime_checkable
class Channel(Protocol):
    name: str

    async def send(self, msg: Outgoing) -> Sent:
        """Deliver one message or raise a DeliveryError subclass."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...
