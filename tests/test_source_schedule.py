"""When a source is polled next: interval changes (config sync, CLI, OPML), the one due rule shared by
the scheduler and the batch poll, and the operator's pause/resume from the CLI and the dashboard.

Time comes from a FixedClock throughout, so every delay is asserted exactly.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from fixtures_ingest import rss
from fixtures_service import add_source
from fixtures_web import ADMIN_PASSWORD, csrf_of
from sqlalchemy import insert, select, update
from typer.testing import CliRunner

from bot.cli import app
from bot.clock import FixedClock
from bot.config import load_config
from bot.ingest.fetch import make_client
from bot.ingest.poll import poll_all, poll_due, sync_sources
from bot.service.scheduler import Jobs, Scheduler, slack_for
from bot.store import open_db
from bot.store.schema import sources
from bot.store.sources import PAUSED_BY_OPERATOR, claim_due, due_source_ids, get_source, is_due

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=timezone.utc)
A = {"title": "Grève à la SNCF", "guid": "a"}


def sec(n: float) -> timedelta:
    return timedelta(seconds=n)


async def _nothing(*_args):
    return None


def scheduler(cfg, engine, clock) -> Scheduler:
    """A scheduler whose jobs know the sources' intervals (reconciled, never started)."""
    sched = Scheduler(cfg, engine, Jobs(_nothing, _nothing, _nothing), clock=clock)
    sched.reconcile()
    return sched


async def polled_once(feed_server, ingest_config, engine, interval: int, clock: FixedClock):
    """A config source with this interval, polled once at clock.now(); returns (config, row)."""
    cfg = ingest_config([{"name": "src", "url": feed_server.url("/f"), "interval": interval}])
    sync_sources(engine, cfg)
    feed_server.set("/f", rss([A]))
    async with make_client(cfg.fetch) as client:
        [report] = await poll_all(engine, cfg, client, clock)
    assert report.error is None
    row = get_source(engine, "src")
    assert (row["last_polled_at"], row["next_poll_at"]) == (clock.now(), clock.now() + sec(interval))
    return cfg, row


# -- B: an interval change never waits for the old schedule ---------------------------------------

async def test_lowered_interval_in_config_is_due_one_new_interval_after_the_last_poll(
        feed_server, ingest_config, ingest_engine):
    clock = FixedClock(T0)
    await polled_once(feed_server, ingest_config, ingest_engine, 60, clock)
    clock.advance(1)
    cfg = ingest_config([{"name": "src", "url": feed_server.url("/f"), "interval": 2}])
    sync_sources(ingest_engine, cfg)  # what a service restart does with the edited config.toml
    row = get_source(ingest_engine, "src")
    assert row["interval"] == 2 and row["next_poll_at"] == T0 + sec(2)  # not T0 + 60 s

    sched = scheduler(cfg, ingest_engine, clock)
    assert sched.intervals == {row["id"]: 2}
    assert not sched.is_due(row["id"])  # T0 + 1 s: 1 s early, more than the 0.7 s slack of a 2 s job
    clock.set(T0 + sec(2))
    assert sched.is_due(row["id"])
    async with make_client(cfg.fetch) as client:
        assert [r.source for r in await poll_due(ingest_engine, cfg, client, clock)] == ["src"]
    assert get_source(ingest_engine, "src")["next_poll_at"] == T0 + sec(4)  # and every 2 s from then on


async def test_raised_interval_keeps_the_next_poll_and_same_interval_keeps_a_backoff(
        feed_server, ingest_config, ingest_engine):
    clock = FixedClock(T0)
    await polled_once(feed_server, ingest_config, ingest_engine, 60, clock)
    sync_sources(ingest_engine, ingest_config([{"name": "src", "url": feed_server.url("/f"), "interval": 600}]))
    row = get_source(ingest_engine, "src")
    assert row["interval"] == 600 and row["next_poll_at"] == T0 + sec(60)  # min(old next poll, last + 600 s)

    with ingest_engine.begin() as conn:  # backing off after failures: 500 s away, interval unchanged
        conn.execute(update(sources).values(next_poll_at=T0 + sec(500), consecutive_failures=3))
    sync_sources(ingest_engine, ingest_config([{"name": "src", "url": feed_server.url("/f"), "interval": 600}]))
    assert get_source(ingest_engine, "src")["next_poll_at"] == T0 + sec(500)  # only a change clamps


