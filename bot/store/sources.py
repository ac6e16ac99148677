"""Sources table: config sync, CLI changes, and the fetch state (backoff, pause, next poll)."""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Connection, Engine, and_, bindparam, delete, insert, or_, select, update
from sqlalchemy.engine import RowMapping

from bot.config import Config, SourceConfig
from bot.models import FeedResult
from bot.store import polls
from bot.store.db import retry_locked, utcnow
from bot.store.items import DESK_ORIGIN
from bot.store.schema import sources

REMOVED_FROM_CONFIG = "no longer in config.toml"
PAUSED_BY_OPERATOR = "paused by an operator"  # `sources pause` and the dashboard's pause button
_CHUNK = 500  # ids per IN (...) query, under SQLite's variable limit
_SETTINGS = ("interval", "all_flash", "respect_ttl", "alert_on_first_poll", "category")


class SourceError(ValueError):
    """A CLI-level problem with a source (unknown name, duplicate, ...)."""


def sync_sources(engine: Engine, cfg: Config, now: datetime | None = None) -> None:
    """Upsert [[sources]] into the database; sources gone from the file are paused, CLI ones kept."""
    def run() -> None:
        at = now or utcnow()
        with engine.begin() as conn:
            rows = {r.name: r for r in conn.execute(select(sources)).mappings()}
            for sc in cfg.sources:
                _upsert_config_source(conn, rows.get(sc.name), sc, at)
            names = {s.name for s in cfg.sources}
            for name, row in rows.items():
                if row["origin"] == "config" and name not in names and not row["paused"]:
                    conn.execute(update(sources).where(sources.c.id == row["id"]).values(
                        paused=True, pause_reason=REMOVED_FROM_CONFIG))
    retry_locked(run)


def _upsert_config_source(conn, row: RowMapping | None, sc: SourceConfig, now: datetime) -> None:
    values = {k: getattr(sc, k) for k in _SETTINGS}
    if row is None:
        conn.execute(insert(sources).values(name=sc.name, url=sc.url, config_url=sc.url, origin="config",
                                            created_at=now, **values))
        return
    interval = values.pop("interval")
    if row["config_url"] != sc.url:  # the operator edited the URL: start over with its state
        values.update(url=sc.url, config_url=sc.url, etag=None, last_modified=None, next_poll_at=None,
                      consecutive_failures=0)
    if row["origin"] == "config" and row["paused"] and row["pause_reason"] == REMOVED_FROM_CONFIG:
        values.update(paused=False, pause_reason=None)
    if row["origin"] != "config":
        values["origin"] = "config"
    if any(row[k] != v for k, v in values.items()):
        conn.execute(update(sources).where(sources.c.id == row["id"]).values(**values))
    set_interval(conn, row, interval)


def set_interval(conn: Connection, row: RowMapping, interval: int) -> None:
    """Change a source's poll interval: the one write of an interval change (every path goes through it).

    The next poll becomes due at most one new interval after the last poll, i.e. next_poll_at =
    min(next_poll_at, last_polled_at + interval): a lowered interval does not wait for the old
    schedule. A source never polled keeps its next_poll_at (unset: due at once). `row` is the
    source as read before the change; nothing is written when the interval is the same.
    """
    if int(row["interval"]) == interval:
        return
    conn.execute(update(sources).where(sources.c.id == row["id"]).values(interval=interval))
    if row["last_polled_at"] is not None:
        latest = row["last_polled_at"] + timedelta(seconds=interval)
        conn.execute(update(sources).where(sources.c.id == row["id"], sources.c.next_poll_at > latest)
                     .values(next_poll_at=latest))


def add_source(engine: Engine, name: str, url: str, interval: int = 60, origin: str = "cli",
               now: datetime | None = None, **settings) -> int:
    """Add a source from the CLI or an OPML import; return its id."""
    name = name.strip()
    if not name or not url.strip():
        raise SourceError("a source needs a name and a URL")
    if interval < 1:
        raise SourceError("interval must be at least 1 second")
    with engine.begin() as conn:
        if conn.execute(select(sources.c.id).where(sources.c.name == name)).first():
            raise SourceError(f"a source named {name!r} already exists")
        res = conn.execute(insert(sources).values(name=name, url=url.strip(), interval=interval, origin=origin,
                                                  created_at=now or utcnow(), **settings))
        return res.inserted_primary_key[0]


def get_source(engine: Engine, name_or_id: str | int) -> RowMapping:
    """One source by name or id; SourceError when unknown."""
    cond = sources.c.id == name_or_id if isinstance(name_or_id, int) else sources.c.name == name_or_id
    with engine.connect() as conn:
        row = conn.execute(select(sources).where(cond)).mappings().first()
    if row is None:
        raise SourceError(f"no source named {name_or_id!r} (see `flashbot sources list`)")
    return row


