"""MIME bytes built once per (message, language); per recipient only placeholders are swapped.

An alert to 100,000 people differs between recipients only in To, Message-ID, threading headers and
the two tokens in the unsubscribe/preferences links. So the whole message (headers, both parts,
quoted-printable bodies) is serialized ONCE with random marker strings in those places, split at the
markers, and each recipient's copy is a single `b"".join`. The quoted-printable encoder below keeps
every marker whole on its own soft-wrapped line, and a token is cut into 75-byte pieces joined by
soft line breaks, so every line stays within RFC 2045's 76 characters (SpamAssassin's
MIME_QP_LONG_LINE) whatever the token length.
"""
from __future__ import annotations

import functools
import itertools
import re
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.utils import format_datetime, parseaddr

from bot.delivery import qp

# Slots filled per recipient.
TO, MESSAGE_ID, THREAD, UNSUB_HEADER, UNSUB, PREFS = "to", "msgid", "thread", "unsub_h", "unsub", "prefs"
UNSUB_MAILTO = "unsub_m"  # local part of the List-Unsubscribe mailto address (with [bounces] only)
# Characters never allowed into a header from feed data: controls, line/paragraph separators and
# the bidi overrides used to disguise text.
_BAD_HEADER_CHARS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]")
_ADDRESS_OK = re.compile(r"^[^\s<>(),;:\"\[\]\\]+@[^\s<>(),;:\"\[\]\\@]+$")


def clean_header_text(text: str | None, limit: int = 250) -> str:
    """One line of text safe for a header: no CR/LF/control/bidi characters, spaces collapsed, capped."""
    text = unicodedata.normalize("NFC", text or "")
    text = " ".join(_BAD_HEADER_CHARS.sub(" ", text).split())
    if len(text) > limit:
        text = text[: limit - 1].rsplit(" ", 1)[0].rstrip() + "…"
    return text


def check_address(address: str) -> str:
    """The address if it is safe to put in To and RCPT TO; ValueError otherwise (never reaches a header)."""
    if not address or len(address) > 320 or not _ADDRESS_OK.match(address) or not address.isprintable():
        raise ValueError(f"invalid recipient address {address!r}")
    local, _, domain = address.rpartition("@")
    if not domain.isascii():
        domain = domain.encode("idna").decode("ascii")
    return f"{local}@{domain}"


def sender_domain(sender: str) -> str:
    """The domain of the From address ('alertes@example.org' → 'example.org')."""
    return parseaddr(sender)[1].rpartition("@")[2].lower() or "localhost"


def list_id_value(list_id: str | None, sender: str, name: str) -> str:
    """List-Id: the configured id, else one derived from the sender's domain (RFC 2919)."""
    ident = (list_id or f"flash-info.{sender_domain(sender)}").strip().strip("<>")
    return f"{clean_header_text(name, 60)} <{ident}>"


def qp_encode(text: str, markers: set[str]) -> bytes:
    """Quoted-printable bytes (CRLF lines ≤ 76) with each marker whole on its own soft-wrapped line (bot/delivery/qp.py)."""
    return qp.encode(text, markers)


def qp_token(token: str) -> bytes:
    """A token for a body slot: 75-byte pieces joined by soft breaks, then a soft break."""
    return qp.token(token)


@dataclass
class MailTemplate:
    """Serialized message split at the per-recipient slots: parts[0] slot[0] parts[1] … parts[-1]."""

    parts: list[bytes]
    slots: list[str]

    @classmethod
    def of(cls, segments: list[bytes | str]) -> "MailTemplate":
        """From bytes and slot names (str) in message order."""
        parts, slots, start = [], [], 0
        for i, seg in enumerate(segments):
            if type(seg) is str:
                parts.append(b"".join(segments[start:i]))
                slots.append(seg)
                start = i + 1
        parts.append(b"".join(segments[start:]))
        return cls(parts, slots)

    def personalize(self, values: dict[str, bytes]) -> bytes:
        """The message for one recipient; `values` maps every slot name to its bytes."""
        parts, out = self.parts, []
        for i, slot in enumerate(self.slots):
            out.append(parts[i])
            out.append(values[slot])
        out.append(parts[-1])
        return b"".join(out)


# Builds of this process: random once (no system call per digest, of which there may be one per subscriber).
_PROCESS_TAG = secrets.token_hex(4)
_BUILDS = itertools.count(1)


@dataclass
class Placeholders:
    """Random marker strings for one build; `links` go to the renderer, which must keep them verbatim."""

    to: str
    msgid: str
    thread: str
    unsub_h: str
    unsub: str
    prefs: str
    unsub_m: str = ""

    @classmethod
    def new(cls) -> "Placeholders":
        """Fresh markers: a random per-process half (feed text can never contain one) and a counter."""
        tag = f"{_PROCESS_TAG}{next(_BUILDS) & 0xFFFFFFFF:08x}"
        return cls(*(f"FbPh{name}{tag}" for name in ("To", "Mid", "Thr", "Unh", "Uns", "Pre", "Unm")))

    def links(self, public_url: str) -> dict[str, str]:
        """Placeholder unsubscribe/preferences URLs for the renderer."""
        return {"unsubscribe": f"{public_url}/unsubscribe/{self.unsub}", "preferences": f"{public_url}/preferences/{self.prefs}"}


@dataclass
class Envelope:
    """The fixed headers of one build."""

    sender: str
    subject: str
    language: str
    list_id: str
    date: datetime
    public_url: str
    bounce_domain: str | None = None  # [bounces] domain: List-Unsubscribe also offers a mailto address


