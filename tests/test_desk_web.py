"""The desk page over HTTP (the app in-process): login and CSRF, draft checks, the preview of exactly what
will leave (email HTML in a sandboxed frame, its text part, each Telegram post), sending only what was
previewed, corrections; the alert pace on the preferences page; subscribers CSV with the new columns."""
from __future__ import annotations

import csv
import io
import re
from urllib.parse import unquote

import httpx
import pytest
from fixtures_web import ADMIN_PASSWORD, csrf_of
from typer.testing import CliRunner

from bot import tokens
from bot.cli import app as cli_app
from bot.config import parse_config
from bot.store import desk as desk_store
from bot.store import open_db
from bot.store import subscribers as subs
from bot.web import create_app

PHOTO = "https://img.exemple.fr/pm.jpg"


@pytest.fixture
def desk_cfg(tmp_path):
    data = {"bot": {"database": str(tmp_path / "desk.db"), "public_url": "http://testserver"},
            "web": {"admin_password": ADMIN_PASSWORD, "secret_key": "desk-web-secret-0123456789"},
            "email": {"host": "127.0.0.1", "port": 9, "sender": "Flash <alertes@example.org>", "tls": "none"},
            "telegram": {"token": "1:x", "channels": [{"chat": "@fr", "language": "fr"},
                                                      {"chat": "@en", "language": "en"}]},
            "delivery": {"max_alerts_per_day": 5}}
    return parse_config(data, tmp_path, env={})


@pytest.fixture
async def desk(desk_cfg):
    engine = open_db(desk_cfg.database_url)
    app = create_app(desk_cfg, engine)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=("127.0.0.1", 1)),
                                 base_url="http://testserver") as client:
        client.engine = engine
        yield client
    engine.dispose()


async def _login(client) -> str:
    page = await client.get("/admin/login")
    await client.post("/admin/login", data={"password": ADMIN_PASSWORD, "csrf": csrf_of(page.text)})
    return csrf_of((await client.get("/admin/desk/new")).text)


def _form(csrf: str, **over) -> dict:
    return {"csrf": csrf, "nonce": "b" * 32, "title": "Le Premier ministre démissionne", "body": "Article à suivre.",
            "link": "https://www.exemple.fr/pm", "language": "fr", "email": "1", "chat": "auto", "editor": "Jeanne",
            "image_url": PHOTO, "image_alt": "Matignon", "topics": "", "category": "", **over}


async def test_the_desk_needs_a_session_and_csrf(desk):
    assert (await desk.get("/admin/desk/new")).headers["location"] == "/admin/login"
    assert (await desk.post("/admin/desk/send", data=_form("x"))).status_code == 303  # to the login page
    await _login(desk)
    assert (await desk.post("/admin/desk/preview", data=_form("forged"))).status_code == 403
    assert desk_store.recent(desk.engine) == []


async def test_preview_shows_exactly_what_will_leave(desk):
    csrf = await _login(desk)
    page = await desk.post("/admin/desk/preview", data=_form(csrf))
    assert page.status_code == 200 and "frame-src 'self'" in page.headers["content-security-policy"]
    html = page.text
    assert "objet : FLASH INFO — Le Premier ministre démissionne" in html
    assert re.search(r'<pre class="mailtext" id="mail-text">FLASH INFO\nLe Premier ministre démissionne', html)
    assert "Telegram @fr (fr) — photo avec le message en légende" in html and "@en" not in html.split('id="posts-preview"')[1].split("</section>")[0]
    assert f'<img src="{PHOTO}"' in html
    frame = unquote(re.search(r'<iframe class="mail" src="([^"]+)"', html).group(1).replace("&amp;", "&"))
    mail = await desk.get(frame)
    assert mail.status_code == 200 and "sandbox" in mail.headers["content-security-policy"]
    assert mail.headers["x-frame-options"] == "SAMEORIGIN"
    assert "<h1" in mail.text and "Article à suivre." in mail.text
    # A short text with a photo would be an image-only mail: the photo goes with the post only, and the page says so.
    assert f'src="{PHOTO}"' not in mail.text and 'id="photo-not-in-mail"' in html
    assert (await desk.get(frame[:-3] + "xyz")).status_code == 404  # a forged preview link
    assert desk_store.recent(desk.engine) == []  # a preview sends nothing


