"""Hand-written alerts through the one pipeline: sent like a feed's alert (approval, outbox, latency),
who sent it and when kept; `flashbot alert --yes` then the same story in a feed ten minutes later is
one alert, not two (the article attaches to it); a correction edits the posts and mails an update."""
from __future__ import annotations

from datetime import timedelta

import pytest
from desk_helpers import Newsroom
from fixtures_delivery import add_subscribers

from bot import pipeline
from bot.ingest.desk import Draft, problems
from bot.models import EventKind
from bot.store import desk as desk_store

SUBSCRIBERS = ["ana@example.org", "ben@example.org"]
PHOTO = "https://img.exemple.fr/matignon.jpg"
DRAFT = dict(title="Le Premier ministre démissionne", body="Il a remis sa démission au président.\n\nArticle à suivre.",
             link="https://www.exemple.fr/politique/premier-ministre-demission")


@pytest.fixture
async def room(tmp_path):
    room = Newsroom(tmp_path)
    room.publish("quotidien", [{"guid": "calm", "title": "Météo"}])
    await room.poll()  # the silent baseline
    add_subscribers(room.engine, SUBSCRIBERS, mode="instant")
    yield room
    room.stop()


async def test_a_hand_written_alert_goes_out_like_any_alert_and_keeps_its_author(room):
    event, item_id, queued = await pipeline.hand_written(room.pipe(), Draft(**DRAFT), "Jeanne Martin", "web")
    assert event.kind == EventKind.FLASH and queued == 3  # the channel post and two mails
    await room.deliver()
    (post,) = room.telegram.posts
    assert post.plain.startswith("🔴 FLASH INFO\nLe Premier ministre démissionne") and "Article à suivre." in post.plain
    assert sorted(room.smtp.recipients()) == SUBSCRIBERS
    mail = room.mails_to("ana@example.org")[0]
    assert str(mail["Subject"]) == "FLASH INFO — Le Premier ministre démissionne"
    text = mail.get_body(("plain",)).get_content()
    assert "Il a remis sa démission au président." in text and DRAFT["link"] in text
    assert " · desk" not in text  # the desk is not named as a source
    row = desk_store.get(room.engine, item_id)
    assert [(e["action"], e["editor"], e["via"], e["at"]) for e in row["log"]] == [("sent", "Jeanne Martin", "web", room.clock.now())]
    item = room.item(item_id)
    assert item["detected_at"] == room.clock.now() and item["first_telegram_at"] and item["first_email_at"]  # latency trail


async def test_approval_is_required_for_hand_written_alerts_too(tmp_path):
    room = Newsroom(tmp_path, flash={"require_approval": True})
    try:
        add_subscribers(room.engine, SUBSCRIBERS, mode="instant")
        event, item_id, queued = await pipeline.hand_written(room.pipe(), Draft(**DRAFT), "Jeanne", "cli")
        assert (event.kind, queued, room.rows()) == (EventKind.HELD, 0, [])
        assert await pipeline.approve(room.pipe(), item_id) == 3
        await room.deliver()
        assert len(room.telegram.posts) == 1 and len(room.smtp.messages) == 2
    finally:
        room.stop()


LATER = [
    # (case, the feed's entry ten minutes later, whether the alert gains the article's link)
    ("same link, another title", {"guid": "pm", "title": "FLASH INFO : Démission à Matignon, le chef du gouvernement s'en va",
                                  "link": DRAFT["link"]}, False),
    ("same title, as an ordinary article", {"guid": "pm", "title": "Le Premier ministre démissionne",
                                            "link": "https://www.exemple.fr/pm-article"}, True),
    ("similar flash title", {"guid": "pm", "title": "FLASH INFO : Le Premier ministre a démissionné",
                             "link": "https://www.exemple.fr/pm"}, True),
]


@pytest.mark.parametrize("case,entry,gains_link", LATER, ids=[c[0] for c in LATER])
async def test_cli_alert_then_the_same_story_in_a_feed_is_one_alert(room, case, entry, gains_link):
    args = ["alert", "--title", DRAFT["title"], "--body", "Article à suivre.", "--by", "Paul", "--yes"]
    if not gains_link:
        args[5:5] = ["--link", DRAFT["link"]]
    sent = room.cli(*args)
    assert sent.returncode == 0, sent.stderr
    assert "alert sent: item" in sent.stdout and "3 delivery row(s) queued by Paul" in sent.stdout
    (alert,) = [r for r in desk_store.recent(room.engine)]
    room.clock.set(alert["detected_at"] + timedelta(minutes=10))  # the article, ten minutes later
    room.publish("quotidien", [entry, {"guid": "calm", "title": "Météo"}])
    assert await room.poll() == 0  # nothing queued for the article
    await room.deliver()
    assert len(room.telegram.posts) == 1 and sorted(room.smtp.recipients()) == SUBSCRIBERS  # one alert, not two
    found = desk_store.get(room.engine, alert["id"])
    (attached,) = found["attached"]
    assert attached["source_name"] == "quotidien" and found["also_sources"] == ["quotidien"]
    assert found["link"] == (entry["link"] if gains_link else DRAFT["link"])


