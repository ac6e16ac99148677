"""Soft bounces count towards `bounces.soft_limit` only within `bounces.soft_window_days`, on an injected
clock: each earlier bounce is processed at its own time (`run_pending(now=…)`), the last one at NOW."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from bot.store import bounces as inbox
from fixtures_bounces import CORPUS

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)
ADDRESS = "kijitora@example.org"
SOFT_DSN = (CORPUS / "lhost-postfix-05.eml").read_bytes()  # 4.x.x for kijitora@example.org (the corpus manifest says soft)
LIMIT, WINDOW = 3, 7  # bounces.soft_limit, bounces.soft_window_days in fixtures_bounces

# (case, ages in days of the earlier soft bounces, expected count with the one at NOW, expected status)
CASES = [
    ("two in the week", [6, 1], 3, "suppressed"),
    ("exactly at the window's start", [7, 3], 3, "suppressed"),
    ("a minute before the window", [7 + 1 / 1440, 3], 2, "active"),
    ("all older than the window", [30, 20, 10], 1, "active"),
    ("old ones never add up with recent ones", [25, 16, 8, 1], 2, "active"),
    ("many, only the recent ones count", [40, 6, 5], 3, "suppressed"),
]


def _mail(world, sub: int, n: int) -> dict:
    """A soft DSN (a different copy each time) to the VERP address of a new sent delivery."""
    raw = SOFT_DSN.replace(b"Subject:", f"X-Copy: {n}\nSubject:".encode(), 1)
    return {"source": "smtp", "raw": raw, "envelope_to": world.return_path(world.sent(sub))}


def _event(n: int) -> dict:
    """A Mailgun temporary failure for ADDRESS (a subscriber with no delivery: the event names none)."""
    body = {"signature": {"token": f"t{n}"}, "event-data": {
        "id": f"ev-{n}", "event": "failed", "severity": "temporary", "recipient": ADDRESS,
        "delivery-status": {"code": 452, "message": "4.2.2 mailbox full", "enhanced-code": "4.2.2"}}}
    return {"source": "mailgun", "raw": json.dumps(body).encode(), "event_id": f"ev-{n}"}


@pytest.mark.parametrize("via", ["dsn", "webhook event"])
@pytest.mark.parametrize("case, ages, count, status", CASES, ids=[c[0] for c in CASES])
def test_soft_bounces_outside_the_window_are_left_out(world, via, case, ages, count, status):
    sub = world.subscriber(ADDRESS)
    make = (lambda n: _mail(world, sub, n)) if via == "dsn" else _event
    for n, age in enumerate(sorted(ages, reverse=True)):
        inbox.store(world.engine, [make(n)])
        assert world.processor.run_pending(now=NOW - timedelta(days=age)) == {"processed": 1}
        assert world.person(sub)["status"] == "active"  # below the limit at its own time
    inbox.store(world.engine, [make(len(ages))])
    world.processor.run_pending(now=NOW)
    last = world.mails()[-1]
    assert (last["state"], last["kind"]) == ("processed", "soft")
    assert f"soft bounce {count}/{LIMIT}" in last["note"], last["note"]
    person = world.person(sub)
    assert person["status"] == status
    if status == "suppressed":
        assert f"{count} soft bounces within {WINDOW} days" in person["status_reason"]


@pytest.mark.parametrize("via", ["dsn", "webhook event"])
def test_soft_bounces_in_one_batch_count_each_other(world, via):
    sub = world.subscriber(ADDRESS)
    make = (lambda n: _mail(world, sub, n)) if via == "dsn" else _event
    inbox.store(world.engine, [make(n) for n in range(LIMIT)])
    assert world.processor.run_pending(now=NOW) == {"processed": LIMIT}  # one transaction
    assert [m["note"].split(" (via")[0].split(":")[0] for m in world.mails()] == [
        f"soft bounce {n}/{LIMIT}" + ("" if n == LIMIT else f" within {WINDOW} days") for n in range(1, LIMIT + 1)]
    assert world.person(sub)["status"] == "suppressed"
