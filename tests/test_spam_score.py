"""Our mails as SpamAssassin (the public reference for spam rules) sees them: every alert, correction
and digest the demo sends (French, English and Arabic readers) and an Arabic story's mails and
confirmation score well below the spam threshold (Arabic ones 0 or less) and trip none of the rules
that mark bulk mail as suspicious. Needs Debian's `spamassassin` (make test installs it as root); local
tests only (-L): no network."""
from __future__ import annotations

import email
import email.policy
import os
import re
import shutil
import subprocess
import sys

import pytest
from fixtures_render import seed_item
from test_i18n_render import ARABIC_ITEM

from bot.config import parse_config
from bot.delivery.compose import Composer
from bot.render.renderer import Renderer
from bot.web.context import make_env
from bot.web.mailer import build_message

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
    env = {"COLUMNS": "200", "PATH": "/usr/bin:/bin", **{k: v for k, v in os.environ.items() if k == "PYTHONPATH"}}
    run = subprocess.run([sys.executable, "-m", "bot", "demo", "--dir", str(work)], capture_output=True, text=True,
                         timeout=90, env=env)  # PYTHONPATH: the tree under test
    assert run.returncode == 0, run.stdout + run.stderr
    mails = sorted((work / "mail").glob("*.eml"))
    assert len(mails) == 12
    return mails


# A full-length Arabic article (a short one with a photo trips HTML_IMAGE_ONLY_* in any language: SpamAssassin
# penalizes any HTML mail with an image and under 3,200 characters of text).
ARABIC_STORY = "".join(f"<p>{p}</p>" for p in [
    "ضرب زلزال بقوة 5.1 درجات على مقياس ريختر مدينة نيس وضواحيها فجر اليوم السبت، وشعر به السكان على امتداد "
    "الساحل من كان إلى موناكو، بحسب ما أفاد المعهد الوطني للرصد الزلزالي في بيان مقتضب نشره بعد دقائق من الهزة.",
    "وقالت محافظة منطقة الألب البحرية إن فرق الدفاع المدني انتشرت في الأحياء القديمة للتحقق من سلامة المباني، "
    "وإن أي إصابات لم تُسجَّل حتى الساعة، فيما أُغلقت بعض المدارس احترازيًا ريثما يُنجز المهندسون معاينتهم.",
    "وأوقفت شركة النقل الحضري حركة الترام على خطَّيها الرئيسيين لمدة ساعتين، قبل أن تستأنفها تدريجيًا بعد فحص "
    "السكك والجسور، بينما سجّلت حركة الطيران في مطار نيس كوت دازور تأخيرات محدودة في الرحلات الصباحية.",
    "وأوضح خبراء في علم الزلازل أن المنطقة تُعدّ من أكثر مناطق فرنسا نشاطًا زلزاليًا، وأن هزات بهذه القوة تتكرر "
    "مرة كل بضعة عقود، مذكّرين بزلزال عام 1887 الذي خلّف مئات الضحايا على الساحل الليغوري المجاور.",
    "ودعت البلدية السكان إلى عدم استخدام المصاعد والابتعاد عن الشرفات والواجهات المتضررة، ونشرت رقمًا هاتفيًا "
    "للإبلاغ عن أي تشققات، مؤكدة أن فرقها ستواصل الجولات الميدانية طوال عطلة نهاية الأسبوع.",
    "كما أعلنت الحكومة أنها تتابع الوضع عن كثب، وأن وزير الداخلية سيزور المدينة بعد ظهر اليوم للاطلاع على "
    "الأضرار ولقاء المسؤولين المحليين وفرق الإنقاذ التي عملت منذ الساعات الأولى للصباح.",
    "<img src='https://news.example/ar/quake.jpg' alt='شارع في نيس بعد الزلزال'>",
    "وأشار المعهد إلى أن هزات ارتدادية خفيفة قد تُسجَّل خلال الأيام المقبلة، داعيًا إلى الهدوء وإلى متابعة "
    "التعليمات الرسمية عبر القنوات المعتمدة، ومؤكدًا أن أجهزة الرصد تعمل على مدار الساعة.",
])


