"""Provider webhooks with signatures made by test keys: SES through SNS, Mailgun, Postmark, SendGrid.

Good signatures store the event and apply its effect; a bad one is 403 and changes nothing. The SNS
signing certificate is served by a real local HTTP server (AWS cannot exist here); the verifier
fetches it through the same function the service uses, only pointed at that server.
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from bot.web import create_app
from bot.web.webhooks import https_get
from fixtures_bounces import World, bounce_config

TOPIC = "arn:aws:sns:eu-west-1:123456789012:ses-bounces"
CERT_URL = "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-test.pem"
MAILGUN_KEY = "key-mailgun-test-0123456789"
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
EC_PUBLIC = base64.b64encode(EC_KEY.public_key().public_bytes(
    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).decode()


def _cert(key) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    now = datetime.now(timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=30)).sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM)


class CertServer:
    """A real HTTP server standing in for SNS's certificate and subscription URLs; records requests."""

    def __init__(self, pem: bytes):
        server = self
        self.requests: list[str] = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                server.requests.append(self.path)
                body = pem if self.path.endswith(".pem") else b"<ConfirmSubscriptionResponse/>"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def fetch(self, url: str) -> bytes:
        """https_get, with the SNS host replaced by this server (the path is kept)."""
        u = httpx.URL(url)
        return https_get(self.base + u.raw_path.decode()) if u.host.startswith("sns.") else https_get(url)


def sns_sign(msg: dict, version: str = "1", key=RSA_KEY) -> dict:
    fields = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type") if msg["Type"] == "Notification" else \
        ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type")
    text = "".join(f"{k}\n{msg[k]}\n" for k in fields if k in msg)
    algo = hashes.SHA1() if version == "1" else hashes.SHA256()
    sig = key.sign(text.encode(), padding.PKCS1v15(), algo)
    return {**msg, "SignatureVersion": version, "Signature": base64.b64encode(sig).decode(), "SigningCertURL": CERT_URL}


def ses_bounce(world: World, dlv: int, email: str, bounce_type="Permanent", msg_id="sns-1") -> dict:
    ses = {"notificationType": "Bounce",
           "bounce": {"bounceType": bounce_type, "bounceSubType": "General", "bouncedRecipients": [
               {"emailAddress": email, "action": "failed", "status": "5.1.1", "diagnosticCode": "smtp; 550 5.1.1 user unknown"}]},
           "mail": {"source": world.return_path(dlv), "messageId": "0102-ses", "commonHeaders": {"messageId": "<m@x>"}}}
    return {"Type": "Notification", "MessageId": msg_id, "TopicArn": TOPIC, "Message": json.dumps(ses),
            "Timestamp": "2026-11-29T07:10:05.000Z"}


@pytest.fixture
async def hooked(tmp_path):
    cfg = bounce_config(tmp_path, ses_topic_arns=[TOPIC], mailgun_signing_key=MAILGUN_KEY, postmark_username="pm",
                        postmark_password="pm-secret-pass", sendgrid_public_key=EC_PUBLIC)
    world = World(cfg)
    app = create_app(cfg, world.engine)
    certs = CertServer(_cert(RSA_KEY))
    app.state.bounce_hooks.sns.fetch = certs.fetch
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield world, client, app, certs
    certs.httpd.shutdown()
    world.engine.dispose()


async def settled(app) -> None:
    hooks = app.state.bounce_hooks
    for _ in range(200):
        if not hooks.tasks:
            return
        await asyncio.sleep(0.02)


@pytest.mark.parametrize("version", ["1", "2"])
async def test_ses_bounce_through_sns_suppresses(hooked, version):
    world, client, app, certs = hooked
    sub = world.subscriber("dead@example.net")
    dlv = world.sent(sub)
    r = await client.post("/webhooks/ses", content=json.dumps(sns_sign(ses_bounce(world, dlv, "dead@example.net"), version)))
    assert r.status_code == 200, r.text
    await settled(app)
    assert world.delivery(dlv)["outcome"] == "bounced" and world.person(sub)["status"] == "suppressed"
    assert certs.requests == ["/SimpleNotificationService-test.pem"]
    # The same notification again (SNS retries): stored once, counted once, certificate from the cache.
    r = await client.post("/webhooks/ses", content=json.dumps(sns_sign(ses_bounce(world, dlv, "dead@example.net"), version)))
    assert r.text == "stored 0 of 1" and len(certs.requests) == 1


async def test_sns_tampered_forged_or_foreign_is_refused(hooked):
    world, client, app, certs = hooked
    sub = world.subscriber("alive@example.net")
    dlv = world.sent(sub)
    good = sns_sign(ses_bounce(world, dlv, "alive@example.net"))
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cases = {
        "tampered": {**good, "Message": good["Message"].replace("Permanent", "Transient")},
        "other key": sns_sign(ses_bounce(world, dlv, "alive@example.net"), key=other_key),
        "cert elsewhere": {**good, "SigningCertURL": "https://evil.example.com/sns.amazonaws.com/x.pem"},
        "plain http cert": {**good, "SigningCertURL": CERT_URL.replace("https", "http")},
        "other topic": sns_sign({**ses_bounce(world, dlv, "alive@example.net"), "TopicArn": TOPIC + "-x"}),
        "unsigned": {k: v for k, v in good.items() if k != "Signature"},
    }
    for name, msg in cases.items():
        r = await client.post("/webhooks/ses", content=json.dumps(msg))
        assert r.status_code == 403, name
    await settled(app)
    assert world.mails() == [] and world.person(sub)["status"] == "active"
    assert all(p.endswith("test.pem") for p in certs.requests)  # the stand-in only ever saw the SNS URL  # never fetched from a non-SNS URL


