"""Links carried by mails: one-click unsubscribe (RFC 8058), preferences, export, erasure, hostile tokens."""
from __future__ import annotations

import json

import pytest
from fixtures_web import csrf_of
from itsdangerous import TimestampSigner
from sqlalchemy import select

from bot import tokens
from bot.store import outbox
from bot.store import subscribers as subs
from bot.store import utcnow
from bot.store.schema import deliveries, items, sources

KEY = "test-secret-key-0123456789"


def token(purpose: str, row: dict, key: str = KEY) -> str:
    return tokens.make_token(key, purpose, row["id"], row["token_nonce"])


@pytest.fixture
def alice(web_engine):
    subs.add(web_engine, ["alice@example.org"], mode="instant", language="fr")
    return subs.by_email(web_engine, "alice@example.org")


@pytest.fixture
def bob(web_engine):
    subs.add(web_engine, ["bob@example.org"], language="en")
    return subs.by_email(web_engine, "bob@example.org")


def queue(engine, row: dict, states=("pending", "retry", "sent", "failed", "sending")) -> None:
    """One item and one delivery per state for this subscriber."""
    with engine.begin() as conn:
        sid = conn.execute(sources.insert().values(name=f"s{row['id']}", url="http://x")).inserted_primary_key[0]
        iid = conn.execute(items.insert().values(source_id=sid, key="k", title="FLASH INFO test",
                                                 content_hash="h", detected_at=utcnow())).inserted_primary_key[0]
        for rev, state in enumerate(states):
            outbox.insert_rows(conn, [dict(item_id=iid, channel="email", recipient=str(row["id"]),
                                           subscriber_id=row["id"], revision=rev, state=state,
                                           last_error=f"550 {row['email']} said no", created_at=utcnow())])


def states(engine, sid: int) -> list[str]:
    with engine.connect() as conn:
        return [s for (s,) in conn.execute(select(deliveries.c.state).where(deliveries.c.subscriber_id == sid)
                                           .order_by(deliveries.c.revision))]


@pytest.mark.parametrize("content_type,body", [
    ("application/x-www-form-urlencoded", "List-Unsubscribe=One-Click"),
    (None, "List-Unsubscribe=One-Click"),
])
async def test_one_click_post_unsubscribes_at_once(web_client, web_engine, alice, content_type, body):
    queue(web_engine, alice)
    headers = {"content-type": content_type} if content_type else {}
    web_client.cookies.clear()  # mail clients send no cookie and no CSRF token
    r = await web_client.post(f"/unsubscribe/{token('unsubscribe', alice)}", content=body, headers=headers)
    assert r.status_code == 200
    row = subs.get(web_engine, alice["id"])
    assert row["status"] == "unsubscribed" and row["token_nonce"] != alice["token_nonce"]
    # Queued and retrying messages are cancelled; history stays.
    assert states(web_engine, alice["id"]) == ["cancelled", "cancelled", "sent", "failed", "sending"]
    again = await web_client.post(f"/unsubscribe/{token('unsubscribe', alice)}", content=body, headers=headers)
    assert again.status_code == 200  # a second click (old mail) is still a success


async def test_one_click_multipart_body(web_client, web_engine, alice):
    r = await web_client.post(f"/unsubscribe/{token('unsubscribe', alice)}", files={"List-Unsubscribe": (None, "One-Click")})
    assert r.status_code == 200 and subs.get(web_engine, alice["id"])["status"] == "unsubscribed"


async def test_get_never_unsubscribes_and_button_needs_csrf(web_client, web_engine, alice):
    url = f"/unsubscribe/{token('unsubscribe', alice)}"
    for _ in range(3):  # a mail scanner following the link any number of times
        page = await web_client.get(url)
        assert page.status_code == 200 and 'id="unsubscribe"' in page.text
    assert subs.get(web_engine, alice["id"])["status"] == "active"
    forged = await web_client.post(url, data={"csrf": "x"})
    assert forged.status_code == 403 and subs.get(web_engine, alice["id"])["status"] == "active"
    done = await web_client.post(url, data={"csrf": csrf_of(page.text)})
    assert done.status_code == 200 and "désinscrit" in done.text
    assert subs.get(web_engine, alice["id"])["status"] == "unsubscribed"
    after = await web_client.get(url)
    assert after.status_code == 200 and "désinscrit" in after.text


def _tampered(t: str) -> str:
    return t[:-2] + ("AA" if not t.endswith("AA") else "BB")


@pytest.mark.parametrize("route", ["unsubscribe", "preferences", "confirm"])
@pytest.mark.parametrize("case", ["tampered", "other-key", "wrong-purpose", "garbage", "huge", "stale-nonce", "unknown-id"])
async def test_hostile_tokens_are_refused(web_client, web_engine, alice, route, case):
    if case == "tampered":
        t = _tampered(token(route, alice))
    elif case == "other-key":
        t = token(route, alice, key="another-key")
    elif case == "wrong-purpose":
        t = token("preferences" if route != "preferences" else "unsubscribe", alice)
    elif case == "garbage":
        t = "%3Cscript%3Ealert(1)%3C"
    elif case == "huge":
        t = "A" * 5000
    elif case == "stale-nonce":
        t = tokens.make_token(KEY, route, alice["id"], "old-nonce")
    else:
        t = tokens.make_token(KEY, route, 999999, alice["token_nonce"])
    r = await web_client.get(f"/{route}/{t}")
    assert r.status_code == 400 and "Lien invalide" in r.text
    assert "<script>" not in r.text
    if route == "unsubscribe":
        one_click = await web_client.post(f"/unsubscribe/{t}", content="List-Unsubscribe=One-Click")
        assert one_click.status_code == 400
    assert subs.get(web_engine, alice["id"])["status"] == "active"