@functools.lru_cache(maxsize=256)  # From, List-Id and a day's digest subject repeat on every build
def _header(name: str, value: str) -> bytes:
    return policy.SMTP.header_factory(name, value).fold(policy=policy.SMTP).encode("ascii")


def _alternative(text: str, html: str, slots: dict[str, str], boundary: str) -> list[bytes | str]:
    """The MIME-Version/Content-Type lines and body of a multipart/alternative: text then HTML, quoted-printable."""
    part_head = 'Content-Type: text/{}; charset="utf-8"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n'
    return [
        b"MIME-Version: 1.0\r\n", f'Content-Type: multipart/alternative; boundary="{boundary}"\r\n\r\n'.encode(),
        f"--{boundary}\r\n{part_head.format('plain')}".encode(), *qp.segments(text, slots),
        f"--{boundary}\r\n{part_head.format('html')}".encode(), *qp.segments(html, slots),
        f"--{boundary}--\r\n".encode(),
    ]


def _boundary() -> str:
    return f"=_fb_{_PROCESS_TAG}{next(_BUILDS):016x}"


def build_template(env: Envelope, text: str, html: str, ph: Placeholders) -> MailTemplate:
    """Serialize multipart/alternative once, with a slot wherever a recipient's value goes."""
    head: list[bytes | str] = [
        _header("From", env.sender),
        b"To: ", TO, b"\r\n",
        _header("Subject", clean_header_text(env.subject) or "(no subject)"),
        f"Date: {format_datetime(env.date)}\r\n".encode(),
        b"Message-ID: ", MESSAGE_ID, b"\r\n",
        THREAD,  # In-Reply-To/References lines for corrections, or nothing
        _header("List-Id", env.list_id),
        f"List-Unsubscribe: <{env.public_url}/unsubscribe/".encode(), UNSUB_HEADER, b">",
        *((b",\r\n <mailto:", UNSUB_MAILTO, f"@{env.bounce_domain}>".encode()) if env.bounce_domain else ()),
        b"\r\n",
        b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n",
        # Precedence/Auto-Submitted stop vacation auto-replies; neither is penalized by SpamAssassin.
        b"Precedence: bulk\r\nAuto-Submitted: auto-generated\r\n",
        f"Content-Language: {clean_header_text(env.language, 16) or 'fr'}\r\n".encode(),
    ]
    return MailTemplate.of(head + _alternative(text, html, {ph.unsub: UNSUB, ph.prefs: PREFS}, _boundary()))


def build_single(sender: str, to: str, subject: str, language: str, date: datetime, message_id: str,
                 text: str, html: str) -> bytes:
    """A one-recipient transactional mail (a sign-up confirmation): the same builder as alerts, no list headers."""
    head: list[bytes | str] = [
        _header("From", sender), b"To: " + check_address(to).encode("utf-8") + b"\r\n",
        _header("Subject", clean_header_text(subject) or "(no subject)"),
        f"Date: {format_datetime(date)}\r\n".encode(), b"Message-ID: " + message_id.encode("ascii") + b"\r\n",
        b"Auto-Submitted: auto-generated\r\n",  # vacation responders stay quiet
        f"Content-Language: {clean_header_text(language, 16) or 'fr'}\r\n".encode(),
    ]
    return MailTemplate.of(head + _alternative(text, html, {}, _boundary())).personalize({})


def thread_headers(original_message_id: str | None) -> bytes:
    """In-Reply-To/References lines threading a correction under the original, or nothing."""
    if not original_message_id or not re.fullmatch(r"<[^<>\s]+@[^<>\s]+>", original_message_id):
        return b""
    return f"In-Reply-To: {original_message_id}\r\nReferences: {original_message_id}\r\n".encode()


def slot_values(to: str, message_id: str, unsub_token: str, prefs_token: str, thread: bytes = b"",
                unsub_mailto: str = "") -> dict[str, bytes]:
    """Per-recipient values for MailTemplate.personalize (tokens are URL-safe ASCII)."""
    return {
        TO: to.encode("utf-8"), MESSAGE_ID: message_id.encode("ascii"), THREAD: thread,
        UNSUB_HEADER: unsub_token.encode("ascii"), UNSUB: qp_token(unsub_token), PREFS: qp_token(prefs_token),
        UNSUB_MAILTO: unsub_mailto.encode("ascii"),
    }


def signer_for(cfg) -> "DKIMSigner | None":
    """The DKIM signer of `[email]` (None without a key): the one signer of every mail Flashbot sends."""
    email = cfg.email
    if not (email and email.dkim_key and email.dkim_selector):
        return None
    pem = cfg.resolve(email.dkim_key).read_bytes()
    return DKIMSigner(pem, email.dkim_selector, email.dkim_domain or sender_domain(email.sender))


class DKIMSigner:
    """Signs finished messages with dkimpy (RFC 6376), covering the RFC 8058 headers."""

    HEADERS = [b"From", b"To", b"Subject", b"Date", b"Message-ID", b"List-Id", b"List-Unsubscribe",
               b"List-Unsubscribe-Post", b"MIME-Version", b"Content-Type", b"In-Reply-To", b"References",
               b"Auto-Submitted", b"Content-Language"]

    def __init__(self, private_key_pem: bytes, selector: str, domain: str):
        self.key, self.selector, self.domain = private_key_pem, selector.encode(), domain.encode()

    def sign(self, message: bytes) -> bytes:
        """The message with a DKIM-Signature header prepended."""
        import dkim

        sig = dkim.sign(message, self.selector, self.domain, self.key, include_headers=self.HEADERS)
        return sig + message
