"""The dashboard speaks French by default, English on request (remembered), with Babel dates and no leftovers."""
from __future__ import annotations

import re
from datetime import datetime, timezone
from html.parser import HTMLParser

import httpx
import pytest
from fixtures_web import csrf_of, make_web_config
from sqlalchemy import update
from test_web_admin import login, post, seed

from bot.store import open_db
from bot.store import subscribers as subs
from bot.store.schema import items, sources
from bot.web import create_app

PAGES = ["/admin", "/admin/sources", "/admin/subscribers", "/admin/failures", "/admin/bounces"]
FIXED = datetime(2026, 11, 29, 6, 10, 5, tzinfo=timezone.utc)  # 07:10:05 in Paris, 01:10:05 in New York

# Words an English-only leftover would show on a French page (whole words, case-insensitive).
ENGLISH_ONLY = ["overview", "subscribers", "failures", "log out", "log in", "password", "waiting", "approval",
                "approve", "cancel", "deliveries", "delivery", "channel", "channels", "last", "all time", "median",
                "after", "recent", "items", "item", "alert", "alerts", "first", "resume", "paused", "running",
                "name", "status", "poll", "success", "next", "previous", "error", "failing", "search", "any",
                "matching", "address", "topics", "origin", "bounces", "created", "confirmed", "erased", "nobody",
                "failed", "kind", "recipient", "attempts", "retry", "selected", "select", "pending", "sent",
                "cancelled", "held", "queued", "active", "unsubscribed", "suppressed", "deleted", "instant",
                "digest", "both", "dashboard", "disabled", "operator", "times", "zone", "utc", "am", "pm",
                "wrong", "too many", "wait", "approved", "stopped", "unknown", "yet", "no", "by", "the", "of",
                "and", "set", "then", "restart", "environment"]
# And the other way round: French words that must not show on an English page.
FRENCH_ONLY = ["abonnés", "échecs", "valider", "annuler", "envois", "en attente", "rechercher", "résultat",
               "heures", "nov.", "se déconnecter", "dernière", "articles", "canal", "tentatives", "réessayer",
               "aucun", "aucune", "désactivé", "mot de passe", "suspendre", "reprendre", "relancer", "validé"]


class _Text(HTMLParser):
    """Visible text plus the accessible labels; <code> (config keys) is not prose and is skipped."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.in_code = 0

    def handle_starttag(self, tag, attrs):
        self.in_code += tag == "code"
        self.parts += [v for k, v in attrs if k in ("aria-label", "title", "placeholder") and v]

    def handle_endtag(self, tag):
        self.in_code -= tag == "code"

    def handle_data(self, data):
        if not self.in_code:
            self.parts.append(data)


def prose(html: str, data: list[str]) -> str:
    """The page's words minus the stored data it displays (titles, errors, URLs, names)."""
    parser = _Text()
    parser.feed(html)
    text = " ".join(parser.parts)
    for value in sorted(data, key=len, reverse=True):
        text = text.replace(value, " ")
    return text


def leftovers(text: str, words: list[str]) -> list[str]:
    return [w for w in words if re.search(rf"(?<!\w){re.escape(w)}(?!\w)", text, re.IGNORECASE)]


def world(engine) -> tuple[dict, list[str]]:
    """The seed of test_web_admin plus a fixed date, a paused source, a pending subscriber; and its data strings."""
    ids = seed(engine)
    subs.signup(engine, "pending@example.org", "digest", "en", ["climat"])
    with engine.begin() as conn:
        conn.execute(update(items).values(detected_at=FIXED))
        conn.execute(sources.insert().values(name="Le Direct", url="http://y/feed", paused=True,
                                             pause_reason="paused by operator", websub_state="active"))
    data = ["403 Forbidden: bot was kicked", "HTTP 503", "http://x/feed", "http://y/feed", "Le Fil", "Le Direct",
            "FLASH INFO", "Séisme", "ok@example.org", "pending@example.org", "climat", "email", "telegram",
            "WebSub", "550", "<script>alert(\"x\")</script><img src=x onerror=alert(1)>"]
    return ids, data


async def all_pages(client: httpx.AsyncClient, ids: dict, lang: str | None = None) -> dict[str, str]:
    """Every dashboard page (plus notices and a paged list) as text, in the asked or remembered language."""
    suffix = f"lang={lang}" if lang else ""
    out = {}
    for url in [*PAGES, f"/admin?notice=cancelled&item={ids['held']}&n=2", "/admin?notice=approved&item=1&n=3",
                "/admin/failures?notice=retried&n=4", "/admin/sources?notice=unknown_source",
                "/admin/bounces?notice=reprocessed&n=2",
                "/admin/subscribers?status=pending&q=example"]:
        r = await client.get(url + ("&" if "?" in url else "?") + suffix if suffix else url)
        assert r.status_code == 200, url
        out[url] = r.text
    return out


async def test_french_by_default_and_no_english_leftovers(web_client, web_engine):
    ids, data = world(web_engine)
    subs.insert_many(web_engine, [{"email": f"u{i:03d}@example.org"} for i in range(60)])  # a pager
    login_page = (await web_client.get("/admin/login")).text
    wrong = await login(web_client, "nope")
    await login(web_client)
    pages = {"login": login_page, "wrong": wrong.text, **await all_pages(web_client, ids)}
    pages["pager"] = (await web_client.get("/admin/subscribers")).text
    assert "suivante →" in pages["pager"]
    for url, html in pages.items():
        assert '<html lang="fr">' in html, url
        found = leftovers(prose(html, data + [f"u{i:03d}@example.org" for i in range(60)]), ENGLISH_ONLY)
        assert found == [], (url, found)
    assert "Vue d'ensemble" in pages["/admin"].replace("&#39;", "'") and "Mot de passe incorrect." in pages["wrong"]
    assert "en pause (suspendue par un opérateur)" in pages["/admin/sources"]
    assert "Article 1 validé : 3 envois en file d" in pages["/admin?notice=approved&item=1&n=3"]


