"""Provider webhook events (already verified) → reports: Amazon SES via SNS, Mailgun, Postmark, SendGrid.

`events(source, body)` splits one verified request into stored events (id + JSON bytes each);
`parse(source, raw)` turns one stored event into the same Report a bounce mail gives.
"""
from __future__ import annotations

import json

from bot.bounces.classify import Entry, Report, address_of, severity
from bot.models import BounceKind

SOURCES = ("ses", "mailgun", "postmark", "sendgrid")
MAX_EVENTS = 1000  # per request (SendGrid batches); more is not a real provider


class BadEvent(ValueError):
    """The body is not what this provider sends."""


def _json(body: bytes):
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadEvent(f"not JSON: {exc}") from None


def events(source: str, body: bytes) -> list[tuple[str, bytes]]:
    """(event id, event JSON) for each event in a verified request body."""
    data = _json(body)
    if source == "sendgrid":
        if not isinstance(data, list) or len(data) > MAX_EVENTS:
            raise BadEvent("expected a JSON array of at most 1000 events")
        return [(str(e.get("sg_event_id") or json.dumps(e, sort_keys=True)), json.dumps(e).encode())
                for e in data if isinstance(e, dict)]
    if not isinstance(data, dict):
        raise BadEvent("expected a JSON object")
    if source == "ses":
        return [(str(data.get("MessageId")), body)]
    if source == "mailgun":
        ev = data.get("event-data") or {}
        return [(str(ev.get("id") or data.get("signature", {}).get("token")), body)]
    if source == "postmark":
        return [(f"{data.get('RecordType')}:{data.get('ID')}", body)]
    raise BadEvent(f"unknown source {source!r}")


def parse(source: str, raw: bytes) -> Report:
    """The report of one stored event; an event of an unknown shape is an unparsed report."""
    try:
        return {"ses": _ses, "mailgun": _mailgun, "postmark": _postmark, "sendgrid": _sendgrid}[source](_json(raw))
    except (BadEvent, KeyError, TypeError, AttributeError, ValueError) as exc:
        return Report(None, how=source, error=f"unexpected {source} event: {exc}"[:300])


def _mid(value) -> str | None:
    if not value or not isinstance(value, str):
        return None
    value = value.strip()
    return value if value.startswith("<") else f"<{value}>"


def _ses(envelope: dict) -> Report:
    msg = json.loads(envelope["Message"]) if isinstance(envelope.get("Message"), str) else envelope
    kind_name = msg.get("notificationType") or msg.get("eventType")
    mail = msg.get("mail") or {}
    headers = {h.get("name", "").lower(): h.get("value") for h in mail.get("headers") or [] if isinstance(h, dict)}
    report = Report(None, how="ses", verp=[v for v in (mail.get("source"), headers.get("return-path")) if v],
                    message_id=_mid((mail.get("commonHeaders") or {}).get("messageId") or headers.get("message-id")))
    if kind_name == "Bounce":
        b = msg["bounce"]
        permanent = b.get("bounceType") == "Permanent"
        for r in b.get("bouncedRecipients") or []:
            diag, status = r.get("diagnosticCode"), r.get("status")
            kind = severity(status, diag) if permanent and (status or diag) else (BounceKind.HARD if permanent else BounceKind.SOFT)
            report.entries.append(Entry(kind, [a for a in [address_of(r.get("emailAddress"))] if a], status,
                                        (diag or f"SES {b.get('bounceType')}/{b.get('bounceSubType')}")[:500]))
    elif kind_name == "Complaint":
        c = msg["complaint"]
        why = f"SES complaint ({c.get('complaintFeedbackType') or 'abuse'})"
        report.entries = [Entry(BounceKind.COMPLAINT, [a for a in [address_of(r.get("emailAddress"))] if a], None, why)
                          for r in c.get("complainedRecipients") or []]
    else:
        report.kind = BounceKind.OTHER
        return report
    report.kind = _worst(report.entries) if report.entries else None
    report.error = None if report.entries else "SES event without recipients"
    return report


def _mailgun(body: dict) -> Report:
    ev = body["event-data"]
    name = ev.get("event")
    headers = (ev.get("message") or {}).get("headers") or {}
    report = Report(None, how="mailgun", verp=[v for v in [(ev.get("envelope") or {}).get("sender")] if v],
                    message_id=_mid(headers.get("message-id")))
    address = [a for a in [address_of(ev.get("recipient"))] if a]
    status = ev.get("delivery-status") or {}
    diag = " ".join(str(status.get(k) or "") for k in ("code", "message", "description")).strip() or None
    if name == "failed":
        permanent = ev.get("severity") == "permanent"
        kind = severity(status.get("enhanced-code"), diag) if permanent else BounceKind.SOFT
        report.entries = [Entry(kind, address, status.get("enhanced-code"), diag)]
    elif name == "complained":
        report.entries = [Entry(BounceKind.COMPLAINT, address, None, "Mailgun complaint")]
    else:
        report.kind = BounceKind.OTHER
        return report
    report.kind = report.entries[0].kind
    return report


_POSTMARK_HARD = {"HardBounce", "BadEmailAddress", "ManuallyDeactivated", "AddressChange"}
_POSTMARK_SOFT = {"SoftBounce", "Transient", "DnsError", "Blocked", "ChallengeVerification", "SMTPApiError", "InboxPlacement"}


def _postmark(body: dict) -> Report:
    record, kind_name = body.get("RecordType"), body.get("Type")
    address = [a for a in [address_of(body.get("Email"))] if a]
    diag = " ".join(str(body.get(k) or "") for k in ("Description", "Details")).strip()[:500] or None
    report = Report(None, how="postmark")
    if record == "SpamComplaint" or kind_name in ("SpamComplaint", "SpamNotification"):
        kind = BounceKind.COMPLAINT
    elif kind_name in _POSTMARK_HARD:
        kind = BounceKind.HARD
    elif kind_name in _POSTMARK_SOFT:
        kind = BounceKind.SOFT
    elif kind_name == "AutoResponder":
        report.kind = BounceKind.AUTOREPLY
        return report
    elif record == "Bounce" and kind_name:
        kind = BounceKind.SOFT  # an unknown bounce type: counted, but only as soft
    else:
        report.kind = BounceKind.OTHER
        return report
    report.entries = [Entry(kind, address, None, f"Postmark {kind_name}: {diag or ''}".strip(": "))]
    report.kind = kind
    return report


def _sendgrid(ev: dict) -> Report:
    name, reason = ev.get("event"), str(ev.get("reason") or ev.get("response") or "")
    address = [a for a in [address_of(ev.get("email"))] if a]
    report = Report(None, how="sendgrid", message_id=_mid(ev.get("smtp-id")))
    status = ev.get("status")
    if name == "bounce":
        kind = BounceKind.SOFT if ev.get("type") == "blocked" else severity(status, reason)
    elif name == "deferred":
        kind = BounceKind.SOFT
    elif name == "spamreport":
        kind, reason = BounceKind.COMPLAINT, "SendGrid spam report"
    elif name == "dropped" and any(w in reason for w in ("Bounced", "Invalid")):
        kind = BounceKind.HARD
    else:
        report.kind = BounceKind.OTHER
        return report
    report.entries = [Entry(kind, address, status, reason[:500] or None)]
    report.kind = kind
    return report


def _worst(entries: list[Entry]) -> BounceKind:
    kinds = {e.kind for e in entries}
    return next((k for k in (BounceKind.COMPLAINT, BounceKind.HARD, BounceKind.SOFT) if k in kinds), BounceKind.OTHER)
