"""Sign-up with double opt-in through the real SMTP server: mails, confirmation, abuse limits."""
from __future__ import annotations

import re

import httpx
import pytest
from fixtures_web import Inbox, csrf_of, mail_link, mail_text, make_web_config, settle

from bot.store import open_db
from bot.store import subscribers as subs
from bot.web import create_app


async def signup(client: httpx.AsyncClient, email: str, **fields) -> httpx.Response:
    """Load the form (for its CSRF field) and post it."""
    page = await client.get("/")
    data = {"csrf": csrf_of(page.text), "email": email, "mode": "both", "language": "fr", **fields}
    return await client.post("/subscribe", data=data)


def path(link: str) -> str:
    return link.replace("http://testserver", "")


async def test_full_double_opt_in_flow(web_client, smtp_inbox, web_engine):
    r = await signup(web_client, "  Alice@Example.ORG ", topics="climat; sport", mode="instant", language="en")
    assert r.status_code == 200 and "Check your inbox" not in r.text and "Vérifiez votre boîte" in r.text
    row = subs.by_email(web_engine, "alice@example.org")
    assert row["status"] == "pending" and row["mode"] == "instant" and row["language"] == "en"
    assert row["topics"] == ["climat", "sport"]
    (msg,) = await smtp_inbox.arrive(1)
    assert msg["To"] == "alice@example.org" and msg["From"] == "Flashbot <alerts@example.org>"
    assert msg["Subject"] == "Confirm your subscription to Flashbot"  # the subscriber's language
    assert msg["Message-ID"] and msg["Date"] and msg["Auto-Submitted"] == "auto-generated"
    assert msg.get_body(preferencelist=("html",)) is not None
    link = mail_link(msg, "confirm")
    assert link.startswith("http://testserver/confirm/")
    page = await web_client.get(path(link))
    # GET only shows the button: mail scanners that follow links confirm nothing.
    assert page.status_code == 200 and 'id="confirm"' in page.text and "alice@example.org" in page.text
    assert subs.by_email(web_engine, "alice@example.org")["status"] == "pending"
    done = await web_client.post(path(link), data={"csrf": csrf_of(page.text)})
    assert done.status_code == 200 and "Subscription confirmed" in done.text
    row = subs.by_email(web_engine, "alice@example.org")
    assert row["status"] == "active" and row["confirmed_at"] is not None
    again = await web_client.post(path(link), data={"csrf": csrf_of(page.text)})
    assert again.status_code == 200 and "already confirmed" in again.text
    prefs = re.search(r'id="prefs" href="([^"]+)"', done.text).group(1)
    assert (await web_client.get(path(prefs))).status_code == 200


async def test_same_answer_for_known_and_unknown_addresses(web_client, smtp_inbox, web_engine):
    subs.add(web_engine, ["known@example.org"])
    fresh = await signup(web_client, "fresh@example.org")
    known = await signup(web_client, "known@example.org")
    strip = lambda t: re.sub(r'value="[^"]*"', "", t)  # noqa: E731 - the CSRF field differs per page
    assert fresh.status_code == known.status_code == 200
    assert strip(fresh.text) == strip(known.text)
    await smtp_inbox.arrive(2)
    already = smtp_inbox.to("known@example.org")[0]
    assert "déjà inscrit" in already["Subject"]
    assert "/preferences/" in mail_text(already) and "/confirm/" not in mail_text(already)
    # An active subscriber stays exactly as it was (no downgrade to pending, no new preferences).
    assert subs.by_email(web_engine, "known@example.org")["status"] == "active"


async def test_pending_gets_a_fresh_link_that_confirms_its_own_choices(web_client, smtp_inbox, web_engine):
    await signup(web_client, "p@example.org", mode="digest")
    await signup(web_client, "p@example.org", mode="instant", topics="rugby")
    first, second = await smtp_inbox.arrive(2)
    assert mail_link(first, "confirm") != mail_link(second, "confirm")
    # The row keeps what it had until a link is used: each link confirms the sign-up it was mailed for.
    row = subs.by_email(web_engine, "p@example.org")
    assert row["status"] == "pending" and row["mode"] == "digest" and row["topics"] == []
    page = await web_client.get(path(mail_link(second, "confirm")))
    await web_client.post(path(mail_link(second, "confirm")), data={"csrf": csrf_of(page.text)})
    row = subs.by_email(web_engine, "p@example.org")
    assert row["status"] == "active" and row["mode"] == "instant" and row["topics"] == ["rugby"]
    late = await web_client.post(path(mail_link(first, "confirm")), data={"csrf": csrf_of(page.text)})
    assert late.status_code == 200 and "était déjà confirmée" in late.text
    assert subs.by_email(web_engine, "p@example.org")["mode"] == "instant"  # the earlier link changed nothing


@pytest.mark.parametrize("email", ["not-an-address", "a@b", "two@@example.org", "x" * 400 + "@example.org",
                                   "evil@example.org\r\nBcc: victim@example.org", ""])
async def test_invalid_addresses_rejected_without_mail(web_client, web_app, smtp_inbox, web_engine, email):
    r = await signup(web_client, email)
    assert r.status_code == 400 and "pas valide" in r.text
    await settle(web_app)
    assert smtp_inbox.messages == []
    assert subs.counts(web_engine) == {}


async def test_invalid_mode_is_rejected(web_client, web_app, smtp_inbox):
    r = await signup(web_client, "m@example.org", mode="everything")
    await settle(web_app)
    assert r.status_code == 400 and smtp_inbox.messages == []


