"""The newsroom desk in a real browser (Debian's chromium, headless, via Playwright) against a real
`flashbot run`: log in, write an alert, see the preview (the email in its frame, its text part, the
Telegram post), send; the mail reaches the SMTP server and the post the Telegram stand-in."""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys

import pytest
from test_browser import ARGS, CHROMIUM
from test_service_run import _wait

SUBSCRIBERS = ["anne@example.org", "bruno@example.org"]
WAIT = 30  # a hang guard only: the service sends at once

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not (os.path.exists(CHROMIUM) or shutil.which("chromium")),
                       reason="!!! BROWSER TEST SKIPPED: Debian chromium is not installed "
                              "(run `make browser` as root, or apt-get install chromium) !!!"),
]


@pytest.fixture
def service(svc_stack):
    """`flashbot run` serving the stack (feed baselined, subscribers added), its web address known."""
    svc_stack.write_config(interval=3600)
    svc_stack.publish([("a1", "Météo : un week-end doux")])
    assert svc_stack.cli("subscribers", "add", "--mode", "instant", *SUBSCRIBERS).returncode == 0
    assert svc_stack.cli("poll", "--once").returncode == 0  # the silent baseline
    proc = subprocess.Popen([sys.executable, "-m", "bot", "--config", str(svc_stack.config_path), "run"],
                            cwd=svc_stack.dir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    while not lines or not lines[-1].startswith("  web:"):
        line = proc.stdout.readline()
        if not line:
            pytest.fail(f"flashbot run exited {proc.wait()}: {proc.stderr.read()[-3000:]}")
        lines.append(line)
    svc_stack.url = re.search(r"web: (http://127\.0\.0\.1:\d+)", "".join(lines)).group(1)
    yield svc_stack
    proc.send_signal(signal.SIGTERM)
    try:
        proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_write_preview_and_send_an_alert_from_the_desk(service):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium"),
                                     args=ARGS, headless=True)
        try:
            page = browser.new_page()
            page.goto(service.url + "/admin/login")
            page.fill("#password", "demo-admin-pass")
            page.click("button[type=submit]")
            page.click("text=Rédaction")
            page.click("#new-alert")
            assert page.inner_text("h1") == "Nouvelle alerte"
            page.fill("#title", "Le Premier ministre démissionne")
            page.fill("#body", "Il a remis sa démission au président de la République.\n\nArticle à suivre.")
            page.fill("#link", "https://www.exemple.fr/politique/demission")
            page.fill("#editor", "Jeanne Martin")
            page.click("#preview")

            assert "exactement ce qui partira" in page.inner_text("h1")
            assert "FLASH INFO — Le Premier ministre démissionne" in page.inner_text("#mail-preview h2")
            text_part = page.inner_text("#mail-text")
            assert "Article à suivre." in text_part and "https://www.exemple.fr/politique/demission" in text_part
            frame = page.frame_locator("iframe.mail")
            assert "Le Premier ministre démissionne" in frame.locator("h1").inner_text()  # the email itself
            post = page.inner_text(".post[data-chat='@flash']")
            assert "FLASH INFO" in post and "Le Premier ministre démissionne" in post and "Lire l’article" in post
            assert service.smtp.messages == [] and service.telegram.posts == []  # a preview sends nothing

            page.click("#send")
            assert re.search(r"Alerte n° \d+ envoyée : 3 envois en file d'attente\.", page.inner_text("main"))
            assert "envoyée par Jeanne Martin (web)" in page.inner_text("#log")
        finally:
            browser.close()
    _wait(lambda: len(service.telegram.posts) == 1, WAIT, "the Telegram post")
    _wait(lambda: len(service.smtp.messages) == len(SUBSCRIBERS), WAIT, "the alert mails")
    assert "Le Premier ministre démissionne" in service.telegram.posts[0].plain
    assert sorted(r for m in service.smtp.messages for r in m.rcpt_tos) == SUBSCRIBERS
    assert str(service.smtp.messages[0].parsed()["Subject"]) == "FLASH INFO — Le Premier ministre démissionne"
