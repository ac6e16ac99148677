"""The one processor: a stored mail or provider event → a report → tied to one delivery → its effect.

SMTP, IMAP and webhooks only store what they receive (bot.store.bounces); everything else happens
here, one batch per transaction: classify (outside the transaction), then for each row tie the report
to a delivery through a signed token, check it names that delivery's address, apply the effect
(bot.store.outcomes) and mark the row, all committed together.
"""
from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from concurrent.futures import BrokenExecutor, Executor
from dataclasses import dataclass
from datetime import datetime

from bot import logs
from bot.bounces import providers
from bot.bounces.classify import Report, classify
from bot.models import BounceKind, InboundState
from bot.store import bounces as inbox
from bot.store import outcomes, retry_locked, utcnow
from bot.tokens import BOUNCE, MAILTO_UNSUB, Verp, secret_key

log = logging.getLogger(__name__)
MAIL_SOURCES = ("smtp", "imap")
EFFECTS = (BounceKind.HARD, BounceKind.SOFT, BounceKind.COMPLAINT)


@dataclass
class Target:
    """Whom a report is about: a subscriber, and the delivery when one is known."""

    subscriber: dict
    delivery: dict | None = None
    via: str = ""


class Rejected(Exception):
    """The report cannot be tied to anyone safely: nobody is touched."""


def report_of(source: str, raw: bytes) -> Report:
    """Classify one stored row: MIME for mails, the provider's JSON for webhook events (pure: runs in a worker)."""
    try:
        return classify(raw) if source in MAIL_SOURCES else providers.parse(source, raw)
    except Exception as exc:  # noqa: BLE001 - one hostile row ends unparsed; it must not hold up the others
        return Report(None, how=source, error=f"cannot classify: {type(exc).__name__}: {exc}"[:300])


