"""Bounce mails → reports: RFC 3464 DSNs, RFC 5965 ARF, RFC 3834 auto-replies, flufl.bounce for the rest.

Pure functions on bytes: nothing here touches the database. A report lists what the mail says
(entries: addresses, hard/soft/complaint, status, diagnostic) and the clues that may tie it to one
delivery (VERP addresses, the original's Message-ID and To); `bot.bounces.process` decides.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from email import policy
from email.header import decode_header, make_header
from email.message import Message
from email.parser import BytesParser, HeaderParser

from bot.models import BounceKind

MAX_DEPTH = 8  # MIME nesting looked into; deeper parts are hostile or broken
_REPLY = re.compile(r"(?<![\d.:+])([45])\d\d(?:[ -]|$)")
_BOUNCY = re.compile(r"mailer-daemon|postmaster|mail delivery|undeliver|delivery (status|failure|failed|notification|problem)|"
                     r"failure notice|returned mail|non remis|non d[ée]livr|[ée]chec de (la )?(distribution|remise)", re.I)
_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_VERP_ADDR = re.compile(r"\b([bu]-\d{1,18}-(?:\d{1,18}-(?:a\d{1,18}r\d{1,6}|d\d{1,18}|m)-)?[a-z2-7]{16})@([a-z0-9.-]+)", re.I)
_ADDR = re.compile(r"[^\s<>()\[\]\\,;:\"@]+@[^\s<>()\[\]\\,;:\"@]+\.[^\s<>()\[\]\\,;:\"@]+")
# 5.x.x codes that say nothing against the address: our sender refused (5.1.7, 5.1.8), mailbox full,
# message too big, delivery time expired, content (5.6.x) and policy blocks (5.7.x: a verdict on
# the message or the sender). They count as soft: repeated, they still suppress (bounces.soft_limit).
_SOFT_5 = ("5.1.7", "5.1.8", "5.2.2", "5.2.3", "5.3.4", "5.4.7")
_FULL = re.compile(r"mailbox (is )?full|over ?quota|quota exceeded|exceeded (the )?(storage|quota)|insufficient (system )?storage|mailbox size limit", re.I)
_AUTO_SUBJECT = re.compile(r"^\s*(auto(matic)?[ -]?(reply|response|antwort)|auto:|out of (the )?office|r[ée]ponse automatique|absence|abwesenheit|vacation)", re.I)
_COMPLAINTS = {"abuse", "fraud", "virus", "other", "opt-out"}  # not-spam and auth-failure (DMARC) are not
_COMPLAINT_SUBJECT = re.compile(r"\bcomplaint\b|abuse report|spam report", re.I)  # Microsoft JMRP and the like


@dataclass
class Entry:
    """One recipient's fate as the report tells it."""

    kind: BounceKind
    addresses: list[str] = field(default_factory=list)  # Final-Recipient, Original-Recipient… (lowercased)
    status: str | None = None
    diagnostic: str | None = None


@dataclass
class Report:
    """What one received mail (or provider event) says; `kind` None means it could not be classified."""

    kind: BounceKind | None
    how: str = ""  # dsn | arf | auto-reply | flufl | text | ses | mailgun | postmark | sendgrid
    entries: list[Entry] = field(default_factory=list)
    verp: list[str] = field(default_factory=list)  # VERP-shaped addresses found inside (return path clues)
    message_id: str | None = None  # Message-ID of the original message, when it is quoted
    original_to: str | None = None  # the original's To address, when it is quoted
    subject: str = ""
    error: str | None = None  # why it could not be classified


def parse(raw: bytes) -> Message:
    """The mail as a compat32 Message (lenient: malformed MIME becomes defects, not exceptions)."""
    return BytesParser(policy=policy.compat32).parsebytes(raw)


def header_text(value) -> str:
    """A header decoded from RFC 2047 to one line of text ('' when absent or undecodable)."""
    if value is None:
        return ""
    try:
        text = str(make_header(decode_header(str(value))))
    except (ValueError, LookupError, UnicodeError, AssertionError):
        text = str(value)
    return " ".join(text.split())