def remove_source(engine: Engine, name: str) -> None:
    """Delete a source and its items (a config source comes back at the next sync: edit config.toml)."""
    row = get_source(engine, name)
    if row["origin"] == DESK_ORIGIN:
        raise SourceError(f"{name!r} holds the hand-written alerts; it cannot be removed")
    with engine.begin() as conn:
        conn.execute(delete(sources).where(sources.c.id == row["id"]))


def set_paused(engine: Engine, source: int | str, paused: bool) -> bool:
    """Pause or resume a source by id or name: the operator's write, for the CLI and the dashboard alike.

    Pausing records PAUSED_BY_OPERATOR. Resuming clears the failure streak and any Retry-After and
    unsets next_poll_at, so the source is due at once. False when there is no such source.
    """
    cond = sources.c.id == source if isinstance(source, int) else sources.c.name == source
    cond = and_(cond, sources.c.origin != DESK_ORIGIN)  # the desk's source is never polled
    values: dict = {"paused": paused, "pause_reason": PAUSED_BY_OPERATOR if paused else None}
    if not paused:
        values.update(consecutive_failures=0, next_poll_at=None, retry_after_until=None)

    def run() -> bool:
        with engine.begin() as conn:
            return conn.execute(update(sources).where(cond).values(**values)).rowcount == 1
    return retry_locked(run)


def list_sources(engine: Engine) -> list[RowMapping]:
    """All sources, by name."""
    with engine.connect() as conn:
        return list(conn.execute(select(sources).where(sources.c.origin != DESK_ORIGIN).order_by(sources.c.name)).mappings())


def due_condition(now: datetime, slack: float = 0.0, force: bool = False) -> ColumnElement[bool]:
    """THE rule for "is this source due to be fetched at `now`", as one SQL condition.

    Due: not paused, no Retry-After still running, and next_poll_at unset or reached. `slack`
    seconds early still count as reached (the scheduler's jobs fire with jitter, and a poll that ran
    late must not push the next one a whole interval away); `force` drops that last test only
    (backoff and push fallback are skipped, Retry-After is not). The batch poll (claim_due,
    due_source_ids) and the scheduler's per-source check (is_due) all use it.
    """
    cond = [sources.c.paused.is_(False), sources.c.origin != DESK_ORIGIN,  # the desk is no feed
            or_(sources.c.retry_after_until.is_(None), sources.c.retry_after_until <= now)]
    if not force:
        cond.append(or_(sources.c.next_poll_at.is_(None), sources.c.next_poll_at <= now + timedelta(seconds=slack)))
    return and_(*cond)


def due_source_ids(engine: Engine, now: datetime | None = None, force: bool = False, slack: float = 0.0) -> list[int]:
    """Ids of active sources whose next poll is due (force: all active ones, still honouring Retry-After)."""
    cond = due_condition(now or utcnow(), slack, force)
    with engine.connect() as conn:
        q = select(sources.c.id).where(cond).order_by(sources.c.next_poll_at.is_not(None), sources.c.next_poll_at)
        return [r[0] for r in conn.execute(q)]


def is_due(engine: Engine, source_id: int, now: datetime | None = None, slack: float = 0.0) -> bool:
    """Whether one source is due (the scheduler's check before it polls a source); False when unknown."""
    cond = due_condition(now or utcnow(), slack)
    with engine.connect() as conn:
        return conn.execute(select(sources.c.id).where(sources.c.id == source_id, cond)).first() is not None


def claim_due(engine: Engine, cfg: Config, now: datetime | None = None, force: bool = False,
              slack: float = 0.0) -> list[int]:
    """Due source ids, leased until their poll can no longer be running (no double polls)."""
    now = now or utcnow()
    lease = now + timedelta(seconds=cfg.fetch.timeout + 60)  # recording the result replaces it

    def run() -> list[int]:
        ids = due_source_ids(engine, now, force, slack)
        if ids:
            with engine.begin() as conn:
                conn.execute(update(sources).where(sources.c.id.in_(ids)).values(next_poll_at=lease))
        return ids
    return retry_locked(run)


def poll_interval(row: RowMapping, result: FeedResult | None, cfg: Config, now: datetime) -> int:
    """Seconds until the next poll after a success: the interval, slowed by TTL hints only if asked."""
    interval = int(row["interval"])
    if row["respect_ttl"]:
        ttl = (result.ttl_seconds if result else None) or row["ttl_seconds"] or 0
        age = (result.max_age if result else None) or row["max_age"] or 0
        interval = max(interval, ttl, age)
    lease = row["websub_lease_until"]
    if row["websub_state"] == "active" and lease and lease > now and cfg.websub.enabled:
        interval = max(interval, cfg.websub.fallback_interval)  # push delivers; polling is a fallback
    return interval


