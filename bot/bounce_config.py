"""The `[bounces]` section validated (bot.config embeds it), and the parsers its values share with
bot.bounces: the receiver's host:port, the IMAP URL, SendGrid's ECDSA key."""
from __future__ import annotations

import base64
import binascii
import re

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class BouncesConfig(BaseModel):
    """[bounces]: VERP return path, the SMTP receiver, IMAP polling and provider webhooks."""

    model_config = ConfigDict(extra="forbid", validate_default=True)  # as every bot.config section

    domain: str = Field(min_length=1)
    listen: str | None = None  # "host:port" of the built-in SMTP receiver
    max_bytes: int = Field(2 * 1024 * 1024, ge=16 * 1024, le=64 * 1024 * 1024)
    soft_limit: int = Field(3, ge=1)
    soft_window_days: float = Field(7, gt=0)
    imap_url: str | None = None
    imap_password: str | None = None
    imap_interval: int = Field(60, ge=5)
    imap_move_to: str | None = None
    imap_ca_file: str | None = None
    ses_topic_arns: list[str] = []
    mailgun_signing_key: str | None = None
    postmark_username: str | None = None
    postmark_password: str | None = None
    sendgrid_public_key: str | None = None

    @field_validator("domain")
    @classmethod
    def _domain(cls, v: str) -> str:
        v = v.strip().lower().rstrip(".")
        labels = v.split(".")
        if len(v) > 253 or len(labels) < 2 or not all(_LABEL.fullmatch(x) for x in labels):
            raise ValueError(f"not a domain name: {v!r}")
        return v

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str | None) -> str | None:
        if v is not None:
            host_port(v)
        return v

    @field_validator("imap_url")
    @classmethod
    def _imap(cls, v: str | None) -> str | None:
        if v is not None:
            imap_parts(v)
        return v

    @field_validator("ses_topic_arns")
    @classmethod
    def _arns(cls, v: list[str]) -> list[str]:
        for arn in v:
            if not re.fullmatch(r"arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}", arn):
                raise ValueError(f"not an SNS topic ARN: {arn!r}")
        return v

    @model_validator(mode="after")
    def _pairs(self) -> "BouncesConfig":
        if bool(self.postmark_username) != bool(self.postmark_password):
            raise ValueError("postmark_username and postmark_password go together")
        if self.imap_url and not self.imap_password:
            raise ValueError("imap_url needs imap_password (or FLASHBOT_IMAP_PASSWORD)")
        return self

    @field_validator("sendgrid_public_key")
    @classmethod
    def _sendgrid(cls, v: str | None) -> str | None:
        if v:
            load_ec_public_key(v)  # ValueError names what is wrong
        return v


_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")


def host_port(value: str) -> tuple[str, int]:
    """("127.0.0.1", 2525) from "127.0.0.1:2525" (IPv6 as "[::1]:2525"); ValueError otherwise."""
    host, sep, port = value.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"must be host:port, got {value!r}")
    return host, int(port)


def load_ec_public_key(text: str):
    """An ECDSA public key from PEM or base64 DER (SendGrid's "verification key"); ValueError if it is not one."""
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import load_der_public_key, load_pem_public_key

    try:
        if "BEGIN" in text:
            key = load_pem_public_key(text.encode())
        else:
            key = load_der_public_key(base64.b64decode("".join(text.split()), validate=True))
    except (ValueError, TypeError, binascii.Error):
        raise ValueError("not an ECDSA public key (PEM or base64 DER)") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ValueError("not an ECDSA public key")
    return key


def imap_parts(url: str) -> dict:
    """{"tls", "user", "host", "port", "folder"} from imaps://user@host[:port]/FOLDER; ValueError otherwise."""
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(url)
    if parts.scheme not in ("imap", "imaps") or not parts.hostname or not parts.username:
        raise ValueError("must look like imaps://user@host/INBOX (imap:// without TLS)")
    if parts.password:
        raise ValueError("put the password in FLASHBOT_IMAP_PASSWORD or bounces.imap_password, not in the URL")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"bad port in {url!r}") from None
    tls = parts.scheme == "imaps"
    return {"tls": tls, "user": unquote(parts.username), "host": parts.hostname,
            "port": port or (993 if tls else 143), "folder": unquote(parts.path.strip("/")) or "INBOX"}