async def test_honeypot_pretends_success_and_does_nothing(web_client, web_app, smtp_inbox, web_engine):
    r = await signup(web_client, "bot@example.org", website="http://spam.example")
    await settle(web_app)
    assert r.status_code == 200 and "Vérifiez votre boîte" in r.text
    assert subs.by_email(web_engine, "bot@example.org") is None and smtp_inbox.messages == []


@pytest.mark.parametrize("case", ["missing", "forged", "other-cookie", "no-cookie"])
async def test_csrf_required(web_client, web_app, smtp_inbox, web_engine, case):
    page = await web_client.get("/")
    token = csrf_of(page.text)
    data = {"email": "c@example.org", "mode": "both", "language": "fr"}
    if case == "forged":
        data["csrf"] = token[:-4] + "AAAA"
    elif case == "other-cookie":
        data["csrf"] = token
        web_client.cookies.set("fb_csrf", "another-visitor-value")
    elif case == "no-cookie":
        data["csrf"] = token
        web_client.cookies.clear()
    r = await web_client.post("/subscribe", data=data)
    assert r.status_code == 403
    await settle(web_app)
    assert subs.by_email(web_engine, "c@example.org") is None and smtp_inbox.messages == []


async def test_rate_limit_per_ip(tmp_path, smtp_inbox):
    cfg = make_web_config(tmp_path, smtp_inbox.port, signup_limit_per_ip=3)
    engine = open_db(cfg.database_url)
    app = create_app(cfg, engine)

    async def from_ip(ip: str, n: int) -> list[int]:
        transport = httpx.ASGITransport(app=app, client=(ip, 1234))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            return [(await signup(c, f"u{ip}-{i}@example.org")).status_code for i in range(n)]

    assert await from_ip("10.0.0.1", 5) == [200, 200, 200, 429, 429]
    assert await from_ip("10.0.0.2", 1) == [200]  # another client is unaffected
    await smtp_inbox.arrive(4)
    await settle(app)
    assert len(smtp_inbox.messages) == 4
    engine.dispose()


async def test_rate_limit_per_address_is_silent(tmp_path, smtp_inbox):
    cfg = make_web_config(tmp_path, smtp_inbox.port, signup_limit_per_address=2)
    engine = open_db(cfg.database_url)
    app = create_app(cfg, engine)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as c:
        pages = [await signup(c, "bombed@example.org") for _ in range(4)]
    # Subscription bombing: the victim gets at most the limit, the attacker sees no difference.
    assert [p.status_code for p in pages] == [200, 200, 200, 200]
    assert len({re.sub(r'value="[^"]*"', "", p.text) for p in pages}) == 1
    await smtp_inbox.arrive(2)
    await settle(app)
    assert len(smtp_inbox.to("bombed@example.org")) == 2
    engine.dispose()


async def test_email_off_shows_error_page(tmp_path, caplog):
    cfg = make_web_config(tmp_path, None)
    engine = open_db(cfg.database_url)
    transport = httpx.ASGITransport(app=create_app(cfg, engine))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        page = await c.get("/")
        assert "pas configuré" in page.text
        r = await c.post("/subscribe", data={"csrf": csrf_of(page.text), "email": "a@example.org"})
    assert r.status_code == 503 and "Inscription indisponible" in r.text
    assert "cannot send" in caplog.text or "not configured" in caplog.text
    assert subs.by_email(engine, "a@example.org") is None
    engine.dispose()


async def test_smtp_down_same_page_and_logged(tmp_path, caplog):
    inbox = Inbox().start()
    port = inbox.port
    inbox.stop()  # nothing listens on that port any more
    cfg = make_web_config(tmp_path, port)
    engine = open_db(cfg.database_url)
    app = create_app(cfg, engine)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as c:
        r = await signup(c, "a@example.org")
    # The page cannot depend on the SMTP outcome (it is sent before the mail is tried): the usual
    # answer, and the operator learns from the log. The person can simply sign up again.
    assert r.status_code == 200 and "Vérifiez votre boîte" in r.text
    await settle(app)
    failed = [rec for rec in caplog.records if "confirmation mail not sent" in rec.getMessage()]
    assert failed and failed[0].levelname == "ERROR" and "a@example.org" not in caplog.text
    assert subs.by_email(engine, "a@example.org")["status"] == "pending"
    engine.dispose()


async def test_english_page_and_security_headers(web_client):
    r = await web_client.get("/?lang=en")
    assert "Sign up for the newsletter" in r.text and '<html lang="en">' in r.text
    assert "script-src" not in r.headers["content-security-policy"]
    assert "default-src 'none'" in r.headers["content-security-policy"]
    assert r.headers["referrer-policy"] == "no-referrer"  # links carry tokens
    assert r.headers["x-frame-options"] == "DENY"
    fr = await web_client.get("/")
    assert "Inscrivez-vous à la newsletter" in fr.text and 'name="website"' in fr.text


async def test_source_categories_offered_as_topics(web_client, web_engine, smtp_inbox):
    from bot.store.schema import sources

    with web_engine.begin() as conn:
        conn.execute(sources.insert().values(name="Le Monde", url="http://x/feed", category="Politique"))
    page = await web_client.get("/")
    assert 'value="Politique"' in page.text
    await signup(web_client, "t@example.org", categories=["Politique", "Unknown"], topics="")
    assert subs.by_email(web_engine, "t@example.org")["topics"] == ["Politique"]
