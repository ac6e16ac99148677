"""Plain data passed between pipeline stages (no I/O here)."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol, TypedDict


class AlertState(StrEnum):
    """items.alert_state: none → detected | held → (approved →) queued; or cancelled by an operator."""

    NONE = "none"  # not Flash Info, or never alerted (baseline, duplicate)
    HELD = "held"  # waits for an editor's approval
    DETECTED = "detected"  # the alert is decided; its delivery rows are not created yet
    APPROVED = "approved"  # an editor approved it; its delivery rows are not created yet
    QUEUED = "queued"  # its delivery rows exist: set in the very transaction that creates them
    CANCELLED = "cancelled"


# Alerts whose fan-out is still owed (a crash between storing and queueing leaves them here).
AWAITING_FANOUT = (AlertState.DETECTED, AlertState.APPROVED)
# Alerts that went, or are going, out: a later edit is a correction, the same story elsewhere a duplicate.
ALERTED = (AlertState.DETECTED, AlertState.APPROVED, AlertState.QUEUED)


class DeliveryState(StrEnum):
    """deliveries.state: pending → sending → sent | retry | failed | cancelled."""

    PENDING = "pending"
    SENDING = "sending"  # claimed: marked BEFORE it leaves, so a crash knows what may have gone twice
    RETRY = "retry"
    SENT = "sent"
    FAILED = "failed"
    CANCELLED = "cancelled"
    # Not sent on its own (the subscriber's daily cap, or their quiet hours): the alert goes into their
    # next digest, or into a summary mail (kind 'summary') when they could receive alerts again.
    FOLDED = "folded"


class SendOutcome(StrEnum):
    """How a delivery attempt ended, as counted per 15 minutes in the `stats` table (charts, /metrics)."""

    SENT = "sent"
    FAILED = "failed"  # a permanent failure that is not a bounce, or attempts exhausted
    BOUNCED = "bounced"  # the address was refused (a hard bounce counted against the subscriber)


class PollOutcome(StrEnum):
    """How one poll of a source ended (poll_history, the source health chart, /metrics)."""

    OK = "ok"
    NOT_MODIFIED = "not_modified"
    ERROR = "error"


class SubscriberEvent(StrEnum):
    """A change in the list, counted per 15 minutes in `stats` (the subscribers chart)."""

    SIGNUP = "signup"  # a new address: web sign-up, operator add, import
    CONFIRM = "confirm"  # an address became active: confirmation click, operator add or reactivation, import
    UNSUBSCRIBE = "unsubscribe"  # an active subscriber left (unsubscribed or erased)
    SUPPRESS = "suppress"  # suppressed after hard bounces


class Progress(Protocol):
    """What a long operation reports while it runs (the CLI draws a bar from it; NO_PROGRESS ignores it)."""

    def start(self, label: str, total: int | None) -> None:
        """A new phase of `total` steps (None: unknown)."""

    def advance(self, n: int = 1) -> None:
        """`n` more steps done."""


class _NoProgress:
    def start(self, label: str, total: int | None) -> None:
        pass

    def advance(self, n: int = 1) -> None:
        pass


NO_PROGRESS: Progress = _NoProgress()


class DeliveryOutcome(StrEnum):
    """deliveries.outcome: what a `sent` message met after the hand-off (a DSN, an ARF report, a webhook)."""

    SOFT_BOUNCED = "soft-bounced"
    BOUNCED = "bounced"
    COMPLAINED = "complained"


# A delivery's outcome only ever moves up this order: the same report twice changes nothing.
OUTCOME_RANK = {None: 0, DeliveryOutcome.SOFT_BOUNCED: 1, DeliveryOutcome.BOUNCED: 2, DeliveryOutcome.COMPLAINED: 3}


class BounceKind(StrEnum):
    """What a received bounce mail or provider event reports."""

    HARD = "hard"  # permanent failure (5.x.x): the address is dead
    SOFT = "soft"  # temporary failure (4.x.x, mailbox full, policy block)
    COMPLAINT = "complaint"  # the person marked the mail as spam (ARF abuse, provider complaint)
    AUTOREPLY = "autoreply"  # out-of-office and other RFC 3834 auto-replies: ignored
    UNSUBSCRIBE = "unsubscribe"  # a mail to the List-Unsubscribe mailto address
    OTHER = "other"  # a report that needs nothing done (delivered, relayed, not-spam)


class InboundState(StrEnum):
    """bounce_mails.state: new → processed | unparsed | ignored | rejected."""

    NEW = "new"  # stored, not processed yet (a crash leaves it here; it is processed at the next pass)
    PROCESSED = "processed"  # its effect (if any) is committed
    UNPARSED = "unparsed"  # could not be classified: kept for an operator, never dropped
    IGNORED = "ignored"  # an auto-reply or a report needing nothing
    REJECTED = "rejected"  # no valid token, or it names another address: nobody was touched


DUE_STATES = (DeliveryState.PENDING, DeliveryState.RETRY)
UNFINISHED_STATES = (DeliveryState.PENDING, DeliveryState.RETRY, DeliveryState.SENDING)
# Rows that never change again (what retention may delete and compaction may fold).
FINAL_STATES = (DeliveryState.SENT, DeliveryState.FAILED, DeliveryState.CANCELLED, DeliveryState.FOLDED)


@dataclass
class Item:
    """One feed entry, normalized: what `sources` produces and `detect` classifies."""

    key: str  # stable key: guid, else link, else a content hash (rss2email's order)
    title: str
    link: str | None
    summary_html: str = ""
    content_html: str = ""
    categories: list[str] = field(default_factory=list)
    author: str | None = None
    published_at: datetime | None = None  # aware UTC
    updated_at: datetime | None = None  # aware UTC
    language: str | None = None
    content_hash: str = ""
    image_url: str | None = None  # the lead photo (absolute http(s)), see bot.ingest.images
    image_alt: str | None = None
    # Texts of this item's blocks that most items of its feed repeat (bot.render.html.furniture).
    furniture: list[str] = field(default_factory=list)
    # Filled by detect.
    is_flash: bool = False
    label: str | None = None  # e.g. "FLASH INFO"
    headline: str = ""  # title with the label removed


@dataclass
class FeedResult:
    """The outcome of fetching and parsing one source."""

    status: int | None = None  # HTTP status (None for local files or network errors)
    not_modified: bool = False
    items: list[Item] = field(default_factory=list)
    error: str | None = None  # a clear, per-source message when the poll failed
    etag: str | None = None
    last_modified: str | None = None
    ttl_seconds: int | None = None
    max_age: int | None = None
    retry_after: float | None = None  # seconds the server asked us to wait
    permanent_url: str | None = None  # new URL after a permanent redirect
    hub_url: str | None = None  # WebSub hub declared by the feed
    topic_url: str | None = None  # WebSub self URL
    feed_title: str | None = None
    bozo: str | None = None  # feedparser's complaint, when it still got entries
    elapsed: float = 0.0
    # Set when a poll has stored the items and released them (a cycle over thousands of sources
    # must not hold every parsed feed in memory): how many items the feed had.
    item_count: int | None = None

    @property
    def n_items(self) -> int:
        """Items the feed had, whether or not they were released after storing."""
        return self.item_count if self.item_count is not None else len(self.items)


class EventKind(StrEnum):
    """What storing one item meant."""

    FLASH = "flash"  # new Flash Info item to alert
    HELD = "held"  # flash waiting for approval
    UPDATE = "update"  # an alerted flash item changed: a correction
    NEW = "new"  # non-flash item stored (digest material)
    BASELINE = "baseline"  # recorded on a source's first poll, no alert
    DUPLICATE = "duplicate"  # same story already alerted from another source


ALERTING = (EventKind.FLASH, EventKind.UPDATE)  # the events that create delivery rows


@dataclass
class Event:
    """What storing one parsed item meant; the pipeline queues deliveries from these."""

    item_id: int
    kind: str  # an EventKind
    source: str
    title: str
    is_flash: bool = False


class SubscriberRef(TypedDict):
    """What composing a message needs of its subscriber."""

    id: int
    email: str | None
    status: str
    language: str | None
    token_nonce: str | None


class ClaimedRow(TypedDict):
    """A delivery row the outbox claimed (now `sending`), as the delivery engine receives it."""

    id: int
    item_id: int | None
    digest_id: int | None
    channel: str
    recipient: str
    subscriber_id: int | None
    revision: int
    kind: str  # alert | update | digest
    attempts: int
    subscriber: SubscriberRef | None


class Outcome(TypedDict, total=False):
    """One row's fate, buffered by the engine and written by bot.store.outbox.record in batches."""

    id: int
    state: DeliveryState
    item_id: int | None  # the row's group (the summary counts per group): item or digest, channel, revision
    digest_id: int | None
    channel: str
    revision: int
    inc: int  # attempts to add
    error: str | None
    next: datetime | None  # next attempt
    sent: datetime | None
    ext: str | None  # external id: Message-ID or Telegram message_id
    bounce_subscriber: int | None  # a hard bounce to count against this subscriber