def address_of(value: str | None) -> str | None:
    """'rfc822; Bob@Example.com' or '<bob@example.com>' → 'bob@example.com' (None when there is none)."""
    if not value:
        return None
    value = header_text(value).rpartition(";")[2] if ";" in str(value) else header_text(value)
    found = _ADDR.search(value)
    return found.group(0).strip(".'").lower() if found else None


def severity(status: str | None, diagnostic: str | None, failed: bool = True) -> BounceKind:
    """Hard or soft from an enhanced status code and the diagnostic text."""
    code = _better_code(status, diagnostic)
    if code is None:
        return BounceKind.HARD if failed and not _FULL.search(diagnostic or "") else BounceKind.SOFT
    if code.startswith("4") or code in _SOFT_5 or code.startswith(("5.6.", "5.7.")) or _FULL.search(diagnostic or ""):
        return BounceKind.SOFT
    return BounceKind.HARD if code.startswith("5") else BounceKind.OTHER


def _better_code(status: str | None, diagnostic: str | None) -> str | None:
    """The Status code, or a more precise one of the same class from the diagnostic (x.0.0 is vague)."""
    m = _STATUS.search(status or "")
    code = m.group(0) if m else None
    d = _STATUS.search(diagnostic or "")
    if d and (code is None or (code.endswith(".0.0") and d.group(1) == code[0])):
        return d.group(0)
    return code


def _walk(msg: Message, depth: int = 0):
    """Parts of the report itself, depth-first, never entering a quoted message (message/rfc822)."""
    if depth > MAX_DEPTH:
        return
    yield msg
    if msg.is_multipart() and msg.get_content_maintype() == "multipart":
        for part in msg.get_payload():
            if isinstance(part, Message):
                yield from _walk(part, depth + 1)


def _blocks(part: Message) -> list[Message]:
    """The header blocks of a delivery-status or feedback-report part, however the parser took it."""
    payload = part.get_payload()
    if isinstance(payload, list) and payload and all(isinstance(p, Message) for p in payload):
        return payload
    data = part.get_payload(decode=True) or b""
    text = data.decode("utf-8", "replace").replace("\r\n", "\n")
    return [HeaderParser().parsestr(b.strip() + "\n") for b in re.split(r"\n\s*\n", text) if b.strip()]


def _clean(text: str | None, limit: int = 500) -> str | None:
    text = " ".join(header_text(text).split()) if text else ""
    if text.lower().startswith(("smtp;", "x-postfix;", "x-unix;", "x-local;")):
        text = text.partition(";")[2].strip()
    return text[:limit] or None


def _dsn(part: Message) -> tuple[list[Entry], list[str]]:
    """Per-recipient entries and VERP clues of a message/delivery-status part."""
    blocks = _blocks(part)
    clues = [v for b in blocks[:1] for k in ("X-Postfix-Sender", "Original-Mail-From", "X-Original-Mail-From")
             if (v := b.get(k))]
    entries = []
    for b in blocks:
        addrs = [a for a in (address_of(b.get("Final-Recipient")), address_of(b.get("Original-Recipient")),
                             address_of(b.get("X-Actual-Recipient"))) if a]
        if not addrs:
            continue
        action, status = (b.get("Action") or "").strip().lower(), (b.get("Status") or "").strip()
        diag = _clean(b.get("Diagnostic-Code"))
        if action in ("delivered", "relayed", "expanded"):
            kind = BounceKind.OTHER
        elif action == "delayed":
            kind = BounceKind.SOFT
        else:
            kind = severity(status, diag)
        code = _better_code(status, diag)
        entries.append(Entry(kind, list(dict.fromkeys(addrs)), code, diag))
    return entries, clues