async def test_sns_subscription_is_confirmed_on_the_sns_host_only(hooked):
    world, client, app, certs = hooked
    msg = {"Type": "SubscriptionConfirmation", "MessageId": "c1", "TopicArn": TOPIC, "Token": "t0k",
           "Message": "confirm", "Timestamp": "2026-11-29T07:00:00Z",
           "SubscribeURL": "https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&Token=t0k"}
    r = await client.post("/webhooks/ses", content=json.dumps(sns_sign(msg)))
    assert r.status_code == 200 and r.text == "subscribed"
    assert certs.requests[-1].startswith("/?Action=ConfirmSubscription")
    evil = {**msg, "SubscribeURL": "https://attacker.example/?Action=ConfirmSubscription"}
    r = await client.post("/webhooks/ses", content=json.dumps(sns_sign(evil)))
    assert r.status_code == 403


def mailgun_body(world, dlv, email, event="failed", severity="permanent", key=MAILGUN_KEY, token="tok1"):
    ts = "1764400000"
    sig = hmac.new(key.encode(), (ts + token).encode(), hashlib.sha256).hexdigest()
    return {"signature": {"timestamp": ts, "token": token, "signature": sig},
            "event-data": {"id": f"ev-{token}", "event": event, "severity": severity, "recipient": email,
                           "delivery-status": {"code": 550, "message": "5.1.1 no such user", "enhanced-code": "5.1.1"},
                           "envelope": {"sender": world.return_path(dlv)}, "message": {"headers": {"message-id": "m@x"}}}}


async def test_mailgun_hmac(hooked):
    world, client, app, _ = hooked
    sub = world.subscriber("gone@example.net")
    dlv = world.sent(sub)
    bad = mailgun_body(world, dlv, "gone@example.net", key="key-wrong")
    assert (await client.post("/webhooks/mailgun", json=bad)).status_code == 403
    complaint = mailgun_body(world, dlv, "gone@example.net", event="complained", token="tok2")
    assert (await client.post("/webhooks/mailgun", json=complaint)).status_code == 200
    await settled(app)
    person = world.person(sub)
    assert person["status"] == "unsubscribed" and "spam complaint" in person["status_reason"]
    assert world.delivery(dlv)["outcome"] == "complained"


async def test_postmark_basic_auth_and_address_attribution(hooked):
    world, client, app, _ = hooked
    sub = world.subscriber("pm@example.net")
    dlv = world.sent(sub)
    event = {"RecordType": "Bounce", "ID": 42, "Type": "HardBounce", "Email": "PM@example.net",
             "Description": "The server was unable to deliver your message", "Details": "smtp;550 5.1.1 unknown"}
    for auth in [None, ("pm", "wrong"), ("other", "pm-secret-pass")]:
        r = await client.post("/webhooks/postmark", json=event, auth=auth)
        assert r.status_code == 403
    assert world.mails() == []
    r = await client.post("/webhooks/postmark", json=event, auth=("pm", "pm-secret-pass"))
    assert r.status_code == 200
    await settled(app)
    assert world.delivery(dlv)["outcome"] == "bounced" and world.person(sub)["status"] == "suppressed"


async def test_sendgrid_ecdsa_batch(hooked):
    world, client, app, _ = hooked
    a, b = world.subscriber("sg-a@example.net"), world.subscriber("sg-b@example.net")
    da, db = world.sent(a, "<sga@example.org>"), world.sent(b, "<sgb@example.org>")
    events = [{"email": "sg-a@example.net", "event": "bounce", "type": "bounce", "status": "5.1.1",
               "reason": "550 5.1.1 unknown user", "sg_event_id": "e1", "smtp-id": "<sga@example.org>"},
              {"email": "sg-b@example.net", "event": "spamreport", "sg_event_id": "e2", "smtp-id": "<sgb@example.org>"},
              {"email": "sg-b@example.net", "event": "delivered", "sg_event_id": "e3"}]
    body = json.dumps(events).encode()
    ts = "1764400000"
    sig = base64.b64encode(EC_KEY.sign(ts.encode() + body, ec.ECDSA(hashes.SHA256()))).decode()
    headers = {"X-Twilio-Email-Event-Webhook-Signature": sig, "X-Twilio-Email-Event-Webhook-Timestamp": ts}
    r = await client.post("/webhooks/sendgrid", content=body.replace(b"spamreport", b"delivered!"), headers=headers)
    assert r.status_code == 403
    r = await client.post("/webhooks/sendgrid", content=body, headers={**headers, "X-Twilio-Email-Event-Webhook-Timestamp": "1"})
    assert r.status_code == 403
    r = await client.post("/webhooks/sendgrid", content=body, headers=headers)
    assert r.status_code == 200 and r.text == "stored 3 of 3"
    await settled(app)
    assert world.delivery(da)["outcome"] == "bounced" and world.person(a)["status"] == "suppressed"
    assert world.delivery(db)["outcome"] == "complained" and world.person(b)["status"] == "unsubscribed"
    assert sorted(m["state"] for m in world.mails()) == ["ignored", "processed", "processed"]


async def test_webhooks_absent_without_their_keys(tmp_path):
    cfg = bounce_config(tmp_path)
    world = World(cfg)
    app = create_app(cfg, world.engine)
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        for name in ("ses", "mailgun", "postmark", "sendgrid"):
            assert (await client.post(f"/webhooks/{name}", content=b"{}")).status_code in (404, 405)
    world.engine.dispose()