def test_interval_change_of_a_source_never_polled_leaves_it_due_at_once(ingest_config, ingest_engine):
    sync_sources(ingest_engine, ingest_config([{"name": "src", "url": "http://127.0.0.1:9/f", "interval": 60}]))
    sync_sources(ingest_engine, ingest_config([{"name": "src", "url": "http://127.0.0.1:9/f", "interval": 2}]))
    row = get_source(ingest_engine, "src")
    assert (row["interval"], row["next_poll_at"]) == (2, None)


def write_config(tmp_path: Path, feed: Path, interval: int) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(f'[bot]\ndatabase = "flash.db"\n\n[[sources]]\nname = "quotidien"\nurl = "{feed}"\n'
                    f"interval = {interval}\n", encoding="utf-8")
    return path


def cli(config: Path, *args: str):
    res = CliRunner().invoke(app, ["--config", str(config), *args], env={"COLUMNS": "250"})
    assert res.exit_code == 0, res.output
    return res.output


async def test_interval_lowered_through_the_cli_and_opml_import_paths(tmp_path):
    # Every CLI command (`sources list`, `sources import`, …) syncs config.toml first; OPML import
    # itself only adds feeds, never changes the interval of one already present.
    feed = tmp_path / "quotidien.xml"
    feed.write_bytes(rss([A]))
    config = write_config(tmp_path, feed, 60)
    cli(config, "sources", "list")
    cfg = load_config(config)
    engine = open_db(cfg.database_url)
    try:
        clock = FixedClock(T0)
        async with make_client(cfg.fetch) as client:
            [report] = await poll_all(engine, cfg, client, clock)
        assert report.error is None and get_source(engine, "quotidien")["next_poll_at"] == T0 + sec(60)

        opml = tmp_path / "feeds.opml"
        opml.write_text(f'<opml version="2.0"><body><outline text="q" xmlUrl="{feed}"/></body></opml>', encoding="utf-8")
        write_config(tmp_path, feed, 30)
        assert "imported 0 source(s)" in cli(config, "sources", "import", str(opml), "--interval", "2")
        row = get_source(engine, "quotidien")
        assert (row["interval"], row["next_poll_at"]) == (30, T0 + sec(30))

        write_config(tmp_path, feed, 2)
        cli(config, "sources", "list")
        row = get_source(engine, "quotidien")
        assert (row["interval"], row["next_poll_at"]) == (2, T0 + sec(2))
        clock.set(T0 + sec(2))
        assert scheduler(load_config(config), engine, clock).is_due(row["id"])
    finally:
        engine.dispose()


# -- C: one due rule -------------------------------------------------------------------------------

SLACK = slack_for(60)  # 6.5 s: how early the scheduler's job for a 60 s source may poll it


@pytest.mark.parametrize("values, due, forced", [
    ({}, True, True),  # new: never polled
    ({"paused": True}, False, False),
    ({"paused": True, "next_poll_at": -60}, False, False),
    ({"retry_after_until": +60}, False, False),  # a server said wait: even a forced poll waits
    ({"retry_after_until": +60, "next_poll_at": -60}, False, False),
    ({"retry_after_until": 0, "next_poll_at": 0}, True, True),  # the wait ends now
    ({"retry_after_until": -1, "next_poll_at": -1}, True, True),
    ({"next_poll_at": -1}, True, True),
    ({"next_poll_at": 0}, True, True),
    ({"next_poll_at": +6}, True, True),  # within the slack
    ({"next_poll_at": +6.5}, True, True),
    ({"next_poll_at": +7}, False, True),  # beyond it: backoff, TTL or push fallback
    ({"next_poll_at": +3600}, False, True),
])
def test_scheduler_and_batch_poll_agree_on_the_due_rule(svc_config, svc_engine, values, due, forced):
    cfg = svc_config(digest={"enabled": False})
    sid = add_source(svc_engine, "s", interval=60, **{k: v if k == "paused" else T0 + sec(v) for k, v in values.items()})
    sched = Scheduler(cfg, svc_engine, Jobs(_nothing, _nothing, _nothing), clock=FixedClock(T0))
    sched.intervals[sid] = 60  # as reconcile records it (paused sources have no job; the rule still says no)
    assert sched.is_due(sid) is due
    assert is_due(svc_engine, sid, T0, SLACK) is due
    assert (due_source_ids(svc_engine, T0, slack=SLACK) == [sid]) is due
    assert (due_source_ids(svc_engine, T0, force=True) == [sid]) is forced
    assert (claim_due(svc_engine, cfg, T0, slack=SLACK) == [sid]) is due  # last: claiming moves next_poll_at