def backoff_seconds(row: RowMapping, failures: int, cfg: Config) -> int:
    """Exponential backoff after `failures` consecutive failures, capped by fetch.max_backoff."""
    base = max(int(row["interval"]), 1)
    return int(min(cfg.fetch.max_backoff, base * 2 ** min(failures - 1, 30)))


def get_sources(engine: Engine, ids: list[int]) -> dict[int, RowMapping]:
    """Many sources by id in a few queries (one poll cycle reads its rows at once); unknown ids are absent."""
    found: dict[int, RowMapping] = {}
    with engine.connect() as conn:
        for i in range(0, len(ids), _CHUNK):
            q = select(sources).where(sources.c.id.in_(ids[i:i + _CHUNK]))
            found.update({r["id"]: r for r in conn.execute(q).mappings()})
    return found


def record_success(engine: Engine, row: RowMapping, result: FeedResult, cfg: Config, now: datetime) -> None:
    """Store the fetch state of a successful poll (200 or 304) and schedule the next one."""
    _update(engine, row["id"], success_values(row, result, cfg, now), polls.entry(row, result, now))


def record_successes(engine: Engine, entries: list[tuple[RowMapping, FeedResult, datetime]], cfg: Config) -> None:
    """record_success for many sources in one transaction (a cycle's unchanged feeds)."""
    groups: dict[tuple[str, ...], list[dict]] = {}
    history = [polls.entry(row, result, now) for row, result, now in entries]
    for row, result, now in entries:
        values = success_values(row, result, cfg, now)
        groups.setdefault(tuple(sorted(values)), []).append({"b_id": row["id"], **{f"v_{k}": v for k, v in values.items()}})

    def run() -> None:
        with engine.begin() as conn:
            for keys, params in groups.items():
                stmt = update(sources).where(sources.c.id == bindparam("b_id")).values(
                    {**{k: bindparam(f"v_{k}") for k in keys}, "poll_count": sources.c.poll_count + 1})
                conn.execute(stmt, params)  # executemany: one statement, one transaction
            polls.record(conn, history)
    if groups:
        retry_locked(run)


def success_values(row: RowMapping, result: FeedResult, cfg: Config, now: datetime) -> dict:
    """The column values a successful poll (200 or 304) writes, including the next poll time."""
    values = {
        "last_status": result.status, "last_polled_at": now, "last_success_at": now, "last_error": None,
        "consecutive_failures": 0, "baselined": True, "retry_after_until": None,
        "etag": result.etag, "last_modified": result.last_modified,
    }
    if not result.not_modified:  # a 304 carries no feed: keep what the last full answer said
        topic = (result.topic_url or row["url"]) if result.hub_url else None
        values.update(ttl_seconds=result.ttl_seconds, max_age=result.max_age, hub_url=result.hub_url, topic_url=topic)
        if (result.hub_url, topic) != (row["hub_url"], row["topic_url"]):
            # A new (or no) hub: the old subscription no longer delivers, so subscribe afresh.
            values.update(websub_state=None, websub_lease_until=None)
    elif result.max_age is not None:
        values["max_age"] = result.max_age
    if result.permanent_url and result.permanent_url != row["url"]:
        values["url"] = result.permanent_url
    values["next_poll_at"] = now + timedelta(seconds=poll_interval(row, result, cfg, now))
    return values


def record_failure(engine: Engine, row: RowMapping, result: FeedResult, cfg: Config, now: datetime) -> None:
    """Count a failure, back off exponentially, pause after fetch.max_failures (or at once on 410 Gone)."""
    failures = int(row["consecutive_failures"] or 0) + 1
    delay = backoff_seconds(row, failures, cfg)
    values = {"last_status": result.status, "last_polled_at": now, "last_error": result.error,
              "consecutive_failures": failures}
    if result.retry_after is not None:
        wait = min(result.retry_after, max(cfg.fetch.max_backoff, row["interval"]))
        values["retry_after_until"] = now + timedelta(seconds=wait)
        delay = max(delay, wait)
    values["next_poll_at"] = now + timedelta(seconds=delay)
    if result.status == 410:
        values.update(paused=True, pause_reason=f"the feed is gone (HTTP 410): {result.error}")
    elif failures >= cfg.fetch.max_failures:
        values.update(paused=True, pause_reason=f"{failures} consecutive failures; last error: {result.error}")
    _update(engine, row["id"], values, polls.entry(row, result, now))


def _update(engine: Engine, source_id: int, values: dict, poll: dict) -> None:
    """Write a poll's fetch state and its poll_history row in one transaction."""
    def run() -> None:
        with engine.begin() as conn:
            conn.execute(update(sources).where(sources.c.id == source_id)
                         .values(**values, poll_count=sources.c.poll_count + 1))
            polls.record(conn, [poll])
    retry_locked(run)
