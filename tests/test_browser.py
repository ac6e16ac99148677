"""One real browser (Debian's chromium, headless, via Playwright): subscribe, confirm, preferences, unsubscribe."""
from __future__ import annotations

import email.utils
import os
import shutil
from datetime import datetime, timedelta, timezone

import pytest
from fixtures_delivery import GatedSMTP
from fixtures_web import mail_link, make_web_config

from bot.store import open_db
from bot.store import subscribers as subs
from bot.web import create_app

CHROMIUM = os.environ.get("FLASHBOT_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]

pytestmark = [
    pytest.mark.browser,
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


# -- the operator's overview during a real fan-out ---------------------------------------------------

FANOUT = 5000
HELD_AT = 2000  # the SMTP server accepts this many messages, then holds the rest until released
SCREENSHOTS = os.environ.get("FLASHBOT_SCREENSHOTS")  # e.g. docs/img: where the README's pictures come from


def _fan(page) -> dict:
    """The email bar's figures as the page shows them now (read from the live DOM, never reloaded)."""
    return page.evaluate("""() => {
        const el = document.querySelector('#live .fan[data-channel="email"][data-revision="0"]');
        return el ? Object.fromEntries(['total', 'sent', 'failed', 'bounced', 'pending'].map(
            k => [k, Number(el.dataset[k])])) : null;
    }""")


def _until(page, check, what: str, timeout_ms: int = 60000):
    """Wait (polling the page every 100 ms, no reload) until check(figures) holds."""
    waited = 0
    while waited < timeout_ms:
        figures = _fan(page)
        if figures and check(figures):
            return figures
        page.wait_for_timeout(100)
        waited += 100
    raise AssertionError(f"timed out waiting for {what}; last figures: {_fan(page)}")


def _chart_sum(page, chart_id: str, selector: str) -> float:
    return page.evaluate(f"""() => Array.from(document.querySelectorAll('#{chart_id} {selector}'))
        .reduce((total, el) => total + Number(el.dataset.value), 0)""")


def test_overview_shows_a_5000_subscriber_fanout_live(svc_stack, tmp_path):
    import re
    import signal
    import subprocess
    import sys

    from playwright.sync_api import sync_playwright
    from fixtures_service import RSS_TYPE, flash_rss
    from test_service_once import BASE, FLASH

    svc_stack.smtp.stop()
    svc_stack.smtp = GatedSMTP()
    svc_stack.smtp.pipelining = True
    svc_stack.smtp.start()
    svc_stack.publish(BASE)
    svc_stack.write_config(interval=1, email_extra="timeout = 120")
    assert svc_stack.cli("poll", "--once").returncode == 0  # the silent baseline
    engine = open_db(f"sqlite:///{tmp_path / 'flashbot.db'}")
    subs.insert_many(engine, [{"email": f"lecteur{i:05d}@example.org"} for i in range(FANOUT)])
    published = email.utils.format_datetime(datetime.now(timezone.utc) - timedelta(seconds=45))
    svc_stack.feeds.set("/feed.xml", flash_rss([FLASH, *BASE]).replace(
        b"<category>Monde</category></item>", f"<category>Monde</category><pubDate>{published}</pubDate></item>".encode(), 1),
        headers=RSS_TYPE)
    log = (tmp_path / "service.log").open("w")  # a file, not a pipe: a full pipe would block the service
    proc = subprocess.Popen([sys.executable, "-m", "bot", "--config", str(svc_stack.config_path), "run"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        url = None
        while url is None:
            line = proc.stdout.readline()
            assert line, (tmp_path / "service.log").read_text()[-2000:]
            if m := re.search(r"web: (http://127\.0\.0\.1:\d+)", line):
                url = m.group(1)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium"),
                                         args=ARGS, headless=True)
            try:
                _watch_fanout(browser, url, engine, svc_stack)
            finally:
                browser.close()
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        log.close()
        engine.dispose()
    assert proc.returncode == 0


def _login(context, url: str):
    page = context.new_page()
    page.goto(url + "/admin/login")
    page.fill("#password", "demo-admin-pass")
    page.click("button[type=submit]")
    return page


def _watch_fanout(browser, url: str, engine, stack) -> None:
    from sqlalchemy import func, select

    from bot.store.schema import deliveries

    context = browser.new_context(viewport={"width": 1280, "height": 1300}, locale="fr-FR")
    context.add_init_script("""window.__csp = [];
        document.addEventListener('securitypolicyviolation', e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));""")
    problems: list[str] = []
    page = _login(context, url)
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    # The service polls, detects the Flash item and queues a row per subscriber; sending is held at 0.
    deadline = 600
    while deadline:
        with engine.connect() as conn:
            if conn.execute(select(func.count()).select_from(deliveries).where(deliveries.c.channel == "email")).scalar() >= FANOUT:
                break
        page.wait_for_timeout(100)
        deadline -= 1
    page.goto(url + "/admin")
    page.evaluate("window.__notReloaded = true")
    first = _until(page, lambda f: f["total"] == FANOUT, "the alert's 5,000 rows")
    assert first["sent"] == 0 and page.get_attribute("#live", "data-running") == "1"
    stack.smtp.allowed = HELD_AT  # let 2,000 go: the bar must move by itself
    during = _until(page, lambda f: f["sent"] == HELD_AT, "2,000 sent")
    assert during["pending"] == FANOUT - HELD_AT
    text = page.inner_text("#live").replace("\u202f", " ").replace("\xa0", " ")
    assert "envoyés : 2 000 sur 5 000" in text and "40,0 %" in text, text
    assert "envois/s" in text and "fin dans" in text, text  # throughput and time left while it runs
    if SCREENSHOTS:
        page.screenshot(path=os.path.join(SCREENSHOTS, "overview-during.png"))
    _no_script_view(browser, url)
    stack.smtp.allowed = FANOUT + 10
    after = _until(page, lambda f: f["sent"] == FANOUT and f["pending"] == 0, "the end of the fan-out")
    assert after == {"total": FANOUT, "sent": FANOUT, "failed": 0, "bounced": 0, "pending": 0}
    page.wait_for_function("document.querySelector('#live').dataset.running === '0'", timeout=30000)
    assert page.evaluate("window.__notReloaded === true")  # the same document all along: no reload
    assert page.evaluate("performance.getEntriesByType('navigation').length") == 1
    final = page.inner_text("#live").replace("\u202f", " ").replace("\xa0", " ")
    assert "envoyés : 5 000 sur 5 000" in final and "terminé en" in final and "après la publication" in final, final
    # Charts (server-rendered SVG): the run is in them.
    page.reload()
    assert _chart_sum(page, "chart-sends-email", "rect.sent") == FANOUT
    assert _chart_sum(page, "chart-sends-telegram", "rect.sent") == 1
    assert page.locator("#chart-latency circle.pt").count() == 1
    assert _chart_sum(page, "chart-subscribers", "circle.signup") >= FANOUT
    assert page.locator("#chart-health rect.cell").count() >= 2
    if SCREENSHOTS:
        page.screenshot(path=os.path.join(SCREENSHOTS, "overview-after.png"))
    assert page.evaluate("window.__csp") == [], "CSP violations"
    assert problems == [], problems
    context.close()


def _no_script_view(browser, url: str) -> None:
    """Without JavaScript: the same figures, server-rendered, and the page reloads itself while it runs."""
    context = browser.new_context(java_script_enabled=False)
    page = _login(context, url)
    page.goto(url + "/admin")
    html = page.content()
    assert 'data-sent="2000"' in html and 'data-total="5000"' in html
    assert '<meta http-equiv="refresh" content="10">' in html
    assert page.locator("#chart-sends-email").count() == 1
    context.close()