def test_due_rule_without_slack_and_for_unknown_sources(svc_config, svc_engine):
    sid = add_source(svc_engine, "s", next_poll_at=T0 + sec(1))
    assert not is_due(svc_engine, sid, T0) and due_source_ids(svc_engine, T0) == []
    assert is_due(svc_engine, sid, T0 + sec(1)) and due_source_ids(svc_engine, T0 + sec(1)) == [sid]
    assert not is_due(svc_engine, 999, T0)


def test_claim_leases_the_source_from_the_clock_it_was_given(svc_config, svc_engine):
    cfg = svc_config(fetch={"timeout": 10})
    sid = add_source(svc_engine, "s")
    assert claim_due(svc_engine, cfg, T0) == [sid]
    with svc_engine.connect() as conn:
        assert conn.execute(select(sources.c.next_poll_at)).scalar_one() == T0 + sec(10 + 60)
    assert claim_due(svc_engine, cfg, T0 + sec(69)) == []  # still being polled


# -- C: one operator write for pause and resume ----------------------------------------------------

async def test_cli_and_dashboard_pause_and_resume_write_the_same_row(web_client, web_engine, web_config, tmp_path):
    failing = {"url": "http://127.0.0.1:9/f", "origin": "cli", "consecutive_failures": 3, "last_error": "HTTP 503",
               "last_polled_at": T0, "next_poll_at": T0 + sec(240), "retry_after_until": T0 + sec(120)}
    with web_engine.begin() as conn:
        ids = {name: conn.execute(insert(sources).values(name=name, **failing)).inserted_primary_key[0]
               for name in ("web", "cli")}
    config = tmp_path / "cli.toml"
    config.write_text(f'[bot]\ndatabase = "{web_config.bot.database}"\n', encoding="utf-8")
    page = await web_client.get("/admin/login")
    await web_client.post("/admin/login", data={"csrf": csrf_of(page.text), "password": ADMIN_PASSWORD})

    async def dashboard(action: str) -> None:
        page = await web_client.get("/admin")
        r = await web_client.post(f"/admin/sources/{ids['web']}/{action}", data={"csrf": csrf_of(page.text)})
        assert r.status_code == 303 and f"notice={action}d" in r.headers["location"]

    def state() -> dict[str, dict]:
        cols = ("paused", "pause_reason", "consecutive_failures", "next_poll_at", "retry_after_until", "last_error")
        with web_engine.connect() as conn:
            return {r.name: {c: r._mapping[c] for c in cols} for r in conn.execute(select(sources))}

    await dashboard("pause")
    assert "paused cli" in cli(config, "sources", "pause", "cli")
    paused = state()
    assert paused["web"] == paused["cli"]
    assert paused["web"]["pause_reason"] == PAUSED_BY_OPERATOR == "paused by an operator"
    assert paused["web"]["next_poll_at"] == T0 + sec(240)  # pausing only pauses

    await dashboard("resume")
    assert "resumed cli" in cli(config, "sources", "resume", "cli")
    resumed = state()
    assert resumed["web"] == resumed["cli"]
    assert resumed["web"] == {"paused": False, "pause_reason": None, "consecutive_failures": 0,
                              "next_poll_at": None, "retry_after_until": None, "last_error": "HTTP 503"}
    assert due_source_ids(web_engine, T0) == sorted(ids.values())  # due at once