def _arf(part: Message) -> tuple[Entry | None, list[str]]:
    """The entry and VERP clues of a message/feedback-report part (None when it is not a complaint)."""
    fields = _blocks(part)[0] if _blocks(part) else Message()
    ftype = (fields.get("Feedback-Type") or "").strip().lower()
    clues = [v for k in ("Original-Mail-From", "X-Original-Mail-From") if (v := fields.get(k))]
    if ftype not in _COMPLAINTS:
        return None, clues
    addrs = [a for v in fields.get_all("Original-Rcpt-To") or [] if (a := address_of(v))]
    return Entry(BounceKind.COMPLAINT, addrs, None, _clean(f"ARF {ftype} report" + (
        f" from {fields.get('User-Agent')}" if fields.get("User-Agent") else ""))), clues


def _typed(msg: Message) -> list[tuple[Message, str]]:
    """The report's own parts with their content types, computed once (compat32 re-reads headers on every call)."""
    return [(part, part.get_content_type()) for part in _walk(msg)]


def _original(parts: list[tuple[Message, str]]) -> Message | None:
    """The quoted original (message/rfc822 or text/rfc822-headers), if the report carries one."""
    for part, ctype in parts:
        if ctype in ("message/rfc822", "message/global"):
            inner = part.get_payload()
            if isinstance(inner, list) and inner and isinstance(inner[0], Message):
                return inner[0]
        if ctype in ("text/rfc822-headers", "message/global-headers"):
            data = part.get_payload(decode=True) or b""
            return HeaderParser().parsestr(data.decode("utf-8", "replace"))
    return None


def classify(raw: bytes) -> Report:
    """Classify one received mail; never raises (a parser failure is an unparsed report)."""
    try:
        return _classify(parse(raw))
    except (RecursionError, MemoryError) as exc:
        return Report(None, error=f"too deeply nested or too large to parse ({type(exc).__name__})")
    except Exception as exc:  # noqa: BLE001 - hostile MIME must end as an unparsed mail, not a crash
        return Report(None, error=f"cannot parse: {type(exc).__name__}: {exc}"[:300])


def _classify(msg: Message) -> Report:
    report = Report(None, subject=header_text(msg.get("Subject"))[:300])
    parts = _typed(msg)
    original = _original(parts)
    if original is not None:
        report.message_id = (original.get("Message-ID") or "").strip() or None
        report.original_to = address_of(original.get("To"))
        report.verp += [v for k in ("Return-Path", "List-Unsubscribe") for v in original.get_all(k) or []]
    for part, ctype in parts:
        if ctype in ("message/delivery-status", "message/global-delivery-status"):
            entries, clues = _dsn(part)
            report.verp += clues
            if entries:
                report.entries, report.how = entries, "dsn"
                report.kind = _worst(entries)
                return _clues(report)
        if ctype == "message/feedback-report":
            entry, clues = _arf(part)
            report.verp += clues
            report.how = "arf"
            report.kind = BounceKind.COMPLAINT if entry else BounceKind.OTHER
            report.entries = [entry] if entry else []
            return _clues(report)
    if _is_autoreply(msg):
        report.kind, report.how = BounceKind.AUTOREPLY, "auto-reply"
        return _clues(report)
    if original is not None and _COMPLAINT_SUBJECT.search(report.subject):
        report.kind, report.how = BounceKind.COMPLAINT, "text"
        report.entries = [Entry(BounceKind.COMPLAINT, [], None, _clean(f"complaint: {report.subject}"))]
        return _clues(report)
    _flufl(msg, report)
    if report.kind is None:
        _generic(msg, report)
    if report.kind is None and (msg.get("Auto-Submitted") or "no").strip().lower() != "no":
        report.kind, report.how = BounceKind.AUTOREPLY, "auto-reply"
    if report.kind is None:
        report.error = "neither a DSN, an ARF report, an auto-reply nor a bounce flufl.bounce recognizes"
    return _clues(report)


def _worst(entries: list[Entry]) -> BounceKind:
    kinds = {e.kind for e in entries}
    for kind in (BounceKind.HARD, BounceKind.SOFT):
        if kind in kinds:
            return kind
    return BounceKind.OTHER


