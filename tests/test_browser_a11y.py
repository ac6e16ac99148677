"""axe-core (the accessibility engine, from npm) inside the real chromium of test_browser.py: the sign-up,
confirmation, preferences, unsubscribe and dashboard pages have no serious or critical violation, in French
and in Arabic; the Arabic pages really mirror (right-aligned text, no sideways scroll). Refresh the docs
screenshot with FLASHBOT_UPDATE_SCREENSHOTS=1."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from fixtures_web import ADMIN_PASSWORD, make_web_config
from test_browser import ARGS, CHROMIUM
from test_web_admin import seed

from bot import tokens
from bot.bounce_config import BouncesConfig
from bot.store import open_db
from bot.store import subscribers as subs
from bot.web import create_app

ROOT = Path(__file__).resolve().parent.parent
AXE = Path(os.environ.get("FLASHBOT_AXE", ROOT / "tests" / "axe" / "node_modules" / "axe-core" / "axe.min.js"))
SCREENSHOT = ROOT / "docs" / "signup-ar.png"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not (os.path.exists(CHROMIUM) or shutil.which("chromium")),
                       reason="!!! ACCESSIBILITY TEST SKIPPED: Debian chromium is not installed !!!"),
    pytest.mark.skipif(not AXE.is_file(), reason=f"!!! ACCESSIBILITY TEST SKIPPED: {AXE} missing "
                                                 "(make test runs `npm ci --prefix tests/axe`) !!!"),
]


def violations(page) -> list[dict]:
    """axe-core's serious and critical violations on the page as it is now."""
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [{"rule": v["id"], "impact": v["impact"], "help": v["help"],
             "nodes": [n["html"][:120] for n in v["nodes"][:3]]}
            for v in result["violations"] if v["impact"] in ("serious", "critical")]


def _links(app, engine, lang: str) -> dict[str, str]:
    """A pending reader (confirmation page) and an active one (preferences, unsubscribe) in `lang`."""
    key, url = app.state.web.key, app.state.web.cfg.bot.public_url
    pending, _ = subs.signup(engine, f"new-{lang}@example.org", "both", lang, ["climat"])
    subs.add(engine, [f"reader-{lang}@example.org"], mode="digest", language=lang)
    active = subs.by_email(engine, f"reader-{lang}@example.org")

    def link(purpose: str, row: dict) -> str:
        return tokens.link(url, purpose, tokens.make_token(key, purpose, row["id"], row["token_nonce"]))

    return {"confirm": link(tokens.CONFIRM, pending), "preferences": link(tokens.PREFERENCES, active),
            "unsubscribe": link(tokens.UNSUBSCRIBE, active)}


def _mirrored(page, rtl: bool) -> None:
    """The page's direction, its heading's text on the start side, and no sideways scroll bar."""
    box = page.evaluate("""() => {
        const main = document.querySelector('main'), h1 = document.querySelector('h1');
        const r = document.createRange(); r.selectNodeContents(h1);
        const text = r.getBoundingClientRect(), m = main.getBoundingClientRect(), s = getComputedStyle(main);
        return {dir: getComputedStyle(document.documentElement).direction,
                start: text.left - m.left - parseFloat(s.paddingLeft), end: m.right - parseFloat(s.paddingRight) - text.right,
                scroll: document.documentElement.scrollWidth - document.documentElement.clientWidth};
    }""")
    assert box["dir"] == ("rtl" if rtl else "ltr"), box
    assert abs(box["end" if rtl else "start"]) < 2 and box["start" if rtl else "end"] > 20, box
    assert box["scroll"] <= 0, box  # the hidden honeypot sits off the start side, whichever that is


@pytest.mark.parametrize("lang", ["fr", "ar"])
def test_pages_pass_axe_core(tmp_path, smtp_inbox, live_socket, lang):
    from playwright.sync_api import sync_playwright

    cfg = make_web_config(tmp_path, smtp_inbox.port)
    cfg.bot.public_url = live_socket.url
    cfg.bounces = BouncesConfig(domain="bounces.example.org")  # the bounces page with its chart and tables
    engine = open_db(cfg.database_url)
    app = create_app(cfg, engine)
    live_socket.start(app)
    seed(engine)
    links = _links(app, engine, lang)
    found: dict[str, list] = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium"),
                                     args=ARGS, headless=True)
        try:
            # The pages forbid inline scripts (CSP): the test context lets it inject axe.min.js.
            page = browser.new_context(bypass_csp=True, viewport={"width": 1000, "height": 900}).new_page()
            page.goto(f"{live_socket.url}/?lang={lang}")
            _mirrored(page, lang == "ar")
            found["signup"] = violations(page)
            if lang == "ar":
                shot = tmp_path / "signup-ar.png"
                page.screenshot(path=str(shot), full_page=True)
                assert shot.stat().st_size > 10_000
                if os.environ.get("FLASHBOT_UPDATE_SCREENSHOTS"):
                    shutil.copy(shot, SCREENSHOT)
            page.fill("#email", f"someone-{lang}@example.org")
            # Each submit waits for the page it leads to: axe injected while the old document is torn
            # down finds no <head> (a race a loaded machine loses).
            with page.expect_navigation():
                page.click("button[type=submit]")
            found["check-your-inbox"] = violations(page)
            page.goto(links["confirm"])
            found["confirm"] = violations(page)
            with page.expect_navigation():
                page.click("#confirm")
            assert page.is_visible("#prefs")
            found["confirmed"] = violations(page)
            page.goto(links["preferences"])
            _mirrored(page, lang == "ar")
            found["preferences"] = violations(page)
            page.goto(links["unsubscribe"])
            found["unsubscribe"] = violations(page)
            page.goto(f"{live_socket.url}/admin/login?lang={lang}")
            found["login"] = violations(page)
            page.fill("#password", ADMIN_PASSWORD)
            with page.expect_navigation():
                page.click("button[type=submit]")
            for name in ("", "/sources", "/subscribers", "/failures", "/bounces"):
                page.goto(f"{live_socket.url}/admin{name}")
                assert page.get_attribute("html", "lang") == lang
                found[f"dashboard{name}"] = violations(page)
        finally:
            browser.close()
    engine.dispose()
    assert {name: v for name, v in found.items() if v} == {}, json.dumps(found, ensure_ascii=False, indent=1)


def test_the_screenshot_in_docs_is_there():
    assert SCREENSHOT.is_file() and SCREENSHOT.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