def _kind(msg) -> str:
    """alert, correction (threaded under its alert) or digest (its subject names the bot), in any language."""
    return "correction" if msg["In-Reply-To"] else "digest" if "Flashbot" in str(msg["Subject"]) else "alert"


def test_every_demo_mail_is_clean(demo_mails):
    kinds = set()
    for path in demo_mails:
        raw = path.read_bytes()
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        kinds.add((str(msg["Content-Language"]), _kind(msg)))
        total, rules = score(raw)
        assert total <= (0 if msg["Content-Language"] == "ar" else 1.0), (path.name, str(msg["Subject"]), total, sorted(rules))
        assert not rules & BAD_RULES, (path.name, sorted(rules & BAD_RULES))
    assert kinds == {("fr", "alert"), ("fr", "correction"), ("fr", "digest"), ("en", "alert"), ("en", "correction"),
                     ("ar", "alert"), ("ar", "correction"), ("ar", "digest")}


def test_arabic_story_and_confirmation_mails_are_clean(tmp_path):
    """An Arabic story for an Arabic reader (alert, correction, digest) and the Arabic confirmation mail,
    built by the real composer and sign-up mailer."""
    cfg = parse_config({"bot": {"timezone": "Europe/Paris", "public_url": "https://www.redaction-exemple.fr"},
                        "email": {"sender": "Flash Info <alertes@redaction-exemple.fr>"}}, tmp_path)
    composer = Composer(cfg, Renderer(cfg), "k" * 40)
    story = seed_item(**{**ARABIC_ITEM, "content_html": ARABIC_STORY}, content_hash="h1")
    other = seed_item(id=2, is_flash=False, label=None, content_hash="h2", categories=["اقتصاد"],
                      headline="البنك المركزي يبقي أسعار الفائدة دون تغيير", link="https://news.example/ar/rates",
                      content_html="<p>أبقى البنك المركزي أسعار الفائدة دون تغيير للمرة الثالثة على التوالي.</p>")
    reader = {"id": 7, "email": "karim@example.com", "status": "active", "language": "ar", "token_nonce": "n0nce"}

    def row(kind: str) -> dict:
        return {"id": 1, "item_id": 1, "digest_id": None, "channel": "email", "recipient": "7", "subscriber_id": 7,
                "revision": 0, "kind": kind, "subscriber": reader}

    mails = {"alert": composer.email(row("alert"), story).body,
             "correction": composer.email(row("update"), story, thread_id="<a1@redaction-exemple.fr>").body,
             "digest": composer.digest(row("digest"), [story, other]).body,
             "confirm": build_message(cfg, make_env(cfg), "karim@example.com", "ar", "confirm",
                                      "https://www.redaction-exemple.fr/confirm/T").data}
    for kind, raw in mails.items():
        assert b"Content-Language: ar" in raw, kind
        total, rules = score(raw)
        assert total <= 0, (kind, total, sorted(rules))
        assert not rules & BAD_RULES, (kind, sorted(rules & BAD_RULES))


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


@pytest.mark.parametrize("kind, language", [("confirm", "fr"), ("already", "en")])
def test_confirmation_mails_are_clean(tmp_path, kind, language):
    # Sign-up mails come from the same builder as alerts (bot.delivery.mime) since issue #13.
    from bot.config import parse_config
    from bot.web.context import make_env
    from bot.web.mailer import build_message

    cfg = parse_config({"email": {"sender": "Flash Info <alertes@redaction-exemple.fr>"},
                        "bot": {"public_url": "https://info.redaction-exemple.fr"}}, tmp_path, env={})
    link = "https://info.redaction-exemple.fr/confirm/WzEyLCJhYmNkZWYwMTIzIl0.Z0FhYw.Jf9vQm3kT1pWcXh2b5sLr8eUo0A"
    mail = build_message(cfg, make_env(cfg), "alice@exemple.fr", language, kind, link)
    total, rules = score(mail.data)
    assert total <= 1.0, (kind, total, sorted(rules))
    assert not rules & BAD_RULES, (kind, sorted(rules & BAD_RULES))