async def test_only_the_previewed_draft_is_sent(desk):
    csrf = await _login(desk)
    page = await desk.post("/admin/desk/preview", data=_form(csrf))
    fingerprint = re.search(r'name="fingerprint" value="([^"]+)"', page.text).group(1)
    changed = await desk.post("/admin/desk/send", data=_form(csrf, title="Autre titre", fingerprint=fingerprint))
    assert changed.status_code == 200 and "Le brouillon a changé depuis l&#39;aperçu" in changed.text
    assert desk_store.recent(desk.engine) == []
    sent = await desk.post("/admin/desk/send", data=_form(csrf, fingerprint=fingerprint))
    assert sent.status_code == 303 and "notice=desk_sent" in sent.headers["location"]
    assert "fb_editor=Jeanne" in sent.headers["set-cookie"]
    again = await desk.post("/admin/desk/send", data=_form(csrf, fingerprint=fingerprint))
    assert "notice=desk_resent" in again.headers["location"]  # a double click sends one alert
    (row,) = desk_store.recent(desk.engine)
    assert (row["sent_by"], row["via"], row["alert_state"]) == ("Jeanne", "web", "queued")
    listing = (await desk.get("/admin/desk")).text
    assert "Jeanne" in listing and "Le Premier ministre démissionne" in listing
    item = (await desk.get(sent.headers["location"])).text
    assert "Alerte n° 1 envoyée : 1 envoi en file d&#39;attente." in item  # @fr only: @en is English, no subscriber
    assert "envoyée par Jeanne (web)" in item and "@fr" in item
    assert (await desk.get("/admin/desk/999")).status_code == 404


FORM_ERRORS = [
    ({"title": ""}, "Le titre est obligatoire."),
    ({"editor": ""}, "Indiquez qui envoie l&#39;alerte."),
    ({"link": "javascript:alert(1)"}, "Le lien doit être une adresse http ou https complète."),
    ({"email": "", "chat": ""}, "Choisissez au moins un canal configuré."),
    ({"chat": "@nowhere"}, "Chaîne Telegram inconnue."),
]


@pytest.mark.parametrize("over,message", FORM_ERRORS)
async def test_draft_mistakes_show_the_form_again(desk, over, message):
    csrf = await _login(desk)
    page = await desk.post("/admin/desk/preview", data=_form(csrf, **over))
    assert page.status_code == 400 and message in page.text and 'id="errors"' in page.text


async def test_a_similar_alert_is_flagged_and_can_be_forced(desk):
    csrf = await _login(desk)
    first = await desk.post("/admin/desk/preview", data=_form(csrf))
    await desk.post("/admin/desk/send", data=_form(csrf, fingerprint=csrf_fp(first.text)))
    second = await desk.post("/admin/desk/preview", data=_form(csrf, nonce="c" * 32))
    assert 'id="similar"' in second.text and 'name="force"' in second.text


def csrf_fp(html: str) -> str:
    return re.search(r'name="fingerprint" value="([^"]+)"', html).group(1)


async def test_a_correction_from_the_desk(desk):
    csrf = await _login(desk)
    first = await desk.post("/admin/desk/preview", data=_form(csrf))
    sent = await desk.post("/admin/desk/send", data=_form(csrf, fingerprint=csrf_fp(first.text)))
    item_id = int(re.search(r"/admin/desk/(\d+)", sent.headers["location"]).group(1))
    page = (await desk.get(f"/admin/desk/{item_id}")).text
    assert 'value="Le Premier ministre démissionne"' in page and "Corriger l&#39;alerte" in page
    fix = _form(csrf, title="Le Premier ministre a démissionné", editor="Jérôme « € »; \"x\"")
    preview = await desk.post(f"/admin/desk/{item_id}/preview", data=fix)
    assert "objet : Mise à jour : FLASH INFO — Le Premier ministre a démissionné" in preview.text
    done = await desk.post(f"/admin/desk/{item_id}/send", data={**fix, "fingerprint": csrf_fp(preview.text)})
    assert "notice=desk_corrected" in done.headers["location"]
    row = desk_store.get(desk.engine, item_id)
    assert (row["title"], row["revision"], [e["editor"] for e in row["log"]]) == (
        "Le Premier ministre a démissionné", 1, ["Jeanne", 'Jérôme « € »; "x"'])
    remembered = (await desk.get("/admin/desk/new")).text  # any name survives the cookie
    assert 'id="editor" name="editor" type="text" maxlength="200" required value="Jérôme « € »; &#34;x&#34;"' in remembered


async def test_preferences_page_sets_the_alert_pace(desk, desk_cfg):
    subs.add(desk.engine, ["lea@example.org"])
    row = subs.by_email(desk.engine, "lea@example.org")
    token = tokens.make_token(tokens.secret_key(desk.engine, desk_cfg.web.secret_key), tokens.PREFERENCES, row["id"], row["token_nonce"])
    page = await desk.get(f"/preferences/{token}")
    assert 'id="pace"' in page.text and "Le site en envoie au plus 5 par jour à chacun." in page.text
    base = {"csrf": csrf_of(page.text), "mode": "instant", "language": "fr", "topics": ""}
    bad = await desk.post(f"/preferences/{token}", data={**base, "quiet_start": "23:00", "quiet_end": ""})
    assert bad.status_code == 400 and "Heures calmes non valides" in bad.text
    assert subs.by_email(desk.engine, "lea@example.org")["mode"] == "both"  # nothing saved
    ok = await desk.post(f"/preferences/{token}", data={**base, "max_per_day": "2", "quiet_start": "23:00",
                                                        "quiet_end": "07:00", "timezone": "America/Montreal"})
    assert ok.status_code == 200 and 'id="saved"' in ok.text
    row = subs.by_email(desk.engine, "lea@example.org")
    assert (row["mode"], row["max_per_day"], row["quiet_start"], row["quiet_end"], row["timezone"]) == (
        "instant", 2, "23:00", "07:00", "America/Montreal")
    cleared = await desk.post(f"/preferences/{token}", data={**base, "timezone": "Europe/Paris"})
    row = subs.by_email(desk.engine, "lea@example.org")
    assert cleared.status_code == 200 and (row["max_per_day"], row["quiet_start"], row["timezone"]) == (None, None, None)


