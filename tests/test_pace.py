"""Caps and quiet hours per subscriber, with an injected clock: the rules across a day boundary and
both DST changes in Europe/Paris, then a night of alerts through the real pipeline, digest and outbox:
nothing lost, nothing sent twice, the folded alerts in the next digest or in one summary mail."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from desk_helpers import Newsroom
from fixtures_delivery import add_subscribers
from sqlalchemy import select, update

from bot import digest
from bot.delivery import quiet
from bot.store import outbox
from bot.store.schema import digest_items, subscribers

UTC = timezone.utc


def at(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def limits(cap=0, start=None, end=None, tz=None, site=0) -> quiet.Limits:
    return quiet.Limits.of({"max_per_day": cap, "quiet_start": start, "quiet_end": end, "timezone": tz}, site, "Europe/Paris")


GATE = [
    # (case, limits, now (UTC), alerts already today, expected: None = send, else (reason word, summary due UTC))
    ("no limits", limits(), at(2026, 3, 28, 22, 30), 50, None),
    ("before quiet hours", limits(start="23:00", end="07:00"), at(2026, 3, 28, 21, 59), 0, None),
    ("23:30 CET is quiet; ends 07:00 CEST after the spring DST jump",
     limits(start="23:00", end="07:00"), at(2026, 3, 28, 22, 30), 0, ("quiet", at(2026, 3, 29, 5, 0))),
    ("03:30 CEST, just after the jump", limits(start="23:00", end="07:00"), at(2026, 3, 29, 1, 30), 0,
     ("quiet", at(2026, 3, 29, 5, 0))),
    ("07:00 CEST sharp is no longer quiet", limits(start="23:00", end="07:00"), at(2026, 3, 29, 5, 0), 0, None),
    ("23:30 CEST before the autumn change ends 07:00 CET (a 25-hour day)",
     limits(start="23:00", end="07:00"), at(2026, 10, 24, 21, 30), 0, ("quiet", at(2026, 10, 25, 6, 0))),
    ("02:30 twice in autumn: both are quiet", limits(start="23:00", end="07:00"), at(2026, 10, 25, 1, 30), 0,
     ("quiet", at(2026, 10, 25, 6, 0))),
    ("daytime quiet hours", limits(start="12:00", end="14:00"), at(2026, 6, 1, 10, 30), 0, ("quiet", at(2026, 6, 1, 12, 0))),
    ("under the cap", limits(site=3), at(2026, 3, 28, 15, 0), 2, None),
    ("cap reached: summary at the next local midnight", limits(site=3), at(2026, 3, 28, 15, 0), 3,
     ("cap", at(2026, 3, 28, 23, 0))),
    ("cap reached with quiet hours: at their end", limits(site=3, start="23:00", end="07:00"), at(2026, 3, 28, 15, 0), 3,
     ("cap", at(2026, 3, 29, 5, 0))),
    ("own cap lowers the site's", limits(cap=1, site=3), at(2026, 3, 28, 15, 0), 1, ("cap", at(2026, 3, 28, 23, 0))),
    ("own cap cannot raise it", limits(cap=10, site=3), at(2026, 3, 28, 15, 0), 3, ("cap", at(2026, 3, 28, 23, 0))),
    ("own cap without a site cap", limits(cap=2), at(2026, 3, 28, 15, 0), 2, ("cap", at(2026, 3, 28, 23, 0))),
    ("the subscriber's own zone", limits(start="22:00", end="06:00", tz="America/New_York"), at(2026, 3, 28, 15, 0), 0, None),
    ("New York night", limits(start="22:00", end="06:00", tz="America/New_York"), at(2026, 3, 29, 3, 0), 0,
     ("quiet", at(2026, 3, 29, 10, 0))),
]


@pytest.mark.parametrize("case,rule,now,sent,expected", GATE, ids=[g[0] for g in GATE])
def test_gate(case, rule, now, sent, expected):
    fold = quiet.gate(now, rule, sent)
    if expected is None:
        assert fold is None
    else:
        assert expected[0] in fold.reason and fold.due == expected[1]


def test_a_day_is_a_local_day_even_when_it_lasts_23_or_25_hours():
    rule = limits()
    assert rule.day_start(at(2026, 3, 29, 12, 0)) == at(2026, 3, 28, 23, 0)
    assert rule.next_day(at(2026, 3, 29, 12, 0)) == at(2026, 3, 29, 22, 0)  # 23 hours later
    assert rule.next_day(at(2026, 10, 25, 12, 0)) - rule.day_start(at(2026, 10, 25, 12, 0)) == (
        at(2026, 10, 26, 0, 0) - at(2026, 10, 25, 0, 0)) + (at(2026, 1, 1, 1) - at(2026, 1, 1))  # 25 hours


PARSE = [
    (quiet.parse_hhmm, "7:00", "07:00"), (quiet.parse_hhmm, "23h30", "23:30"), (quiet.parse_hhmm, "24:00", ValueError),
    (quiet.parse_hhmm, "7", ValueError), (quiet.parse_range, "23:00-07:00", ("23:00", "07:00")),
    (quiet.parse_range, "23:00 – 7:00", ("23:00", "07:00")), (quiet.parse_range, "", (None, None)),
    (quiet.parse_range, "07:00-07:00", ValueError), (quiet.parse_range, "tonight", ValueError),
    (quiet.parse_cap, "", None), (quiet.parse_cap, "0", None), (quiet.parse_cap, "5", 5), (quiet.parse_cap, "-1", ValueError),
    (quiet.parse_cap, "1001", ValueError), (quiet.parse_zone, "Europe/Paris", "Europe/Paris"),
    (quiet.parse_zone, "", None), (quiet.parse_zone, "Mars/Olympus", ValueError), (quiet.parse_zone, "../etc/passwd", ValueError),
]


@pytest.mark.parametrize("fn,text,expected", PARSE)
def test_parsing(fn, text, expected):
    if expected is ValueError:
        with pytest.raises(quiet.LimitError):
            fn(text)
    else:
        assert fn(text) == expected


# A Saturday night in Paris across the spring DST change (02:00 CET → 03:00 CEST on 29 March 2026).
NIGHT = [  # (UTC time, guid, title)
    (at(2026, 3, 28, 20, 0), "a1", "Séisme à Nice"),
    (at(2026, 3, 28, 21, 0), "a2", "Incendie dans un entrepôt à Lyon"),
    (at(2026, 3, 28, 22, 30), "a3", "Grève surprise à la SNCF"),
    (at(2026, 3, 28, 22, 50), "a4", "Crue historique de la Seine"),
    (at(2026, 3, 29, 0, 30), "a5", "Tempête sur la Bretagne"),
    (at(2026, 3, 29, 1, 30), "a6", "Panne d'électricité géante dans le Nord"),
    (at(2026, 3, 29, 5, 30), "a7", "Le Sénat rejette la réforme"),
]
DIGEST_AT = at(2026, 3, 29, 5, 0)  # 07:00 CEST, the [digest] schedule


@pytest.fixture
async def night(tmp_path):
    room = Newsroom(tmp_path, delivery={"max_alerts_per_day": 3})
    room.publish("quotidien", [{"guid": "calm", "title": "Météo"}])
    room.clock.set(at(2026, 3, 28, 19, 0))
    await room.poll()  # the silent baseline
    digest.note_first_start(room.engine, room.clock.now())
    alice, = add_subscribers(room.engine, ["alice@example.org"], mode="both")  # the site's cap (3)
    bob, = add_subscribers(room.engine, ["bob@example.org"], mode="instant")  # quiet 23:00–07:00
    carl, = add_subscribers(room.engine, ["carl@example.org"], mode="instant")  # own cap 1, New York
    with room.engine.begin() as conn:
        conn.execute(update(subscribers).where(subscribers.c.id == bob).values(quiet_start="23:00", quiet_end="07:00"))
        conn.execute(update(subscribers).where(subscribers.c.id == carl).values(max_per_day=1, timezone="America/New_York"))
    entries = []
    for when, guid, title in NIGHT:
        room.clock.set(when)
        entries.insert(0, {"guid": guid, "title": f"FLASH INFO : {title}"})
        room.publish("quotidien", [*entries, {"guid": "calm", "title": "Météo"}])
        await room.poll()
    room.ids = {"alice": alice, "bob": bob, "carl": carl}
    yield room
    room.stop()


def _instant(room, sid) -> list[str]:
    return sorted(room.item(r["item_id"])["key"] for r in room.rows(subscriber_id=sid, kind="alert", state="pending"))


def _folded(room, sid) -> list[str]:
    return sorted(room.item(r["item_id"])["key"] for r in room.rows(subscriber_id=sid, kind="alert", state="folded"))


async def test_caps_and_quiet_hours_across_midnight_and_the_dst_jump(night):
    ids = night.ids
    # alice: 3 a day; her day starts at 00:00 CET (23:00 UTC): a4 is the 4th of Saturday, a5–a7 Sunday's.
    assert _instant(night, ids["alice"]) == ["a1", "a2", "a3", "a5", "a6", "a7"] and _folded(night, ids["alice"]) == ["a4"]
    # bob: quiet from 23:00 CET to 07:00 CEST (7 real hours): a3–a6 wait, a7 (07:30 CEST) goes.
    assert _instant(night, ids["bob"]) == ["a1", "a2", "a7"] and _folded(night, ids["bob"]) == ["a3", "a4", "a5", "a6"]
    # carl: 1 a day in New York, where Saturday runs until 04:00 UTC.
    assert _instant(night, ids["carl"]) == ["a1", "a7"] and _folded(night, ids["carl"]) == ["a2", "a3", "a4", "a5", "a6"]
    assert night.rows(subscriber_id=ids["alice"], kind="summary") == []  # alice gets digests: the digest carries a4

    (bob_summary,) = night.rows(subscriber_id=ids["bob"], kind="summary")
    assert bob_summary["state"] == "pending" and bob_summary["next_attempt_at"] == at(2026, 3, 29, 5, 0)  # 07:00 CEST
    (carl_summary,) = night.rows(subscriber_id=ids["carl"], kind="summary")
    assert carl_summary["next_attempt_at"] == at(2026, 3, 29, 4, 0)  # New York's midnight: his next day
    summary_ids = {bob_summary["id"], carl_summary["id"]}
    before = outbox.claim(night.engine, 100, now=at(2026, 3, 29, 3, 59))  # nothing of theirs is due before
    assert not summary_ids & {r["id"] for r in before}
    outbox.recover(night.engine)  # hand the claimed rows back


async def test_nothing_lost_nothing_twice_and_the_folded_alerts_in_the_next_digest(night):
    run = digest.send_due(night.engine, night.cfg, now=DIGEST_AT.replace(minute=1))
    assert run and run["queued"] == 1  # alice's digest (bob and carl take no digest)
    await night.deliver()
    keys = {guid: title for _, guid, title in NIGHT}
    for who in ("alice", "bob", "carl"):
        mails = night.mails_to(f"{who}@example.org")
        subjects = [str(m["Subject"]) for m in mails]
        seen: list[str] = []
        for m, subject in zip(mails, subjects):
            text = m.get_body(("plain",)).get_content()
            seen += [g for g, title in keys.items() if title in text and ("essentiel" not in subject or g in _folded(night, night.ids[who]))]
        assert sorted(seen) == sorted(keys), (who, subjects)  # every alert reached them once, one way or another
    bob = [str(m["Subject"]) for m in night.mails_to("bob@example.org")]
    assert len(bob) == 4 and sum("mises de côté (4)" in s for s in bob) == 1  # a1, a2, a7 and one summary of a3–a6
    alice_digest = [m for m in night.mails_to("alice@example.org") if "essentiel" in str(m["Subject"])]
    assert len(alice_digest) == 1 and "Crue historique de la Seine" in alice_digest[0].get_body(("plain",)).get_content()
    with night.engine.connect() as conn:  # the summary's items are recorded like a digest's: never twice
        pairs = conn.execute(select(digest_items.c.subscriber_id, digest_items.c.item_id)).all()
    assert len(pairs) == len(set(pairs))
    assert {r["state"] for r in night.rows() if r["state"] not in ("folded",)} == {"sent"}
    await night.deliver()  # a second pass sends nothing more
    assert len(night.mails_to("bob@example.org")) == 4


async def test_a_correction_waits_for_the_end_of_quiet_hours(night):
    night.clock.set(at(2026, 3, 29, 2, 0))  # 04:00 CEST: bob is asleep, a1 (which he got) is corrected
    night.publish("quotidien", [{"guid": "a1", "title": "FLASH INFO : Séisme à Nice", "description": "<p>Bilan revu.</p>"}])
    await night.poll()
    corrections = {r["subscriber_id"]: r for r in night.rows(kind="update", channel="email")}
    assert corrections[night.ids["bob"]]["next_attempt_at"] == at(2026, 3, 29, 5, 0)
    assert corrections[night.ids["alice"]]["next_attempt_at"] == at(2026, 3, 29, 2, 0)
