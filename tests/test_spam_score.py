"""Our mails as SpamAssassin (the public reference for spam rules) sees them: every alert, correction
and digest the demo sends scores well below the spam threshold and trips none of the rules that
mark bulk mail as suspicious. Needs Debian's `spamassassin` (make test installs it as root); local
tests only (-L): no network."""
from __future__ import annotations

import email
import email.policy
import re
import shutil
import subprocess
import sys

import pytest

SA = shutil.which("spamassassin")
pytestmark = pytest.mark.skipif(SA is None, reason="LOUD SKIP: spamassassin is not installed (apt-get install spamassassin)")

# Rules that would mean our mail looks like spam or broken bulk mail.
BAD_RULES = {
    "MIME_HTML_ONLY", "MPART_ALT_DIFF", "MPART_ALT_DIFF_COUNT", "HTML_IMAGE_ONLY_04", "HTML_IMAGE_ONLY_08",
    "HTML_IMAGE_ONLY_12", "HTML_IMAGE_ONLY_16", "HTML_IMAGE_ONLY_20", "HTML_IMAGE_ONLY_24", "HTML_IMAGE_ONLY_28",
    "HTML_IMAGE_ONLY_32", "HTML_SHORT_LINK_IMG_1", "MISSING_MID", "MISSING_DATE", "MISSING_FROM", "MISSING_SUBJECT",
    "MISSING_HEADERS", "MISSING_MIME_HB_SEP", "INVALID_DATE", "DATE_IN_FUTURE_03_06", "MIME_QP_LONG_LINE",
    "SUBJ_ALL_CAPS", "HTML_MIME_NO_HTML_TAG", "MIME_HEADER_CTYPE_ONLY", "FROM_EXCESS_BASE64", "BAD_ENC_HEADER",
    "HEADER_FROM_DIFFERENT_DOMAINS", "TVD_SPACE_RATIO", "HTML_OBFUSCATE_05_10", "BODY_EMPTY", "EMPTY_MESSAGE",
}
RULE = re.compile(r"^\s*(-?\d+\.\d+)\s+([A-Z0-9_]+)\s", re.M)


def score(raw: bytes) -> tuple[float, set[str]]:
    """SpamAssassin's total score and the rules that fired (local tests only)."""
    run = subprocess.run([SA, "-L", "-t"], input=raw, capture_output=True, timeout=120)
    report = run.stdout.decode(errors="replace")
    total = re.search(r"Content analysis details:\s+\((-?\d+\.\d+) points", report)
    assert total, report[-2000:]
    return float(total.group(1)), {m.group(2) for m in RULE.finditer(report.split("Content analysis details")[1])}


@pytest.fixture(scope="module")
def demo_mails(tmp_path_factory):
    work = tmp_path_factory.mktemp("demo") / "out"
    run = subprocess.run([sys.executable, "-m", "bot", "demo", "--dir", str(work)], capture_output=True, text=True,
                         timeout=90, env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})
    assert run.returncode == 0, run.stdout + run.stderr
    mails = sorted((work / "mail").glob("*.eml"))
    assert len(mails) == 12
    return mails


def test_every_demo_mail_is_clean(demo_mails):
    kinds = set()
    for path in demo_mails:
        raw = path.read_bytes()
        subject = str(email.message_from_bytes(raw, policy=email.policy.default)["Subject"])
        kinds.add("digest" if ("essentiel" in subject or "digest" in subject) else
                  "correction" if ("Mise à jour" in subject or "Update" in subject) else "alert")
        total, rules = score(raw)
        assert total <= 1.0, (path.name, subject, total, sorted(rules))
        assert not rules & BAD_RULES, (path.name, sorted(rules & BAD_RULES))
    assert kinds == {"alert", "correction", "digest"}


@pytest.fixture(scope="module")
def bounces_mail(tmp_path_factory) -> bytes:
    """An alert sent by the delivery engine with [bounces] configured, as the reader's mailbox stores it:
    the VERP envelope sender as Return-Path and the mailto URI in List-Unsubscribe."""
    import asyncio

    from bot.demo.smtpserver import SMTPServer
    from fixtures_bounces import World, bounce_config, send_alert

    folder = tmp_path_factory.mktemp("bounces")
    with SMTPServer() as mx:
        world = World(bounce_config(folder, smtp_port=mx.port))
        world.subscriber("lecteur@example.net")
        asyncio.run(send_alert(world.cfg, world.engine, world.item))
        [sent] = mx.messages
    world.engine.dispose()
    return f"Return-Path: <{sent.mail_from}>\r\n".encode() + sent.data


def test_a_mail_with_bounces_configured_is_clean(bounces_mail):
    msg = email.message_from_bytes(bounces_mail, policy=email.policy.default)
    assert msg["Return-Path"].startswith("<b-") and "mailto:u-" in msg["List-Unsubscribe"]
    total, rules = score(bounces_mail)
    assert total <= 0, (total, sorted(rules))
    assert not rules & BAD_RULES, sorted(rules & BAD_RULES)


def test_the_check_can_fail_html_only_mail_is_caught(demo_mails):
    # Control: the same alert without its text part trips MIME_HTML_ONLY, so the test above is real.
    msg = email.message_from_bytes(demo_mails[0].read_bytes(), policy=email.policy.default)
    html = msg.get_body(("html",)).get_content()
    bare = email.message.EmailMessage()
    for name in ("From", "To", "Subject", "Date", "Message-ID", "List-Id", "List-Unsubscribe"):
        bare[name] = msg[name]
    bare.set_content(html, subtype="html")
    _, rules = score(bare.as_bytes())
    assert "MIME_HTML_ONLY" in rules
