"""The issue's "done when": sign up, confirm, get the next alert, one-click unsubscribe, get nothing more.

Real parts end to end: the web app, the delivery engine, the renderer and an aiosmtpd server.
"""
from __future__ import annotations

import hashlib
import re

import pytest
from fixtures_web import csrf_of, mail_link
from sqlalchemy import insert, select

from bot.store import utcnow
from bot.store import subscribers as subs
from bot.store.schema import deliveries, items, sources

deliver = pytest.importorskip("bot.delivery.engine", reason="delivery engine not present")
from bot.delivery import fanout
from bot.delivery.channels import build_channels
render = pytest.importorskip("bot.render.renderer", reason="renderer not present")


def add_flash(engine, title: str, alert_state: str = "none") -> int:
    """A Flash Info item of a 'Le Fil' source."""
    with engine.begin() as conn:
        src = conn.execute(select(sources.c.id).where(sources.c.name == "Le Fil")).scalar()
        if src is None:
            src = conn.execute(insert(sources).values(name="Le Fil", url="http://127.0.0.1/f.xml")).inserted_primary_key[0]
        return conn.execute(insert(items).values(
            source_id=src, key=title, title=f"FLASH INFO — {title}", headline=title, label="FLASH INFO",
            link="https://news.example.org/" + hashlib.md5(title.encode()).hexdigest(), summary_html=f"<p>{title}</p>",
            categories=[], content_hash=hashlib.sha256(title.encode()).hexdigest(), is_flash=True,
            alert_state=alert_state, norm_title=title.lower(), detected_at=utcnow(), published_at=utcnow(),
        )).inserted_primary_key[0]


async def deliver_all(cfg, engine) -> None:
    channels = build_channels(cfg)
    try:
        await deliver.DeliveryEngine(engine, cfg, channels, render.Renderer(cfg)).run_due()
    finally:
        for ch in channels.values():
            await ch.close()


async def subscribe_and_confirm(client, inbox, email: str) -> None:
    before = len(inbox.messages)
    page = await client.get("/")
    await client.post("/subscribe", data={"csrf": csrf_of(page.text), "email": email, "mode": "instant", "language": "fr"})
    link = mail_link((await inbox.arrive(before + 1))[-1], "confirm").replace("http://testserver", "")
    confirm_page = await client.get(link)
    assert (await client.post(link, data={"csrf": csrf_of(confirm_page.text)})).status_code == 200


async def test_subscribe_alert_one_click_unsubscribe_then_nothing(web_client, web_config, web_engine, smtp_inbox):
    await subscribe_and_confirm(web_client, smtp_inbox, "zoe@example.org")
    subs.signup(web_engine, "pending@example.org", "both", "fr", [])  # never confirmed
    first = add_flash(web_engine, "Séisme au large de Nice")
    assert fanout.queue_item(web_engine, web_config, first) >= 1
    await deliver_all(web_config, web_engine)
    alerts = [m for m in smtp_inbox.to("zoe@example.org") if "Séisme" in m["Subject"]]
    assert len(alerts) == 1 and smtp_inbox.to("pending@example.org") == []
    alert = alerts[0]
    assert alert["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url = re.search(r"<(http[^>]+/unsubscribe/[^>]+)>", alert["List-Unsubscribe"]).group(1)

    # A second alert is already queued (even retrying) when the reader clicks unsubscribe.
    queued = add_flash(web_engine, "Incendie à Marseille")
    fanout.queue_item(web_engine, web_config, queued)
    web_client.cookies.clear()
    r = await web_client.post(url.replace("http://testserver", ""), content="List-Unsubscribe=One-Click",
                              headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 200
    later = add_flash(web_engine, "Tempête en Bretagne")
    assert fanout.queue_item(web_engine, web_config, later) == 0  # nobody active wants it now
    count_before = len(smtp_inbox.messages)
    await deliver_all(web_config, web_engine)
    assert smtp_inbox.to("zoe@example.org") == [m for m in smtp_inbox.messages[:count_before] if m["To"] == "zoe@example.org"]
    zoe = subs.by_email(web_engine, "zoe@example.org")
    with web_engine.connect() as conn:
        states = {s for (s,) in conn.execute(select(deliveries.c.state).where(
            deliveries.c.subscriber_id == zoe["id"], deliveries.c.item_id.in_([queued, later])))}
    assert states == {"cancelled"}  # the alert queued before the click never went out


async def test_held_alert_waits_for_an_editor(web_client, web_config, web_engine, smtp_inbox):
    from test_web_admin import login, post

    subs.add(web_engine, ["reader@example.org"], mode="instant")
    held = add_flash(web_engine, "Explosion à Lyon", alert_state="held")
    await deliver_all(web_config, web_engine)
    assert smtp_inbox.to("reader@example.org") == []
    await login(web_client)
    page = await web_client.get("/admin")
    assert "Explosion à Lyon" in page.text and f"/admin/items/{held}/approve" in page.text
    r = await post(web_client, f"/admin/items/{held}/approve")
    assert r.status_code == 303 and r.headers["location"] == f"/admin?notice=approved&item={held}&n=1"
    await deliver_all(web_config, web_engine)
    got = await smtp_inbox.arrive(1)
    assert [m["To"] for m in got] == ["reader@example.org"] and "Explosion" in got[0]["Subject"]