class Processor:
    """Processes stored bounce mails and events; safe to run in several processes at once."""

    def __init__(self, cfg, engine, key: str | None = None, classifier: Executor | None = None):
        self.cfg, self.engine = cfg, engine
        self.verp = Verp(key or secret_key(engine, cfg.web.secret_key), cfg.bounces.domain)
        self.limits = outcomes.Limits(cfg.delivery.bounce_limit, cfg.bounces.soft_limit, cfg.bounces.soft_window_days)
        # `flashbot run` classifies in a worker process (bot.bounces.worker): parsing MIME is most of the
        # CPU, and there it neither holds this process's GIL nor slows the SMTP receiver.
        self.classifier = classifier
        self.done: Counter = Counter()  # rows processed by this processor since it was made, per resulting state

    def run_pending(self, batch: int = 200, ids: list[int] | None = None, now: datetime | None = None,
                    stop: Callable[[], bool] | None = None) -> Counter:
        """Process every `new` row (or those of `ids`), a batch per transaction, until none is left or
        `stop()` says so; counts per resulting state. `now` (default: the clock) is the processing time."""
        totals: Counter = Counter()
        while stop is None or not stop():
            rows = inbox.pending(self.engine, batch, ids)
            if not rows:
                break
            reports = list(zip(rows, self.reports(rows)))
            try:
                applied = retry_locked(lambda: self._apply(reports, now or utcnow()))
                totals += applied
                self.done += applied
            except Exception as exc:  # noqa: BLE001 - a poison batch must not stop the service
                log.exception("bounce processing failed for %s rows; they stay new", len(rows))
                inbox.failed_attempt(self.engine, [r["id"] for r in rows], f"processing failed: {exc!r}")
                totals["failed"] += len(rows)
        return totals

    def reports(self, rows: list[dict]) -> list[Report]:
        """Classify stored rows, in the worker process when there is one (here if it died)."""
        if self.classifier is not None:
            try:
                return list(self.classifier.map(report_of, [r["source"] for r in rows], [r["raw"] for r in rows], chunksize=16))
            except BrokenExecutor as exc:  # the worker died (killed, out of memory): classify here from now on
                logs.event(log, "bounce_classifier_lost", logging.WARNING, error=repr(exc), fallback="in process")
                self.classifier = None
            except Exception as exc:  # noqa: BLE001 - e.g. a report that cannot be pickled: this batch here
                logs.event(log, "bounce_classifier_failed", logging.WARNING, error=repr(exc)[:300], fallback="in process")
        return [report_of(r["source"], r["raw"]) for r in rows]

    def _apply(self, reports: list[tuple[dict, Report]], now: datetime) -> Counter:
        """One transaction for the batch: claim the rows still new, apply each effect, mark them, count."""
        tally: Counter = Counter()
        done: list[tuple[dict, dict]] = []
        with self.engine.begin() as conn:
            mine = inbox.claim(conn, [row["id"] for row, _ in reports])  # another processor may have been first
            for row, report in reports:
                if row["id"] in mine:  # marked at once: the next row's soft-bounce count sees this one
                    done.append((row, self._decide(conn, row, report, now, tally)))
                    inbox.finish(conn, row["id"], done[-1][1])
            outcomes.count(conn, tally, now)  # charts (stats table) first: it takes its keys out of the tally
            tally.update(f"processed:{v['kind'] or 'none'}:{v['state']}" for _, v in done)
            inbox.bump_many(conn, tally)
        for row, values in done:  # logged once committed: the log never tells of an effect that was rolled back
            self._log(row, values)
        return Counter(values["state"] for _, values in done)

    def _decide(self, conn, row: dict, report: Report, now: datetime, tally: Counter) -> dict:
        """The row's new values; applies the effect on the way (same transaction)."""
        entry = report.entries[0] if report.entries else None
        values = {"kind": report.kind, "processed_at": now, "status": entry.status if entry else None,
                  "diagnostic": (entry.diagnostic if entry else None) or report.error,
                  "recipient": entry.addresses[0] if entry and entry.addresses else None}
        unsub = self._mailto(row)
        if unsub is not None:
            return {**values, **self._unsubscribe(conn, unsub, report, now, tally)}
        try:
            target = self._target(conn, row, report)
        except Rejected as exc:
            if report.kind in EFFECTS:
                return {**values, "state": InboundState.REJECTED, "note": str(exc)}
            target = None
        if target is not None:
            values.update(subscriber_id=target.subscriber["id"], delivery_id=(target.delivery or {}).get("id"))
        if report.kind is None:
            return {**values, "state": InboundState.UNPARSED, "note": report.error}
        if report.kind not in EFFECTS:
            return {**values, "state": InboundState.IGNORED, "note": f"{report.kind.value} ({report.how}): nothing to do"}
        if target is None:
            return {**values, "state": InboundState.REJECTED, "note": "no signed token ties it to a delivery: nobody touched"}
        named = [e for e in report.entries if e.addresses]
        mine = [e for e in named if target.subscriber["email"] in e.addresses]
        if named and not mine:
            return {**values, "state": InboundState.REJECTED,
                    "note": f"names {named[0].addresses[0]}, not the address of delivery "
                            f"{(target.delivery or {}).get('id')} (subscriber {target.subscriber['id']}): nobody touched"}
        entry = mine[0] if mine else entry
        kind = entry.kind if entry and entry.kind in EFFECTS else report.kind
        note = outcomes.record(conn, kind, target.subscriber["id"], target.delivery, entry.status if entry else None,
                               entry.diagnostic if entry else None, report.how, self.limits, now, tally)
        return {**values, "kind": kind, "state": InboundState.PROCESSED, "note": f"{note} (via {target.via})",
                "status": entry.status if entry else None, "diagnostic": entry.diagnostic if entry else values["diagnostic"],
                "recipient": target.subscriber["email"]}

    # -- attribution -------------------------------------------------------------------------------
    def _mailto(self, row: dict) -> tuple[int, str] | None:
        """(subscriber id, mac) when the mail was sent to a u- address of our domain."""
        for addr in (row.get("envelope_to") or "").split(","):
            parsed = Verp.parse(addr) if self.verp.on_domain(addr) else None
            if parsed and parsed[0] == MAILTO_UNSUB and row["source"] in MAIL_SOURCES:
                return parsed[1], parsed[2]
        return None

    def _unsubscribe(self, conn, unsub: tuple[int, str], report: Report, now: datetime, tally: Counter) -> dict:
        sub = outcomes.subscriber(conn, unsub[0])
        base = {"kind": BounceKind.UNSUBSCRIBE, "subscriber_id": sub["id"] if sub else None}
        if report.kind == BounceKind.AUTOREPLY or (report.kind in EFFECTS and report.how in ("dsn", "arf")):
            return {**base, "kind": report.kind, "state": InboundState.IGNORED, "note": "a report sent to the unsubscribe address: ignored"}
        if sub is None or not self.verp.unsub_ok(sub["id"], sub["token_nonce"] or "", unsub[1]):
            if sub is not None and sub["status"] == "unsubscribed":
                return {**base, "state": InboundState.IGNORED, "note": "already unsubscribed"}
            return {**base, "subscriber_id": None, "state": InboundState.REJECTED, "note": "unsubscribe token does not verify: nobody touched"}
        done = outcomes.unsubscribe(conn, sub["id"], "mailto unsubscribe (List-Unsubscribe)", "mailto", now, tally)
        return {**base, "state": InboundState.PROCESSED, "recipient": sub["email"],
                "note": "unsubscribed by mail" if done else f"subscriber was {sub['status']}: nothing to do"}

    def _target(self, conn, row: dict, report: Report) -> Target | None:
        """Who the report is about, from the strongest clue: envelope token, quoted token, Message-ID, address."""
        mail = row["source"] in MAIL_SOURCES
        envelope = [a for a in (row.get("envelope_to") or "").split(",") if a.strip()] if mail else []
        tokens = [a for a in envelope if self._shaped(a, BOUNCE)]
        if tokens:  # the envelope names a delivery: that token alone decides
            return self._by_token(conn, tokens[0], "return path")
        for addr in report.verp:
            if self._shaped(addr, BOUNCE) and self.verp.bounce_id(addr) is not None:
                return self._by_token(conn, addr, "quoted return path")
        for addr in report.verp:
            parsed = Verp.parse(addr) if self._shaped(addr, MAILTO_UNSUB) else None
            sub = outcomes.subscriber(conn, parsed[1]) if parsed else None
            if sub and self.verp.unsub_ok(sub["id"], sub["token_nonce"] or "", parsed[2]):
                return Target(sub, outcomes.find_delivery(conn, sub["id"], report.message_id) if report.message_id else None,
                              "quoted List-Unsubscribe")
        address = report.original_to if mail else next((a for e in report.entries for a in e.addresses), None)
        sub = outcomes.subscriber(conn, email=address) if address else None
        if sub is None:
            return None
        if mail:  # a quoted address alone proves nothing; our Message-ID (keyed, unguessable) does
            dlv = outcomes.find_delivery(conn, sub["id"], report.message_id) if report.message_id else None
            return Target(sub, dlv, "quoted Message-ID") if dlv else None
        dlv = outcomes.find_delivery(conn, sub["id"], report.message_id)
        if dlv is None and report.message_id:
            dlv = outcomes.find_delivery(conn, sub["id"], None)
        return Target(sub, dlv, f"{report.how} webhook")

    def _shaped(self, addr: str, kind: str) -> bool:
        parsed = Verp.parse(addr)
        return parsed is not None and parsed[0] == kind and self.verp.on_domain(addr)

    def _by_token(self, conn, addr: str, via: str) -> Target:
        ref = self.verp.bounce_ref(addr)
        if ref is None:
            raise Rejected("return-path token does not verify (forged, or signed with another key): nobody touched")
        dlv = outcomes.delivery(conn, ref.delivery_id)
        if not outcomes.matches(dlv, ref):  # compacted after delivery.detail_days: the token says whose it was
            dlv = outcomes.revive(conn, ref)
        if dlv is None or dlv["subscriber_id"] is None or not dlv["email"]:
            raise Rejected(f"delivery {ref.delivery_id} no longer exists or its subscriber was erased: nobody touched")
        sub = {"id": dlv["subscriber_id"], "email": dlv["email"], "status": dlv["status"], "token_nonce": dlv["token_nonce"]}
        return Target(sub, dlv, via)

    def _log(self, row: dict, v: dict) -> None:
        level = logging.WARNING if v["state"] in (InboundState.REJECTED, InboundState.UNPARSED) else logging.INFO
        logs.event(log, f"bounce_{v['state']}", level, id=row["id"], source=row["source"], kind=v.get("kind"),
                   delivery=v.get("delivery_id"), subscriber=v.get("subscriber_id"), note=v.get("note"))