def test_subscribers_csv_carries_the_pace(tmp_path, desk_cfg):
    engine = open_db(desk_cfg.database_url)
    config = tmp_path / "config.toml"
    config.write_text(f'[bot]\ndatabase = "{desk_cfg.bot.database}"\n', encoding="utf-8")
    data = ("email,mode,max_per_day,quiet_hours,timezone\n"
            "a@example.org,instant,3,23:00-07:00,Europe/Paris\n"
            "b@example.org,both,,,\n"
            "c@example.org,both,lots,,\n"
            "d@example.org,both,,22:00,\n"
            "e@example.org,both,,,Mars/Olympus\n")
    (tmp_path / "in.csv").write_text(data, encoding="utf-8")
    runner = CliRunner()
    res = runner.invoke(cli_app, ["--config", str(config), "subscribers", "import", str(tmp_path / "in.csv")])
    assert res.exit_code == 0, res.output
    assert "2 added, 0 already known, 3 rejected" in res.output
    assert "in.csv:4: rejected" in res.output and "unknown time zone 'Mars/Olympus'" in res.output
    a = subs.by_email(engine, "a@example.org")
    assert (a["max_per_day"], a["quiet_start"], a["quiet_end"], a["timezone"]) == (3, "23:00", "07:00", "Europe/Paris")
    out = runner.invoke(cli_app, ["--config", str(config), "subscribers", "export"])
    rows = {r["email"]: r for r in csv.DictReader(io.StringIO(out.output))}
    assert (rows["a@example.org"]["max_per_day"], rows["a@example.org"]["quiet_hours"], rows["a@example.org"]["timezone"]) == (
        "3", "23:00-07:00", "Europe/Paris")
    assert (rows["b@example.org"]["max_per_day"], rows["b@example.org"]["quiet_hours"]) == ("", "")
    engine.dispose()


async def test_desk_pages_in_english_have_no_french_left(desk):
    import html as htmllib

    from bot.i18n import LOCALE_DIR

    csrf = await _login(desk)
    preview = await desk.post("/admin/desk/preview?lang=en", data=_form(csrf))
    await desk.post("/admin/desk/send", data=_form(csrf, fingerprint=csrf_fp(preview.text)))
    pages = [preview.text] + [(await desk.get(u)).text for u in ("/admin/desk?lang=en", "/admin/desk/new", "/admin/desk/1")]
    fr, en = (_desk_strings(LOCALE_DIR / lang / "LC_MESSAGES" / "messages.po") for lang in ("fr", "en"))
    french = [fr[k].split("{")[0] for k in fr if fr[k].split("{")[0] != en[k].split("{")[0] and len(fr[k]) > 8]
    assert len(french) > 40  # the desk's and the pace's strings, read from the catalogs
    for page in pages:
        text = htmllib.unescape(page)
        assert '<html lang="en">' in page
        assert [f for f in french if f in text] == []


def _desk_strings(po) -> dict[str, str]:
    """The desk's and the alert pace's translations of one catalog (plural keys: their last form)."""
    from babel.messages.pofile import read_po

    with open(po, "rb") as f:
        catalog = read_po(f)
    out = {}
    for msg in catalog:
        key = msg.id[0] if isinstance(msg.id, tuple) else msg.id
        if key.startswith(("desk_", "pace_", "notice_desk_")):
            out[key] = msg.string[-1] if isinstance(msg.string, tuple) else msg.string
    return out


async def test_desk_posts_work_behind_the_body_cap_and_are_bound_to_the_session(desk):
    """A full-length Arabic draft (the largest a real form sends) passes the one body cap; a bigger body is
    refused with 413 before any handler runs; another session's CSRF field is refused."""
    csrf = await _login(desk)
    full = _form(csrf, title="خبر " * 75, body="نص عاجل " * 250, language="ar", image_alt="صورة " * 60)
    preview = await desk.post("/admin/desk/preview", data=full)
    assert preview.status_code == 200 and 'name="fingerprint"' in preview.text
    huge = await desk.post("/admin/desk/preview", data=_form(csrf, body="x" * (70 * 1024)))
    assert huge.status_code == 413
    other = httpx.AsyncClient(transport=desk._transport, base_url="http://testserver")
    async with other:
        await _login(other)
        refused = await other.post("/admin/desk/preview", data=_form(csrf))  # the first session's field
    assert refused.status_code == 403
    assert desk_store.recent(desk.engine) == []
