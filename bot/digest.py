"""The daily newsletter: which items go to whom, when a run is due, and queuing it exactly once."""
from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from operator import itemgetter
from pathlib import Path
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import Engine

from bot import logs
from bot.models import NO_PROGRESS, Progress
from bot.store import digests as store
from bot.store.db import utcnow
from bot.topics import ItemTopics, wants

log = logging.getLogger(__name__)
# A subscriber with no digest yet gets the last day's news, not the whole archive.
FIRST_WINDOW = timedelta(days=1)
FIRST_START_KEY = "first_started_at"


def trigger(cfg) -> CronTrigger:
    """The digest CronTrigger in the bot's time zone."""
    return CronTrigger.from_crontab(cfg.digest.schedule, timezone=ZoneInfo(cfg.bot.timezone))


def last_fire(cfg, now: datetime) -> datetime | None:
    """The latest scheduled digest time at or before `now` (None if none within a year)."""
    trig = trigger(cfg)
    for back in (timedelta(hours=1), timedelta(days=1), timedelta(days=8), timedelta(days=32), timedelta(days=367)):
        fire, last = trig.get_next_fire_time(None, now - back), None
        while fire is not None and fire <= now:
            last = fire
            fire = trig.get_next_fire_time(fire, fire + timedelta(seconds=1))
        if last is not None:
            return last
    return None


def run_key(cfg, fire: datetime) -> str:
    """The digests.run_key of a scheduled run: its local date (plus time if it fires more than daily)."""
    local = fire.astimezone(ZoneInfo(cfg.bot.timezone))
    minute, hour = cfg.digest.schedule.split()[:2]
    once_a_day = not any(c in minute + hour for c in ",-/*")
    return local.date().isoformat() if once_a_day else local.strftime("%Y-%m-%dT%H:%M")


def topic_match(topics: list[str], item: Mapping) -> bool:
    """Whether an item is in a subscriber's topics (no topics = everything): the alerts' rule."""
    facets = item.get("_topics")  # precomputed once per item by `_prepare`, not per subscriber
    return facets.matches(topics) if facets is not None else wants(topics, item)


def _prepare(candidates: list[dict]) -> list[dict]:
    """Work done once per candidate, not per subscriber: topics, both sort keys; in cap order."""
    for c in candidates:
        c["_topics"] = ItemTopics(c)
        c["_keep"], c["_read"] = _keep_key(c), _read_key(c)
    # A stable sort: filtering this list later gives what sorting each subscriber's picks would.
    candidates.sort(key=_keep_key)
    return candidates


_KEEP, _READ = itemgetter("_keep"), itemgetter("_read")


def _keep_key(it: Mapping) -> tuple:
    """Which items stay when a digest is over the cap: Flash Info, then the newest."""
    return (not it.get("is_flash"), -it["known_at"].timestamp())


def _read_key(it: Mapping) -> tuple:
    """Reading order: Flash Info first, then grouped by source and category, newest first inside a group."""
    category = (it.get("source_category") or next(iter(it.get("categories") or []), "") or "").casefold()
    return (not it.get("is_flash"), (it.get("source_name") or "").casefold(), category, -it["known_at"].timestamp())


def order_items(chosen: list[Mapping]) -> list[Mapping]:
    """Flash Info first, then grouped by source and category, newest first inside a group."""
    if all("_read" in it for it in chosen):  # prepared candidates: their key is computed already
        return sorted(chosen, key=_READ)
    return sorted(chosen, key=_read_key)


def select_for(subscriber: Mapping, candidates: list[Mapping], already: set[int], now: datetime,
               max_items: int, match: Callable[[list[str], Mapping], bool] = topic_match) -> list[Mapping]:
    """The items of one subscriber's digest: new since their previous digest, in topic, never twice."""
    since = subscriber.get("last_digest_at") or now - FIRST_WINDOW
    topics = subscriber.get("topics") or []
    picked = [it for it in candidates if since < it["known_at"] <= now and it["id"] not in already
              and (not topics or match(topics, it))]  # no topics: everything (the rule, without a call per item)
    # Keep the Flash Info items and the newest others when over the cap, then order for reading
    # (prepared candidates come in that order already: the stable sort would change nothing).
    if len(picked) > max_items and not all("_keep" in it for it in picked):
        picked.sort(key=_keep_key)
    elif len(picked) > max_items:
        picked.sort(key=_KEEP)
    return order_items(picked[:max_items])


