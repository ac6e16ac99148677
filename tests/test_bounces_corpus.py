"""Real DSNs, ARF reports and auto-replies (sisimai's set-of-emails) through the SMTP receiver over real SMTP.

Each corpus file is one received mail: the test subscribes the address it names, records a sent
delivery to it, and sends the file to that delivery's VERP return path. tests/bounce_corpus/manifest.json
says what must follow; the effect is checked on the stored mail, the delivery and the subscriber.
"""
from __future__ import annotations

import json

import pytest

from bot.models import InboundState
from fixtures_bounces import CORPUS, process, send_bounce

MANIFEST = json.loads((CORPUS / "manifest.json").read_text(encoding="utf-8"))
OUTCOME = {"hard": "bounced", "soft": "soft-bounced", "complaint": "complained"}
STATUS_AFTER = {"hard": "suppressed", "complaint": "unsubscribed"}  # bounce_limit = 1; soft_limit = 3


def test_the_manifest_covers_the_corpus():
    files = {p.name for p in CORPUS.glob("*.eml")}
    assert files == set(MANIFEST)
    kinds = {v["kind"] for v in MANIFEST.values()}
    assert {"hard", "soft", "complaint", "autoreply", "other", "unparsed"} <= kinds
    assert len(files) >= 50


async def test_every_corpus_mail_has_its_expected_effect(world, receiver):
    failures = []
    for n, (name, want) in enumerate(sorted(MANIFEST.items())):
        sub = world.subscriber(want["address"])
        dlv = world.sent(sub)
        rcpt = world.return_path(dlv)
        if n % 3 == 0:
            rcpt = rcpt.upper()  # some MTAs change the case of the local part: the token survives it
        await send_bounce(receiver.port, (CORPUS / name).read_bytes(), rcpt)
        await process(world)
        mail = world.mails()[-1]
        got = {"state": mail["state"], "kind": mail["kind"] or "unparsed", "outcome": world.delivery(dlv)["outcome"],
               "status": world.person(sub)["status"]}
        expected = {"state": want["state"], "kind": want["kind"], "outcome": OUTCOME.get(want["kind"]),
                    "status": STATUS_AFTER.get(want["kind"], "active")}
        if want["kind"] in OUTCOME:
            got["code"], expected["code"] = mail["status"], want["status"]
            assert mail["delivery_id"] == dlv and mail["subscriber_id"] == sub, name
        if got != expected:
            failures.append(f"{name}: expected {expected}, got {got} ({mail['note']})")
    assert not failures, "\n".join(failures)


async def test_the_same_bounce_twice_counts_once(world, receiver):
    raw = (CORPUS / "lhost-postfix-04.eml").read_bytes()
    sub = world.subscriber("kijitora@example.co.jp")
    world.cfg.delivery.bounce_limit = 5
    dlv = world.sent(sub)
    for copy in (raw, raw, b"Received: from relay2.example by mx (again)\n" + raw):
        reply = await send_bounce(receiver.port, copy, world.return_path(dlv))
        assert reply[1].startswith(("2.0.0 stored", "2.0.0 already stored"))
    await process(world)
    mails = world.mails()
    assert len(mails) == 2  # the byte-identical copy is stored once
    assert [m["state"] for m in mails] == [InboundState.PROCESSED] * 2
    assert "already counted" in mails[1]["note"]
    assert world.person(sub)["bounces"] == 1 and world.delivery(dlv)["outcome"] == "bounced"


async def test_a_later_hard_bounce_upgrades_a_soft_one(world, receiver):
    sub = world.subscriber("kijitora@example.org")
    dlv = world.sent(sub)
    await send_bounce(receiver.port, (CORPUS / "lhost-postfix-05.eml").read_bytes(), world.return_path(dlv))
    await process(world)
    assert world.delivery(dlv)["outcome"] == "soft-bounced" and world.person(sub)["status"] == "active"
    await send_bounce(receiver.port, (CORPUS / "lhost-postfix-01.eml").read_bytes(), world.return_path(dlv))
    await process(world)
    assert world.delivery(dlv)["outcome"] == "bounced"
    person = world.person(sub)
    assert person["status"] == "suppressed" and "hard bounce" in person["status_reason"]
    assert world.delivery(dlv)["state"] == "sent"  # the sent history is kept


@pytest.mark.parametrize("limit", [2, 3])
async def test_soft_bounces_suppress_at_the_limit_within_the_window(world, receiver, limit):
    world.processor.limits.soft = limit
    sub = world.subscriber("kijitora@example.org")
    raw = (CORPUS / "lhost-postfix-05.eml").read_bytes()
    for i in range(limit):
        assert world.person(sub)["status"] == "active"
        dlv = world.sent(sub)
        await send_bounce(receiver.port, raw.replace(b"Subject:", f"X-Copy: {i}\nSubject:".encode(), 1), world.return_path(dlv))
        await process(world)
    person = world.person(sub)
    assert person["status"] == "suppressed" and f"{limit} soft bounces within 7 days" in person["status_reason"]