async def test_cross_subscriber_token_only_acts_on_its_owner(web_client, web_engine, alice, bob):
    r = await web_client.post(f"/unsubscribe/{token('unsubscribe', bob)}", content="List-Unsubscribe=One-Click",
                              headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 200
    assert subs.get(web_engine, bob["id"])["status"] == "unsubscribed"
    assert subs.get(web_engine, alice["id"])["status"] == "active"
    page = await web_client.get(f"/preferences/{token('preferences', alice)}")
    assert "alice@example.org" in page.text and "bob@example.org" not in page.text


async def test_confirm_link_expires(web_client, web_engine, monkeypatch):
    row, _ = subs.signup(web_engine, "late@example.org", "both", "fr", [])
    t = token("confirm", row)
    assert (await web_client.get(f"/confirm/{t}")).status_code == 200
    real = TimestampSigner.get_timestamp
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: real(self) + 48 * 3600 + 5)
    r = await web_client.get(f"/confirm/{t}")
    assert r.status_code == 400
    r = await web_client.post(f"/confirm/{t}", data={"csrf": "whatever"})
    assert r.status_code == 400 and subs.get(web_engine, row["id"])["status"] == "pending"


async def test_preferences_update(web_client, web_engine, alice):
    url = f"/preferences/{token('preferences', alice)}"
    page = await web_client.get(url)
    assert page.status_code == 200 and '<html lang="fr">' in page.text
    r = await web_client.post(url, data={"csrf": csrf_of(page.text), "mode": "digest", "language": "en",
                                         "topics": "climat, <b>sport</b>, climat"})
    assert r.status_code == 200 and 'id="saved"' in r.text and '<html lang="en">' in r.text
    assert "&lt;b&gt;sport&lt;/b&gt;" in r.text and "<b>sport</b>" not in r.text
    row = subs.get(web_engine, alice["id"])
    assert (row["mode"], row["language"], row["topics"]) == ("digest", "en", ["climat", "<b>sport</b>"])
    bad = await web_client.post(url, data={"csrf": csrf_of(page.text), "mode": "all", "language": "en"})
    assert bad.status_code == 400 and subs.get(web_engine, alice["id"])["mode"] == "digest"
    no_csrf = await web_client.post(url, data={"mode": "instant", "language": "fr"})
    assert no_csrf.status_code == 403 and subs.get(web_engine, alice["id"])["mode"] == "digest"


async def test_export_has_everything_but_secrets(web_client, web_engine, alice):
    queue(web_engine, alice, states=("sent",))
    r = await web_client.get(f"/preferences/{token('preferences', alice)}/export")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    data = json.loads(r.text)
    assert data["subscriber"]["email"] == "alice@example.org" and data["subscriber"]["mode"] == "instant"
    assert "token_nonce" not in data["subscriber"]
    assert data["deliveries"][0]["title"] == "FLASH INFO test" and data["deliveries"][0]["state"] == "sent"


async def test_delete_erases_personal_data_and_keeps_counts(web_client, web_engine, alice, bob):
    queue(web_engine, alice)
    queue(web_engine, bob, states=("sent",))
    url = f"/preferences/{token('preferences', alice)}"
    page = await web_client.get(url)
    unticked = await web_client.post(f"{url}/delete", data={"csrf": csrf_of(page.text)})
    assert unticked.status_code == 400 and subs.get(web_engine, alice["id"])["email"] == "alice@example.org"
    r = await web_client.post(f"{url}/delete", data={"csrf": csrf_of(page.text), "confirm": "yes"})
    assert r.status_code == 200
    row = subs.get(web_engine, alice["id"])
    assert row["email"] is None and row["status"] == "deleted" and row["topics"] == []
    assert states(web_engine, alice["id"]) == ["cancelled", "cancelled", "sent", "failed", "sending"]
    with web_engine.connect() as conn:
        rows = conn.execute(select(deliveries.c.recipient, deliveries.c.last_error)
                            .where(deliveries.c.subscriber_id == alice["id"])).all()
    assert all(rec == f"deleted:{alice['id']}" and err is None for rec, err in rows)
    assert "alice" not in json.dumps(subs.export_data(web_engine, alice["id"]))
    assert (await web_client.get(url)).status_code == 400  # the link died with the data
    assert subs.get(web_engine, bob["id"])["email"] == "bob@example.org"
    # The address can sign up again later as a brand-new person.
    assert subs.signup(web_engine, "alice@example.org", "both", "fr", [])[1] == "new"


async def test_resubscribe_after_unsubscribe_needs_confirmation(web_engine, alice):
    subs.unsubscribe(web_engine, alice["id"])
    row, outcome = subs.signup(web_engine, "alice@example.org", "digest", "fr", [])
    assert outcome == "unsubscribed" and subs.get(web_engine, alice["id"])["status"] == "unsubscribed"
    assert subs.confirm(web_engine, row["id"], alice["token_nonce"]) is None  # old links stay dead
    assert subs.confirm(web_engine, row["id"], row["token_nonce"]) is None  # nor a nonce no mail carried
    # The link of this sign-up (its request's nonce) confirms, with the choices made in it.
    assert subs.confirm(web_engine, row["id"], row["confirm_nonce"]) == "confirmed"
    assert subs.get(web_engine, alice["id"])["status"] == "active"
    assert subs.get(web_engine, alice["id"])["mode"] == "digest"