def queue_digest(engine: Engine, cfg, key: str, now: datetime | None = None, only_email: str | None = None,
                 progress: Progress = NO_PROGRESS) -> dict:
    """Queue one digest run: a 'digest' delivery per subscriber with news; nothing if `key` ran already.
    `progress` counts the subscribers as their digests are chosen."""
    now = now or utcnow()
    result = {"run_key": key, "digest_id": None, "queued": 0, "empty": 0, "existed": False}
    if cfg.email is None:
        result["skipped"] = "email: off ([email] section absent)"
        return result
    with engine.begin() as conn:
        digest_id = store.create_digest(conn, key, now)
        if digest_id is None:
            result["existed"] = True
            return result
        result["digest_id"] = digest_id
        earliest, audience = now - FIRST_WINDOW, 0
        for batch in store.digest_subscribers(engine, cfg.delivery.batch_size, only_email):
            earliest = min([earliest] + [s["last_digest_at"] for s in batch if s["last_digest_at"]])
            audience += len(batch)
        progress.start("queueing digests", audience)
        candidates = _prepare(store.candidate_items(conn, earliest))
        ids = [c["id"] for c in candidates]
        # Subscribers with the same topics, window and history get the same list: choose it once.
        chosen_for: dict[tuple, list[int]] = {}
        for batch in store.digest_subscribers(engine, cfg.delivery.batch_size, only_email):
            seen: dict[int, set[int]] = {}
            for s, i in store.already_digested(conn, [s["id"] for s in batch], ids):
                seen.setdefault(s, set()).add(i)
            todo = []
            for sub in batch:
                already = frozenset(seen.get(sub["id"], ()))
                same = (repr(sub.get("topics") or []), sub.get("last_digest_at"), already)
                if same not in chosen_for:
                    chosen_for[same] = [c["id"] for c in select_for(sub, candidates, already, now, cfg.digest.max_items)]
                if chosen_for[same]:
                    todo.append((sub["id"], chosen_for[same]))
            result["empty"] += len(batch) - len(todo)
            store.queue_subscriber_digests(conn, digest_id, todo, now)
            store.mark_digested(conn, [sid for sid, _ in todo], now)
            result["queued"] += len(todo)
            progress.advance(len(batch))
    logs.event(log, "digest_queued", run_key=key, queued=result["queued"], empty=result["empty"])
    return result


def note_first_start(engine: Engine, now: datetime | None = None) -> datetime:
    """Remember when this bot first ran: digests scheduled before that are not 'missed'."""
    value = store.set_meta_once(engine, FIRST_START_KEY, (now or utcnow()).isoformat())
    return datetime.fromisoformat(value)


def send_due(engine: Engine, cfg, now: datetime | None = None) -> dict | None:
    """Queue the latest scheduled digest unless it ran already (the cron job and catch-up at start).

    A run missed while the bot was down is queued once when it comes back; older missed runs are
    folded into it (each subscriber's window starts at their previous digest), never sent twice.
    """
    if not cfg.digest.enabled:
        return None
    now = now or utcnow()
    fire = last_fire(cfg, now)
    first_start = note_first_start(engine, now)
    if fire is None or fire < first_start:
        return None
    key = run_key(cfg, fire)
    if store.digest_exists(engine, key):
        return None
    return queue_digest(engine, cfg, key, now)


def send_now(engine: Engine, cfg, now: datetime | None = None, progress: Progress = NO_PROGRESS) -> dict:
    """An operator's `digest --send`: a run of its own; items already digested are still skipped."""
    now = now or utcnow()
    return queue_digest(engine, cfg, f"manual-{now.strftime('%Y%m%dT%H%M%S.%f')}", now, progress=progress)


def preview_items(engine: Engine, cfg, subscriber: Mapping, now: datetime | None = None) -> list[Mapping]:
    """What this subscriber's digest would hold right now (nothing is recorded)."""
    now = now or utcnow()
    since = subscriber.get("last_digest_at") or now - FIRST_WINDOW
    with engine.connect() as conn:
        candidates = _prepare(store.candidate_items(conn, since))
        seen = store.already_digested(conn, [subscriber["id"]], [c["id"] for c in candidates])
    return select_for(subscriber, candidates, {i for _, i in seen}, now, cfg.digest.max_items)


def write_preview(engine: Engine, cfg, email: str | None, out_file: Path) -> tuple[Path, Path, int] | None:
    """Render one subscriber's current digest to HTML and text files; None if the address is unknown."""
    from bot import tokens
    from bot.render.renderer import Renderer

    if email:
        sub = store.subscriber_by_email(engine, email)
        if sub is None:
            return None
    else:
        sub = next((b[0] for b in store.digest_subscribers(engine, 1)), None) or {
            "id": 0, "language": cfg.bot.language, "topics": [], "last_digest_at": None, "token_nonce": "preview"}
    chosen = preview_items(engine, cfg, sub)
    key = tokens.secret_key(engine, cfg.web.secret_key)
    links = {p: tokens.link(cfg.bot.public_url, p, tokens.make_token(key, p, sub["id"], sub["token_nonce"] or ""))
             for p in (tokens.UNSUBSCRIBE, tokens.PREFERENCES)}
    rendered = Renderer(cfg).email_digest(chosen, sub["language"], links)
    out_file = Path(out_file)
    text_file = out_file.with_suffix(".txt")
    out_file.parent.mkdir(parents=True, exist_ok=True)
    out_file.write_text(rendered.html, encoding="utf-8")
    text_file.write_text(f"Subject: {rendered.subject}\n\n{rendered.text}", encoding="utf-8")
    return out_file, text_file, len(chosen)
