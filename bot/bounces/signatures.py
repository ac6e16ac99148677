"""Webhook signatures, checked before the event is read: Amazon SNS (signing certificate), Mailgun (HMAC),
Postmark (HTTP basic auth), SendGrid Event Webhook (ECDSA P-256)."""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import time
from collections.abc import Callable
from datetime import datetime, timezone
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from bot.bounce_config import load_ec_public_key

# Only certificates served by SNS itself over https are trusted (sns.<region>.amazonaws.com[.cn]).
SNS_HOST = re.compile(r"^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$")
SNS_FIELDS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"),
    "UnsubscribeConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"),
}
CERT_TTL = 24 * 3600.0
MAX_CERT_BYTES = 64 * 1024


class BadSignature(Exception):
    """The request is not from the provider it claims: answer 403 and change nothing."""


def sns_host_ok(url: str) -> bool:
    """Whether a SigningCertURL / SubscribeURL points at SNS over https."""
    parts = urlsplit(url or "")
    return parts.scheme == "https" and bool(SNS_HOST.match(parts.hostname or "")) and parts.port in (None, 443)


class SNSVerifier:
    """Checks SNS message signatures (versions 1 and 2) with the signing certificate, fetched once and cached."""

    def __init__(self, topics: list[str], fetch: Callable[[str], bytes], clock: Callable[[], float] = time.monotonic):
        self.topics = set(topics)
        self.fetch = fetch  # url → PEM bytes (the service uses httpx; tests give their own server)
        self.clock = clock
        self._certs: dict[str, tuple[x509.Certificate, float]] = {}

    def certificate(self, url: str) -> x509.Certificate:
        """The certificate at url (an SNS host only), from the cache when fresh."""
        if not sns_host_ok(url):
            raise BadSignature("SigningCertURL is not an https URL of an SNS host")
        hit = self._certs.get(url)
        if hit and self.clock() - hit[1] < CERT_TTL:
            return hit[0]
        pem = self.fetch(url)
        if len(pem) > MAX_CERT_BYTES:
            raise BadSignature("signing certificate too large")
        try:
            cert = x509.load_pem_x509_certificate(pem)
        except ValueError:
            raise BadSignature("signing certificate unreadable") from None
        now = datetime.now(timezone.utc)
        if not (cert.not_valid_before_utc <= now <= cert.not_valid_after_utc):
            raise BadSignature("signing certificate expired or not yet valid")
        self._certs[url] = (cert, self.clock())
        return cert

    def verify(self, msg: dict) -> None:
        """Raise BadSignature unless msg is a genuinely signed SNS message of a configured topic."""
        kind = msg.get("Type")
        if kind not in SNS_FIELDS or not isinstance(msg.get("Signature"), str):
            raise BadSignature("not an SNS message")
        if msg.get("TopicArn") not in self.topics:
            raise BadSignature("topic not in bounces.ses_topic_arns")
        version = str(msg.get("SignatureVersion"))
        algo = {"1": hashes.SHA1(), "2": hashes.SHA256()}.get(version)
        if algo is None:
            raise BadSignature(f"unknown SignatureVersion {version!r}")
        text = "".join(f"{k}\n{msg[k]}\n" for k in SNS_FIELDS[kind] if k in msg and msg[k] is not None)
        try:
            signature = base64.b64decode(msg["Signature"], validate=True)
        except (binascii.Error, ValueError):
            raise BadSignature("signature is not base64") from None
        key = self.certificate(str(msg.get("SigningCertURL") or msg.get("SigningCertUrl") or "")).public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise BadSignature("signing certificate is not RSA")
        try:
            key.verify(signature, text.encode("utf-8"), padding.PKCS1v15(), algo)
        except InvalidSignature:
            raise BadSignature("SNS signature does not verify") from None


def mailgun(signing_key: str, body: dict) -> None:
    """Mailgun: signature.signature == HMAC-SHA256(signing key, timestamp + token)."""
    sig = body.get("signature") if isinstance(body, dict) else None
    if not isinstance(sig, dict) or not all(isinstance(sig.get(k), str) for k in ("timestamp", "token", "signature")):
        raise BadSignature("no Mailgun signature")
    expected = hmac.new(signing_key.encode(), (sig["timestamp"] + sig["token"]).encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, sig["signature"].lower()):
        raise BadSignature("Mailgun signature does not verify")


def basic_auth(header: str | None, username: str, password: str) -> None:
    """Postmark: the webhook URL carries user:password, sent as HTTP basic auth."""
    scheme, _, value = (header or "").partition(" ")
    try:
        given = base64.b64decode(value.strip(), validate=True).decode("utf-8") if scheme.lower() == "basic" else ""
    except (binascii.Error, ValueError, UnicodeDecodeError):
        given = ""
    expected = f"{username}:{password}"
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise BadSignature("wrong or missing basic auth")


def sendgrid(public_key: str, signature: str | None, timestamp: str | None, body: bytes) -> None:
    """SendGrid Event Webhook: ECDSA (P-256, SHA-256) over timestamp + raw body, signature in base64 DER."""
    if not signature or not timestamp:
        raise BadSignature("no SendGrid signature headers")
    key = load_ec_public_key(public_key)
    try:
        key.verify(base64.b64decode(signature, validate=True), timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, binascii.Error, ValueError):
        raise BadSignature("SendGrid signature does not verify") from None
