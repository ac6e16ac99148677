"""MIME built once and personalized at the bytes level: parses, stays within 76-char QP lines, signs."""
from __future__ import annotations

import shutil
import subprocess
from datetime import datetime, timezone
from email import policy
from email.parser import BytesParser

import pytest

from bot.delivery import mime as mailbuild
from bot.delivery.mime import Envelope, Placeholders, build_template, clean_header_text, slot_values, thread_headers

# The database here only carries the fixtures (fetching, rendering, the browser): SQLite is enough.
pytestmark = pytest.mark.sqlite_only

URL = "https://news.example.org"


def build(text_extra: str = "", html_extra: str = "", subject: str = "FLASH INFO — Élysée : démission"):
    ph = Placeholders.new()
    links = ph.links(URL)
    text = f"Bonjour à tous — {text_extra}\nSe désinscrire : {links['unsubscribe']}\nPréférences ({links['preferences']}).  \n"
    html = (f"<p>Voilà {html_extra}</p><a href=\"{links['unsubscribe']}\">Se désinscrire</a>"
            f"<a href=\"{links['preferences']}\">Préférences</a>")
    env = Envelope("Flash Info Élysée <alertes@example.org>", subject, "fr",
                   mailbuild.list_id_value(None, "alertes@example.org", "Flashbot"), datetime.now(timezone.utc), URL)
    return build_template(env, text, html, ph)


def parse(data: bytes):
    return BytesParser(policy=policy.default).parsebytes(data)


@pytest.mark.parametrize("token_len", [1, 40, 74, 75, 76, 150, 400])
@pytest.mark.parametrize("extra", ["", "x" * 200, "é" * 100, "word " * 60, "trailing space "])
def test_tokens_of_any_length_survive_and_lines_stay_short(token_len, extra):
    template = build(extra, extra)
    unsub, prefs = ("U" * (token_len - 1) + "u")[:token_len], ("P-_." * 200)[:token_len]
    data = template.personalize(slot_values("reader@example.net", "<m1@example.org>", unsub, prefs))
    head, body = data.split(b"\r\n\r\n", 1)
    assert all(len(line) <= 76 for line in body.split(b"\r\n")), "quoted-printable line over 76 characters"
    assert all(len(line) <= 998 for line in head.split(b"\r\n"))
    assert data.isascii() and b"\n" not in data.replace(b"\r\n", b"")
    msg = parse(data)
    text, html = msg.get_body(("plain",)).get_content(), msg.get_body(("html",)).get_content()
    assert text.count("\r\n") == text.count("\n")  # canonical CRLF line ends only
    text = text.replace("\r\n", "\n")
    assert text.endswith("Préférences ({URL}/preferences/{prefs}).  \n".replace("{URL}", URL).replace("{prefs}", prefs))
    assert f"Se désinscrire : {URL}/unsubscribe/{unsub}\n" in text
    assert f"Préférences ({URL}/preferences/{prefs})." in text
    assert f'href="{URL}/unsubscribe/{unsub}"' in html and f'href="{URL}/preferences/{prefs}"' in html
    assert extra.rstrip() in text and f"Voilà {extra}" in html
    assert msg["List-Unsubscribe"] == f"<{URL}/unsubscribe/{unsub}>"


