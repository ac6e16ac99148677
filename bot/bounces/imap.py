"""IMAP polling of a hosted bounce mailbox (`[bounces] imap_url`, password from FLASHBOT_IMAP_PASSWORD).

Each unprocessed mail is fetched (BODY.PEEK: the server's \\Seen stays as it was), stored, processed,
and only THEN flagged with the $FlashbotProcessed keyword (or moved to `bounces.imap_move_to`). A crash
between the commit and the flag fetches the mail again at the next poll: it is recognized (same bytes)
and its effect, already committed, is not applied twice.
"""
from __future__ import annotations

import imaplib
import logging
import re
import ssl
from email.parser import BytesHeaderParser

from bot import logs
from bot.bounce_config import imap_parts
from bot.models import InboundState
from bot.store import bounces as inbox

log = logging.getLogger(__name__)
KEYWORD = "$FlashbotProcessed"
BATCH = 500  # mails handled per poll; the rest waits for the next one
ENVELOPE_HEADERS = ("Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To", "To")
_UIDS = re.compile(rb"\d+")


class ImapError(Exception):
    """The mailbox cannot be read (connection, login, folder); the message says which."""


def _quote(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


def connect(url: str, password: str, ca_file: str | None = None, timeout: float = 30) -> imaplib.IMAP4:
    """A logged-in IMAP connection (TLS for imaps://, verified against the system CAs or `ca_file`)."""
    p = imap_parts(url)
    try:
        if p["tls"]:
            ctx = ssl.create_default_context(cafile=ca_file)
            conn = imaplib.IMAP4_SSL(p["host"], p["port"], ssl_context=ctx, timeout=timeout)
        else:
            conn = imaplib.IMAP4(p["host"], p["port"], timeout=timeout)
        conn.login(p["user"], password)
    except (OSError, imaplib.IMAP4.error, ssl.SSLError) as exc:
        raise ImapError(f"bounces.imap_url: {p['host']}:{p['port']}: {exc}") from None
    return conn


def check(url: str, password: str, ca_file: str | None = None, timeout: float = 10) -> str:
    """`flashbot check`: log in and open the folder, read nothing; the folder's name, or ImapError."""
    conn = connect(url, password, ca_file, timeout)
    folder = imap_parts(url)["folder"]
    try:
        typ, _ = conn.select(_quote(folder), readonly=True)
    except (OSError, imaplib.IMAP4.error) as exc:
        raise ImapError(f"bounces.imap_url: cannot open folder {folder!r}: {exc}") from None
    finally:
        try:
            conn.logout()
        except (OSError, imaplib.IMAP4.error):
            pass
    if typ != "OK":
        raise ImapError(f"bounces.imap_url: cannot open folder {folder!r}")
    return folder


def envelope_to(raw: bytes, domain: str) -> str:
    """Addresses of the bounce domain named by the delivery headers (Delivered-To, X-Original-To, To…)."""
    headers = BytesHeaderParser().parsebytes(raw[:65536])
    found = []
    for name in ENVELOPE_HEADERS:
        for value in headers.get_all(name) or []:
            found += [a.lower() for a in re.findall(r"[\w.+-]+@" + re.escape(domain), str(value), flags=re.I)]
    return ",".join(dict.fromkeys(found))


def poll(cfg, engine, processor, password: str, timeout: float = 30) -> dict:
    """One pass over the mailbox: {"fetched", "stored", "flagged"}; raises ImapError when it cannot read it."""
    b = cfg.bounces
    conn = connect(b.imap_url, password, cfg.resolve(b.imap_ca_file) if b.imap_ca_file else None, timeout)
    counts = {"fetched": 0, "stored": 0, "flagged": 0}
    try:
        typ, _ = conn.select(_quote(imap_parts(b.imap_url)["folder"]))
        if typ != "OK":
            raise ImapError(f"bounces.imap_url: cannot open folder {imap_parts(b.imap_url)['folder']!r}")
        keywords = b"\\*" in b" ".join(x for x in (conn.untagged_responses.get("PERMANENTFLAGS") or []) if isinstance(x, bytes))
        criteria = ("UNKEYWORD", KEYWORD) if keywords else ("UNSEEN",)
        typ, data = conn.uid("SEARCH", *criteria)
        uids = _UIDS.findall(data[0] or b"") if typ == "OK" and data else []
        for uid in uids[:BATCH]:
            raw = _fetch(conn, uid, b.max_bytes)
            if raw is None:
                continue
            counts["fetched"] += 1
            row_id, new = inbox.store(engine, [{"source": "imap", "raw": raw, "envelope_to": envelope_to(raw, b.domain)}])[0]
            counts["stored"] += new
            processor.run_pending(ids=[row_id])
            if _state(engine, row_id) == InboundState.NEW:
                continue  # not processed (database trouble): left unflagged, tried again next poll
            _done(conn, uid, keywords, b.imap_move_to)
            counts["flagged"] += 1
    finally:
        try:
            conn.logout()
        except (OSError, imaplib.IMAP4.error):
            pass
    return counts


def _fetch(conn: imaplib.IMAP4, uid: bytes, max_bytes: int) -> bytes | None:
    """The mail's bytes; only its header (with a note) when it is over max_bytes."""
    typ, data = conn.uid("FETCH", uid, "(RFC822.SIZE)")
    size = re.search(rb"RFC822\.SIZE (\d+)", data[0] or b"") if typ == "OK" and data and data[0] else None
    if size is None:
        return None
    part = "BODY.PEEK[]" if int(size.group(1)) <= max_bytes else "BODY.PEEK[HEADER]"
    typ, data = conn.uid("FETCH", uid, f"({part})")
    body = next((x[1] for x in data or [] if isinstance(x, tuple)), None) if typ == "OK" else None
    if body is None:
        return None
    if part != "BODY.PEEK[]":
        logs.event(log, "bounce_imap_too_large", logging.WARNING, uid=uid.decode(), bytes=int(size.group(1)))
        body += f"\r\n[Flashbot: body of {int(size.group(1))} bytes not fetched (over bounces.max_bytes)]\r\n".encode()
    return body


def _state(engine, row_id: int) -> str | None:
    row = inbox.get(engine, row_id)
    return row["state"] if row else None


def _done(conn: imaplib.IMAP4, uid: bytes, keywords: bool, move_to: str | None) -> None:
    """Flag (or move) a mail whose effect is committed."""
    conn.uid("STORE", uid, "+FLAGS", f"({KEYWORD} \\Seen)" if keywords else "(\\Seen)")
    if move_to:
        target = _quote(move_to)
        if "MOVE" in conn.capabilities:
            conn.uid("MOVE", uid, target)
        else:
            conn.uid("COPY", uid, target)
            conn.uid("STORE", uid, "+FLAGS", "(\\Deleted)")
            conn.expunge()