async def test_a_correction_edits_the_post_and_mails_those_who_got_it(room):
    draft = Draft(**DRAFT, image_url=PHOTO, image_alt="Matignon")
    _, item_id, _ = await pipeline.hand_written(room.pipe(), draft, "Jeanne", "web")
    await room.deliver()
    (post,) = room.telegram.posts
    assert post.method == "sendPhoto" and post.photo == PHOTO  # short enough for a caption
    add_subscribers(room.engine, ["late@example.org"], mode="instant")  # joined after the alert: no update
    room.clock.advance(300)
    fixed = Draft(**{**DRAFT, "title": "Le Premier ministre a remis sa démission"}, image_url=PHOTO, image_alt="Matignon")
    event, queued = await pipeline.correct_hand_written(room.pipe(), item_id, fixed, "Luc", "web")
    assert event.kind == EventKind.UPDATE and queued == 3
    await room.deliver()
    (edit,) = room.telegram.edits
    assert edit.method == "editMessageCaption" and edit.message_id == post.message_id
    assert "a remis sa démission" in room.telegram.message("@flash", post.message_id)
    updates = [m for m in room.smtp.messages if "Mise à jour" in m.parsed()["Subject"]]
    assert sorted(r for m in updates for r in m.rcpt_tos) == SUBSCRIBERS
    log = desk_store.get(room.engine, item_id)["log"]
    assert [(e["action"], e["editor"], e["revision"]) for e in log] == [("sent", "Jeanne", 0), ("edited", "Luc", 1)]
    same, queued = await pipeline.correct_hand_written(room.pipe(), item_id, fixed, "Luc", "web")
    assert (same, queued) == (None, 0)  # nothing changed: nothing sent


async def test_the_same_preview_sent_twice_is_one_alert(room):
    draft = Draft(**DRAFT, nonce="a" * 32)
    first = await pipeline.hand_written(room.pipe(), draft, "Jeanne", "web")
    second = await pipeline.hand_written(room.pipe(), draft, "Jeanne", "web")
    assert second == (None, first[1], 0)
    assert len(room.rows(channel="telegram")) == 1


async def test_a_story_already_alerted_from_a_feed_is_a_duplicate_unless_forced(room):
    room.publish("quotidien", [{"guid": "pm", "title": f"FLASH INFO : {DRAFT['title']}"}, {"guid": "calm", "title": "Météo"}])
    await room.poll()
    event, item_id, queued = await pipeline.hand_written(room.pipe(), Draft(**DRAFT), "Jeanne", "web")
    assert (event.kind, queued) == (EventKind.DUPLICATE, 0)
    assert desk_store.get(room.engine, item_id)["duplicate_of"] is not None
    event, _, queued = await pipeline.hand_written(room.pipe(), Draft(**DRAFT, force=True), "Jeanne", "web")
    assert event.kind == EventKind.FLASH and queued == 3


async def test_channels_chosen_by_the_editor(room):
    _, _, queued = await pipeline.hand_written(room.pipe(), Draft(**DRAFT, email=False), "J", "web")
    assert queued == 1 and [r["channel"] for r in room.rows()] == ["telegram"]
    _, _, queued = await pipeline.hand_written(room.pipe(), Draft(**{**DRAFT, "title": "Autre sujet"}, telegram=[]), "J", "web")
    assert queued == 2 and {r["channel"] for r in room.rows()[1:]} == {"email"}


PROBLEMS = [
    (dict(title="  "), ["desk_err_title"]),
    (dict(title="x" * 301), ["desk_err_title_long"]),
    (dict(title="t", body="x" * 2001), ["desk_err_body_long"]),
    (dict(title="t", link="javascript:alert(1)"), ["desk_err_link"]),
    (dict(title="t", link="/relative"), ["desk_err_link"]),
    (dict(title="t", image_url="data:image/png;base64,AA"), ["desk_err_image"]),
    (dict(title="t", language="es"), ["desk_err_language"]),
    (dict(title="t", telegram=["@unknown"]), ["desk_err_chat"]),
    (dict(title="t", email=False, telegram=[]), ["desk_err_no_channel"]),
    (dict(title="t", topics=[f"t{i}" for i in range(21)]), ["desk_err_topics"]),
    (dict(title="FLASH INFO : ok", link="https://x.fr/a", telegram=["@flash"]), []),
]


@pytest.mark.parametrize("fields,errors", PROBLEMS)
def test_draft_problems(room, fields, errors):
    assert problems(Draft(**fields), room.cfg) == errors


def test_cli_previews_and_asks_before_sending(room):
    no = room.cli("alert", "--title", "FLASH INFO : Séisme à Nice", "--body", "Magnitude 5.", "--image", PHOTO, input="n\n")
    assert no.returncode == 1 and "not sent" in no.stdout
    assert "Subject: FLASH INFO — Séisme à Nice" in no.stdout and "Magnitude 5." in no.stdout
    assert f"Telegram @flash (fr, photo {PHOTO} with caption)" in no.stdout and "Send this alert?" in no.stdout
    assert room.rows() == [] and desk_store.recent(room.engine) == []
    yes = room.cli("alert", "--title", "FLASH INFO : Séisme à Nice", "--channel", "telegram", input="y\n")
    assert yes.returncode == 0 and "1 delivery row(s) queued" in yes.stdout
    bad = room.cli("alert", "--title", "x", "--link", "ftp://x", "--yes")
    assert bad.returncode == 2 and "The link must be a full http or https address." in bad.stderr
    typo = room.cli("alert", "--title", "x", "--channel", "sms", "--yes")
    assert typo.returncode == 2 and "unknown channel 'sms'" in typo.stderr