def test_headers_once_per_recipient():
    template = build()
    a = parse(template.personalize(slot_values("a@example.net", "<a@example.org>", "ta", "pa")))
    b = parse(template.personalize(slot_values("b@example.net", "<b@example.org>", "tb", "pb", thread_headers("<orig@example.org>"))))
    assert (a["To"], a["Message-ID"], b["To"], b["Message-ID"]) == ("a@example.net", "<a@example.org>", "b@example.net", "<b@example.org>")
    assert a["In-Reply-To"] is None and b["In-Reply-To"] == b["References"] == "<orig@example.org>"
    for m in (a, b):
        assert m["Subject"] == "FLASH INFO — Élysée : démission" and m["From"] == "Flash Info Élysée <alertes@example.org>"
        assert m["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click" and m["MIME-Version"] == "1.0"
        assert m["Content-Language"] == "fr" and m["List-Id"] == "Flashbot <flash-info.example.org>" and m["Date"]
        assert m.get_content_type() == "multipart/alternative"
        assert [p.get_content_type() for p in m.iter_parts()] == ["text/plain", "text/html"]


@pytest.mark.parametrize("raw,expected", [
    ("Titre\r\nBcc: x@evil.example", "Titre Bcc: x@evil.example"),
    ("a\nb\rc\x00d\x1be\x7f", "a b c d e"),
    ("bidi \u202eevil\u202c and line\u2028sep", "bidi evil and line sep"),
    ("  many    spaces  ", "many spaces"),
    ("é" * 400, "é" * 249 + "…"),  # capped at 250 characters
])
def test_clean_header_text(raw, expected):
    assert clean_header_text(raw) == expected


def test_subject_with_newlines_never_splits_the_header():
    template = build(subject="Alerte\r\nBcc: victim@evil.example\r\n\r\nbody")
    data = template.personalize(slot_values("a@example.net", "<a@example.org>", "t", "p"))
    msg = parse(data)
    assert msg["Bcc"] is None and msg["Subject"] == "Alerte Bcc: victim@evil.example body"


@pytest.mark.parametrize("address,ok", [
    ("a@example.net", True), ("prénom@exemple.fr", True), ("a@bücher.de", True),
    ("a@example.net\r\nBcc: x@y", False), ("a b@example.net", False), ("<a@example.net>", False),
    ("a@example.net,b@example.net", False), ("no-at-sign", False), ("", False),
])
def test_check_address(address, ok):
    if ok:
        assert "@" in mailbuild.check_address(address)
    else:
        with pytest.raises(ValueError):
            mailbuild.check_address(address)
    if address == "a@bücher.de":
        assert mailbuild.check_address(address) == "a@xn--bcher-kva.de"


def _keypair(tmp_path):
    if not shutil.which("openssl"):
        pytest.skip("openssl CLI not available to generate a DKIM key")
    key = tmp_path / "dkim.pem"
    subprocess.run(["openssl", "genrsa", "-traditional", "-out", str(key), "2048"], check=True, capture_output=True)
    pub = subprocess.run(["openssl", "rsa", "-in", str(key), "-pubout", "-outform", "DER"], check=True, capture_output=True).stdout
    import base64

    return key, b"v=DKIM1; k=rsa; p=" + base64.b64encode(pub)


def test_dkim_signature_verifies_and_covers_rfc8058_headers(tmp_path):
    import dkim

    key, record = _keypair(tmp_path)
    signer = mailbuild.DKIMSigner(key.read_bytes(), "flashbot", "example.org")
    template = build()
    signed = signer.sign(template.personalize(slot_values("a@example.net", "<a@example.org>", "tok", "pre")))
    dns = lambda name, timeout=5: record if name == b"flashbot._domainkey.example.org." else None  # noqa: E731
    assert dkim.verify(signed, dnsfunc=dns)
    header = parse(signed)["DKIM-Signature"].replace(" ", "").lower()
    assert "list-unsubscribe:list-unsubscribe-post" in header and "d=example.org" in header
    tampered = signed.replace(b"unsubscribe/tok", b"unsubscribe/TOK")
    assert not dkim.verify(tampered, dnsfunc=dns)


@pytest.mark.parametrize("sid,nonce", [(1, ""), (42, "abc"), (10**9, "é-ü"), (7, "a" * 200), (3, "x" * 5)])
def test_fast_tokens_equal_bot_tokens(sid, nonce):
    from bot import tokens
    from bot.delivery.compose import TokenMaker

    for purpose in (tokens.UNSUBSCRIBE, tokens.PREFERENCES):
        maker = TokenMaker("k3y-0123456789", purpose)
        assert maker.fast
        token = maker(sid, nonce)
        assert token == tokens.make_token("k3y-0123456789", purpose, sid, nonce)
        assert tokens.read_token("k3y-0123456789", purpose, token) == (sid, nonce)


async def test_engine_signs_every_copy_when_dkim_is_configured(tmp_path, smtp_server):
    import dkim

    from bot.delivery import engine as deliver
    from bot.delivery import fanout
    from bot.delivery.channels import build_channels
    from bot.render.renderer import Renderer
    from bot.store import open_db
    from fixtures_delivery import add_item, add_subscribers, make_delivery_config

    key, record = _keypair(tmp_path)
    cfg = make_delivery_config(tmp_path, smtp_server.port, email={"dkim_key": str(key), "dkim_selector": "fb"})
    db = open_db(cfg.database_url)
    item = add_item(db)
    add_subscribers(db, ["a@example.net", "b@example.net"])
    fanout.queue_item(db, cfg, item)
    eng = deliver.DeliveryEngine(db, cfg, build_channels(cfg), Renderer(cfg))
    await eng.run_due()
    await eng.channels["email"].close()
    dns = lambda name, timeout=5: record if name == b"fb._domainkey.example.org." else None  # noqa: E731
    assert len(smtp_server.messages) == 2
    assert all(dkim.verify(m.data, dnsfunc=dns) for m in smtp_server.messages)


def _random_lines(rng, n: int) -> str:
    alphabet = "abc déf = . \t<>&é€🙂" + "x" * 20
    return "".join("".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 200))) + rng.choice([" ", "", "\t", "="]) + "\n"
                   for _ in range(n))


@pytest.mark.parametrize("seed", range(40))
def test_parts_encode_as_the_whole_text(seed):
    # A digest's HTML is joined from line-ending parts (shell, then item fragments): encoding each part
    # once and joining must give the very bytes of encoding the whole (markers in some parts included).
    import random

    from bot.render.digest import Joined

    rng = random.Random(seed)
    parts = [_random_lines(rng, rng.randrange(1, 6)) for _ in range(rng.randrange(1, 12))]
    parts[-1] = parts[-1].rstrip("\n") + rng.choice(["", "fin sans retour à la ligne"])
    where = [(i, rng.randrange(len(parts[i])), rng.randrange(2)) for i in rng.sample(range(len(parts)), k=min(2, len(parts)))]
    for _ in range(3):  # new markers in the same parts at each build: later builds come from the caches
        ph = Placeholders.new()
        markers = [ph.unsub, ph.prefs]
        built = list(parts)
        for i, cut, m in where:
            built[i] = built[i][:cut] + markers[m] + built[i][cut:]
        joined = Joined.of(built)
        assert mailbuild.qp_encode(joined, set(markers)) == mailbuild.qp_encode(str(joined), set(markers))
