"""Turning claimed delivery rows into ready-to-send messages (render once, personalize per row)."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from collections import OrderedDict
from datetime import datetime
from zoneinfo import ZoneInfo

from bot.delivery import mime as mailbuild
from bot import tokens
from bot.delivery.channels.base import Outgoing
from bot.config import Config

_CACHE_SIZE = 64  # (item, revision, language, kind) builds kept; an alert run needs 2 (fr, en)
_DIGEST_CACHE_SIZE = 512  # distinct (item list, language) digests kept: topics make few distinct lists
_MAX_AGE = 300.0  # seconds a build is reused; later retries get a fresh Date header
PHOTO_PREFIX = "photo:"  # external id of a Telegram photo post: its caption is what a correction edits
_PLAIN_NONCE = re.compile(r"[A-Za-z0-9_\-]*")  # JSON-encodes as itself between quotes


class TokenMaker:
    """tokens.make_token for one purpose, faster (BENCHMARKS.md): the derived HMAC key is built once and the
    payload is formatted directly (JSON only for unusual nonces).

    Checked against tokens.make_token at start; on any mismatch (another itsdangerous) it simply delegates.
    """

    def __init__(self, key: str, purpose: str):
        self.key, self.purpose = key, purpose
        signer = tokens.PlainURLSafeSerializer(key, salt=purpose).make_signer()
        self._sep = signer.sep
        self._mac = hmac.new(signer.derive_key(), digestmod=hashlib.sha1)
        sample = (123456, "n0nce")
        self.fast = self._make(*sample) == tokens.make_token(key, purpose, *sample)

    def _make(self, subscriber_id: int, nonce: str) -> str:
        if type(subscriber_id) is int and _PLAIN_NONCE.fullmatch(nonce):
            raw = b'[%d,"%s"]' % (subscriber_id, nonce.encode("ascii"))  # what compact JSON gives
        else:
            raw = json.dumps([subscriber_id, nonce], ensure_ascii=False, separators=(",", ":")).encode()
        payload = base64.urlsafe_b64encode(raw).rstrip(b"=")
        mac = self._mac.copy()
        mac.update(payload)
        return (payload + self._sep + base64.urlsafe_b64encode(mac.digest()).rstrip(b"=")).decode("ascii")

    def __call__(self, subscriber_id: int, nonce: str) -> str:
        """The same token tokens.make_token(key, purpose, subscriber_id, nonce) returns."""
        if self.fast:
            return self._make(subscriber_id, nonce)
        return tokens.make_token(self.key, self.purpose, subscriber_id, nonce)


class Composer:
    """Builds Outgoing messages: one MIME template per (item revision, language, kind), tokens per row."""

    def __init__(self, cfg: Config, renderer, secret_key: str):
        self.cfg = cfg
        self.renderer = renderer
        self.key = secret_key
        self.public_url = cfg.bot.public_url
        self.tz = ZoneInfo(cfg.bot.timezone)
        email = cfg.email
        self.sender = email.sender if email else "flashbot@localhost"
        self.domain = mailbuild.sender_domain(self.sender)
        self.list_id = mailbuild.list_id_value(email.list_id if email else None, self.sender, cfg.bot.name)
        self._unsub = TokenMaker(secret_key, tokens.UNSUBSCRIBE)
        self._prefs = TokenMaker(secret_key, tokens.PREFERENCES)
        self._mid_mac = hmac.new(hmac.new(secret_key.encode(), b"message-id", hashlib.sha256).digest(), digestmod=hashlib.sha256)
        # [bounces]: a signed return path per delivery (VERP) and a mailto unsubscribe address.
        self.verp = tokens.Verp(secret_key, cfg.bounces.domain) if cfg.bounces else None
        self._templates: OrderedDict[tuple, tuple[mailbuild.MailTemplate, float]] = OrderedDict()
        self._digests: OrderedDict[tuple, tuple[mailbuild.MailTemplate, float]] = OrderedDict()
        self._posts: OrderedDict[tuple, tuple[str, str | None]] = OrderedDict()
        self.dkim = mailbuild.signer_for(cfg)

    def message_id(self, row: dict) -> str:
        """A Message-ID unique per row yet stable across retries (a resent duplicate carries the same id)."""
        basis = f"{row['kind']}:{row['item_id']}:{row['digest_id']}:{row['revision']}:{row['recipient']}".encode()
        mac = self._mid_mac.copy()
        mac.update(basis)
        return f"<{mac.hexdigest()[:30]}@{self.domain}>"

    # -- email -------------------------------------------------------------------------------------
    def _template(self, cache_key: tuple, render, language: str, cache: OrderedDict | None = None) -> mailbuild.MailTemplate:
        cache = self._templates if cache is None else cache
        hit = cache.get(cache_key)
        if hit and time.monotonic() - hit[1] < _MAX_AGE:
            cache.move_to_end(cache_key)
            return hit[0]
        ph = mailbuild.Placeholders.new()
        rendered = render(ph.links(self.public_url))
        env = mailbuild.Envelope(self.sender, rendered.subject, language, self.list_id,
                                 datetime.now(self.tz), self.public_url, self.verp.domain if self.verp else None)
        template = mailbuild.build_template(env, rendered.text, rendered.html, ph)
        cache[cache_key] = (template, time.monotonic())
        cache.move_to_end(cache_key)
        if len(cache) > (_CACHE_SIZE if cache is self._templates else _DIGEST_CACHE_SIZE):
            cache.popitem(last=False)
        return template

    def email(self, row: dict, item: dict, thread_id: str | None = None) -> Outgoing:
        """An alert (or correction, kind 'update') email for the row's subscriber."""
        sub = row["subscriber"]
        language = sub["language"] or self.cfg.bot.language
        update = row["kind"] == "update"
        key = ("item", item["id"], item["revision"], item["content_hash"], language, update)
        template = self._template(
            key, lambda links: self.renderer.email_alert(item, language, links, update=update), language)
        return self._personalize(row, template, mailbuild.thread_headers(thread_id) if update else b"")

    def digest(self, row: dict, digest_items: list[dict]) -> Outgoing:
        """A personalized digest email. Its content depends only on the item list and the language,
        so subscribers with the same list (same topics, same last digest) share one build."""
        sub = row["subscriber"]
        language = sub["language"] or self.cfg.bot.language
        today = datetime.now(self.tz).date()  # the digest's title names the day
        key = ("digest", language, today, tuple((it["id"], it["revision"], it["content_hash"]) for it in digest_items))
        template = self._template(
            key, lambda links: self.renderer.email_digest(digest_items, language, links), language, self._digests)
        return self._personalize(row, template, b"")

    def _personalize(self, row: dict, template: mailbuild.MailTemplate, thread: bytes) -> Outgoing:
        sub = row["subscriber"]
        address = mailbuild.check_address(sub["email"])
        unsub = self._unsub(sub["id"], sub["token_nonce"] or "")
        prefs = self._prefs(sub["id"], sub["token_nonce"] or "")
        mid = self.message_id(row)
        verp = self.verp
        mailto = verp.unsub_local(sub["id"], sub["token_nonce"] or "") if verp else ""
        body = template.personalize(mailbuild.slot_values(address, mid, unsub, prefs, thread, mailto))
        if self.dkim:
            body = self.dkim.sign(body)
        meta = {"message_id": mid, "smtputf8": not address.isascii()}
        envelope_from = verp.address(verp.bounce_local(row["id"], row)) if verp else None
        return Outgoing(delivery_id=row["id"], recipient=address, body=body, meta=meta, envelope_from=envelope_from)

    def summary(self, row: dict, summary_items: list[dict]) -> Outgoing:
        """The mail carrying the alerts a subscriber's cap or quiet hours held back (kind 'summary')."""
        sub = row["subscriber"]
        language = sub["language"] or self.cfg.bot.language
        key = ("summary", language, tuple((it["id"], it["revision"], it["content_hash"]) for it in summary_items))
        template = self._template(
            key, lambda links: self.renderer.email_summary(summary_items, language, links), language, self._digests)
        return self._personalize(row, template, b"")

    # -- telegram ----------------------------------------------------------------------------------
    def telegram(self, row: dict, item: dict, edit_id: str | None = None, language: str | None = None) -> Outgoing:
        """The channel post in the chat's language: a photo with the post as caption when the item has a
        photo and the post fits, else a text post; for an update, an edit of the original post (its
        caption when the original is a photo post, `photo:<id>`)."""
        update = row["kind"] == "update"
        caption = bool(edit_id and edit_id.startswith(PHOTO_PREFIX))
        photos = bool(self.cfg.telegram and self.cfg.telegram.photos) and not edit_id
        key = (item["id"], item["revision"], item["content_hash"], update, language, caption, photos)
        post = self._posts.get(key)
        if post is None:
            if caption:
                post = (self.renderer.telegram_caption(item, update=update, language=language), None)
            else:
                post = tuple(self.renderer.telegram_message(item, update=update, language=language, photos=photos))
            self._posts[key] = post
            if len(self._posts) > _CACHE_SIZE:
                self._posts.popitem(last=False)
        text, photo = post
        meta = {"photo": photo} if photo else {}
        return Outgoing(delivery_id=row["id"], recipient=row["recipient"], body=text, edit_id=edit_id, meta=meta)
