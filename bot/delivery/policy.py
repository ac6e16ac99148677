"""Delivery rules with no I/O: what a failure means for its row, and whether a correction is worth sending."""
from __future__ import annotations

from dataclasses import dataclass

from bot.delivery.channels.base import DeliveryError, Scope
from bot.models import ClaimedRow, DeliveryState

UPDATE_WAIT = 5.0  # seconds a correction waits while its original is still in flight


@dataclass(frozen=True)
class Verdict:
    """What to do with a row: its next state, the error to keep, and when to try again."""

    state: DeliveryState
    error: str | None = None
    delay: float | None = None  # seconds until the next attempt (retry, or release to wait)
    channel_down: bool = False  # hold every row of the channel for `delay`
    bounce: bool = False  # count a hard bounce against the row's subscriber


def after_failure(err: DeliveryError, attempts: int, max_attempts: int, retry_delays: tuple | list) -> Verdict:
    """A failed send: failed for good (permanent, or out of attempts), else a retry after a delay."""
    text = str(err)[:1000] or type(err).__name__
    if err.permanent:
        return Verdict(DeliveryState.FAILED, text, bounce=err.bounce)
    if attempts >= max_attempts:
        return Verdict(DeliveryState.FAILED, f"gave up after {attempts} attempts: {text}")
    delay = err.retry_after if err.retry_after is not None else retry_delays[min(attempts, len(retry_delays)) - 1]
    return Verdict(DeliveryState.RETRY, text, delay=delay, channel_down=err.scope == Scope.CHANNEL)


def correction(original_state: str | None, rendered_revision: int, revision: int) -> Verdict | None:
    """A correction row: None to send it now, else a cancel or a short wait.

    `rendered_revision` is the lowest revision this process rendered the original alert at (-1 when
    unknown): a correction for a revision every original already showed is pointless."""
    if rendered_revision >= revision:
        return Verdict(DeliveryState.CANCELLED, "superseded: the original alert already showed this revision")
    if original_state == DeliveryState.SENDING:  # the original is in flight: correct it afterwards
        return Verdict(DeliveryState.PENDING, delay=UPDATE_WAIT)
    if original_state != DeliveryState.SENT:  # the original still waits (it will carry the new text) or never went
        return Verdict(DeliveryState.CANCELLED, "nothing to correct: the original was not sent")
    return None


def refusal(row: ClaimedRow, item: dict | None, per_subscriber: bool) -> str | None:
    """Why a claimed row must not be sent at all (subscriber gone, item deleted or cancelled), or None."""
    sub = row["subscriber"]
    if row["subscriber_id"] is not None or per_subscriber:
        if not sub or sub["status"] != "active" or not sub["email"]:
            return f"subscriber {sub['status'] if sub else 'deleted'}"
    if row["kind"] not in ("digest", "summary"):  # those carry a list of items, not one
        if item is None:
            return "item deleted"
        if item["alert_state"] == "cancelled":
            return "alert cancelled by an operator"
    return None
