"""Address and topic validation shared by the sign-up page and the CLI (pure functions)."""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from functools import lru_cache

import idna
from email_validator import EmailNotValidError, validate_email

MAX_TOPICS = 20
MAX_TOPIC_LEN = 60
# Cheap pre-check so obviously broken rows skip the (slower) full validator.
_ROUGH = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}\.[^@\s]+$")
_TOPIC_SPLIT = re.compile(r"[;|,\n]")
# RFC 5322 dot-atom: the plain ASCII local parts nearly every real address uses.
_DOT_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*\Z")
# Mailbox providers that deliver `j.o.h.n@` to `john@` (the canonical domain after the arrow).
DOTS_IGNORED = {"gmail.com": "gmail.com", "googlemail.com": "gmail.com", "protonmail.com": "proton.me",
                "protonmail.ch": "proton.me", "proton.me": "proton.me", "pm.me": "proton.me"}


class InvalidAddress(ValueError):
    """An address that is not a syntactically valid email address."""


def normalize_email(raw: str) -> str:
    """The canonical (lower-case) form of an address; InvalidAddress says why it is not one."""
    text = (raw or "").strip()
    if not text:
        raise InvalidAddress("empty address")
    if len(text) > 320 or not _ROUGH.match(text):
        raise InvalidAddress("not an email address")
    local, _, domain = text.rpartition("@")
    if len(local) <= 64 and len(text) <= 254 and domain.isascii() and _DOT_ATOM.match(local):
        # Fast path for imports: the domain verdict of email-validator is cached per domain.
        problem = _domain_problem(domain.lower())
        if problem:
            raise InvalidAddress(problem)
        return text.lower()
    try:
        info = validate_email(text, check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidAddress(str(exc)) from None
    return info.normalized.lower()


def mailbox_key(address: str) -> str:
    """The mailbox an address ends up in, for counting mails per person (never for sending).

    Domain in IDNA (punycode) form, local part case-folded without its +tag, and without dots for
    the providers that ignore them: `B.o.m.b+7@GoogleMail.com` and `bomb@gmail.com` are one key,
    so are `x@bücher.example` and `x@xn--bcher-kva.example`.
    """
    local, _, domain = unicodedata.normalize("NFC", address.strip()).rpartition("@")
    domain = domain.lower().rstrip(".")
    try:
        domain = idna.encode(domain, uts46=True).decode("ascii") if not domain.isascii() else domain
    except (idna.IDNAError, UnicodeError):
        pass  # kept as typed: still one key per spelling
    local = local.casefold().split("+", 1)[0] or local.casefold()
    if domain in DOTS_IGNORED:
        domain = DOTS_IGNORED[domain]
        local = local.replace(".", "")
    return f"{local}@{domain}"


@lru_cache(maxsize=8192)
def _domain_problem(domain: str) -> str | None:
    try:
        validate_email(f"x@{domain}", check_deliverability=False)
    except EmailNotValidError as exc:
        return str(exc)
    return None


def normalize_topics(raw: str | Iterable[str] | None) -> list[str]:
    """Topics as a clean list: split on ; | , or newlines, trimmed, deduped, bounded."""
    if raw is None:
        return []
    parts = _TOPIC_SPLIT.split(raw) if isinstance(raw, str) else [p for r in raw for p in _TOPIC_SPLIT.split(str(r))]
    seen: dict[str, str] = {}
    for p in parts:
        t = " ".join(p.split())[:MAX_TOPIC_LEN]
        if t and t.casefold() not in seen:
            seen[t.casefold()] = t
    return list(seen.values())[:MAX_TOPICS]