def _is_autoreply(msg: Message) -> bool:
    """RFC 3834 auto-replies and the usual out-of-office marks (not mailer-daemon bounces)."""
    sender = (msg.get("From") or "").lower()
    if "mailer-daemon" in sender or "postmaster" in sender:
        return False
    auto = (msg.get("Auto-Submitted") or "").strip().lower()
    if auto.startswith("auto-replied") or any(msg.get(h) for h in ("X-Autoreply", "X-Autorespond", "X-Autoresponse")):
        return True
    if (msg.get("Precedence") or "").strip().lower() == "auto_reply" or msg.get("X-Vacation"):
        return True
    return bool(_AUTO_SUBJECT.match(header_text(msg.get("Subject"))))


def _flufl(msg: Message, report: Report) -> None:
    """Non-standard bounces (Exim, qmail, Exchange, Yahoo… texts) through flufl.bounce's detectors."""
    from flufl.bounce import all_failures

    temporary, permanent = all_failures(msg)
    for kind, found in ((BounceKind.HARD, permanent), (BounceKind.SOFT, temporary)):
        for raw_addr in sorted(found):
            addr = address_of(raw_addr.decode("utf-8", "replace") if isinstance(raw_addr, bytes) else str(raw_addr))
            if addr:
                diag = _snippet(msg, addr)
                code = _better_code(None, diag)
                if code:
                    kind = severity(code, diag)
                elif _FULL.search(diag or ""):
                    kind = BounceKind.SOFT
                report.entries.append(Entry(kind, [addr], code, diag))
    if report.entries:
        report.kind, report.how = _worst(report.entries), "flufl"


def _text_lines(msg: Message) -> list[str]:
    """Lines of the report's own text/plain parts (the quoted original is not read), 64 KiB each at most."""
    lines = []
    for part in _walk(msg):
        if part.get_content_type() == "text/plain":
            lines += (part.get_payload(decode=True) or b"")[:65536].decode("utf-8", "replace").splitlines()
    return lines


def _generic(msg: Message, report: Report) -> None:
    """Last resort for a mail that looks like a bounce (sender or subject): the first SMTP reply in its
    text and the nearest address named on that line or the four before it."""
    if not (_BOUNCY.search(msg.get("From") or "") or _BOUNCY.search(header_text(msg.get("Subject")))):
        return
    lines = _text_lines(msg)
    for i, line in enumerate(lines):
        code = _REPLY.search(line)
        if not code:
            continue
        window = [line] + lines[max(0, i - 4):i][::-1]  # the line itself first, then upwards
        addrs = [a.strip(".'").lower() for ln in window for a in _ADDR.findall(ln)
                 if not re.search(r"mailer-daemon|postmaster|^https?:", a, re.I)]
        if addrs:
            status = _better_code(None, line)
            kind = severity(status, line) if status else (BounceKind.HARD if code.group(1) == "5" else BounceKind.SOFT)
            report.entries = [Entry(kind, [addrs[0]], status, _clean(line.strip(" '\"\t"), 300))]
            report.kind, report.how = kind, "text"
            return


def _snippet(msg: Message, address: str) -> str | None:
    """A short diagnostic from the text: the first line with an SMTP reply code, else one naming the address."""
    lines = _text_lines(msg)
    for line in lines:
        if _REPLY.search(line):
            return _clean(line, 300)
    named = [ln for ln in lines if address in ln.lower() and len(ln.strip()) > len(address) + 4]
    return _clean(named[0], 300) if named else None


def _clues(report: Report) -> Report:
    """Keep the VERP-shaped addresses among the clues, lowercased and once each."""
    found = []
    for value in report.verp:
        found += [f"{m.group(1)}@{m.group(2)}".lower() for m in _VERP_ADDR.finditer(str(value))]
    report.verp = list(dict.fromkeys(found))
    return report