async def test_english_on_request_remembered_in_a_cookie(web_client, web_engine):
    ids, data = world(web_engine)
    await login(web_client)
    r = await web_client.get("/admin?lang=en")
    cookie = r.headers["set-cookie"].lower()
    assert "fb_lang=en" in cookie and "path=/admin" in cookie and "httponly" in cookie
    assert '<html lang="en">' in r.text and 'href="?lang=fr"' in r.text
    pages = await all_pages(web_client, ids)  # no ?lang= any more: the cookie carries the choice
    for url, html in pages.items():
        assert '<html lang="en">' in html, url
        assert leftovers(prose(html, data), FRENCH_ONLY) == [], url
    assert "Waiting for approval (1)" in pages["/admin"] and "paused by an operator" in pages["/admin/sources"]
    # Redirects after an action land on an English page too.
    done = await post(web_client, f"/admin/items/{ids['held']}/cancel")
    shown = await web_client.get(done.headers["location"])
    assert f"Item {ids['held']} cancelled, 0 pending deliveries stopped." in shown.text
    # The cookie belongs to /admin: the public pages keep their own rule (French by default here).
    assert "Inscrivez-vous à la newsletter" in (await web_client.get("/")).text
    back = await web_client.get("/admin/failures?lang=fr")
    assert '<html lang="fr">' in back.text and "fb_lang=fr" in back.headers["set-cookie"]
    assert '<html lang="fr">' in (await web_client.get("/admin")).text


@pytest.mark.parametrize("value", ["xx", "../../etc", "", "EN<script>", "fr-FR"])
async def test_unknown_language_is_ignored(web_client, value):
    await login(web_client)
    r = await web_client.get("/admin", params={"lang": value})
    assert r.status_code == 200 and '<html lang="fr">' in r.text and "fb_lang" not in r.headers.get("set-cookie", "")


@pytest.mark.parametrize("notice", ["approved&item=1", "<b>owned</b>", "retried&n=1e9", "approved&item=1&n=" + "9" * 20])
async def test_notices_are_names_not_text(web_client, notice):
    await login(web_client)
    r = await web_client.get("/admin?notice=" + notice)
    assert r.status_code == 200 and 'class="notice"' not in r.text and "owned" not in r.text


@pytest.mark.parametrize("lang, tz, expected", [
    ("fr", "Europe/Paris", r"29 nov\. 2026, 07:10:05"),
    ("en", "Europe/Paris", r"Nov 29, 2026, 7:10:05\sAM"),
    ("fr", "America/New_York", r"29 nov\. 2026, 01:10:05"),
])
async def test_dates_localized_in_the_configured_zone(tmp_path, lang, tz, expected):
    cfg = make_web_config(tmp_path, None)
    cfg.bot.timezone = tz
    engine = open_db(cfg.database_url)
    world(engine)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(cfg, engine)),
                                 base_url="http://testserver") as c:
        await login(c)
        r = await c.get(f"/admin?lang={lang}")
    assert re.search(rf'<time datetime="2026-11-29T06:10:05\+00:00">{expected}</time>', r.text), re.findall(r"<time[^>]*>[^<]*</time>", r.text)[:2]
    assert tz in r.text  # the page says which zone the times are in
    engine.dispose()


@pytest.mark.parametrize("bot_lang, asked, expected", [("en", None, "en"), ("en", "fr", "fr"), ("fr", None, "fr")])
async def test_bot_language_is_the_default(tmp_path, bot_lang, asked, expected):
    for password in ("pw-0123456789", None):  # the login page and the disabled page
        cfg = make_web_config(tmp_path, None, admin_password=password)
        cfg.bot.language = bot_lang
        engine = open_db(cfg.database_url)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(cfg, engine)),
                                     base_url="http://testserver") as c:
            r = await c.get("/admin/login", params={"lang": asked} if asked else None)
        assert f'<html lang="{expected}">' in r.text
        if password is None:
            words = {"fr": "Tableau de bord désactivé", "en": "Dashboard disabled"}[expected]
            assert r.status_code == 503 and words in r.text and "<code>FLASHBOT_ADMIN_PASSWORD</code>" in r.text
            assert leftovers(prose(r.text, []), ENGLISH_ONLY if expected == "fr" else FRENCH_ONLY) == []
        engine.dispose()


async def test_every_dashboard_form_carries_its_csrf_token(web_client, web_engine):
    ids, _ = world(web_engine)
    await login(web_client)
    for url in PAGES:
        html = (await web_client.get(url)).text
        forms = re.findall(r'<form method="post" action="([^"]+)"[^>]*>\s*<input type="hidden" name="csrf" value="([^"]*)"',
                           html)
        assert forms and all(token for _, token in forms), (url, forms)
    # Submit the Approve button exactly as a browser would: with that form's own token.
    html = (await web_client.get("/admin")).text
    action = f"/admin/items/{ids['held']}/approve"
    token = re.search(rf'action="{action}" class="inline"><input type="hidden" name="csrf" value="([^"]+)"', html).group(1)
    r = await web_client.post(f"/admin/items/{ids['held']}/cancel", data={"csrf": token})
    assert r.status_code == 303 and "notice=cancelled" in r.headers["location"]
    assert token == csrf_of(html)
