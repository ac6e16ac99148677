"""One real browser (Debian's chromium, headless, via Playwright): subscribe, confirm, preferences, unsubscribe."""
from __future__ import annotations

import os
import shutil

import pytest
from fixtures_web import mail_link, make_web_config

from bot.store import open_db
from bot.store import subscribers as subs
from bot.web import create_app

CHROMIUM = os.environ.get("FLASHBOT_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.sqlite_only,  # one real browser run is enough; the pages' database work is tested on both
    pytest.mark.skipif(not (os.path.exists(CHROMIUM) or shutil.which("chromium")),
                       reason="!!! BROWSER TEST SKIPPED: Debian chromium is not installed "
                              "(run `make browser` as root, or apt-get install chromium) !!!"),
]


def test_subscribe_confirm_preferences_unsubscribe(tmp_path, smtp_inbox, live_socket):
    from playwright.sync_api import sync_playwright

    cfg = make_web_config(tmp_path, smtp_inbox.port)
    cfg.bot.public_url = live_socket.url  # links in mails point at the live server
    engine = open_db(cfg.database_url)
    live_socket.start(create_app(cfg, engine))
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium"),
                                     args=ARGS, headless=True)
        try:
            page = browser.new_page()
            page.goto(live_socket.url + "/")
            assert "Inscrivez-vous" in page.inner_text("h1")
            page.fill("#email", "lea@example.org")
            page.check("input[name=mode][value=instant]")
            page.select_option("#language", "fr")
            page.fill("#topics", "climat")
            page.click("button[type=submit]")
            assert "Vérifiez votre boîte mail" in page.inner_text("h1")
            assert subs.by_email(engine, "lea@example.org")["status"] == "pending"

            (msg,) = smtp_inbox.wait(1)
            page.goto(mail_link(msg, "confirm"))
            assert subs.by_email(engine, "lea@example.org")["status"] == "pending"  # GET alone does nothing
            page.click("#confirm")
            assert "Inscription confirmée" in page.inner_text("h1")
            assert subs.by_email(engine, "lea@example.org")["status"] == "active"

            page.click("#prefs")
            assert page.input_value("#topics") == "climat"
            page.check("input[name=mode][value=digest]")
            page.select_option("#language", "en")
            page.fill("#topics", "rugby, climat")
            page.click("#save")
            assert page.is_visible("#saved") and "Your preferences" in page.inner_text("h1")
            row = subs.by_email(engine, "lea@example.org")
            assert (row["mode"], row["language"], row["topics"]) == ("digest", "en", ["rugby", "climat"])

            page.click("#unsub-link")
            assert subs.by_email(engine, "lea@example.org")["status"] == "active"
            page.click("#unsubscribe")
            assert "You are unsubscribed" in page.inner_text("h1")
            assert subs.by_email(engine, "lea@example.org")["status"] == "unsubscribed"
        finally:
            browser.close()
    engine.dispose()
