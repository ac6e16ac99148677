"""Polling, storing and the meaning of each item: baseline, flash, held, update, duplicate, new."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from fixtures_ingest import rss
from sqlalchemy import select

from bot.clock import FixedClock
from bot.ingest.poll import ingest_bytes, poll_all, poll_due, refresh_source, sync_sources
from bot.ingest.fetch import make_client
from bot.store import utcnow
from bot.store.schema import items, sources
from bot.store.sources import get_source, list_sources

A = {"title": "Grève à la SNCF", "guid": "a"}
FLASH = {"title": "FLASH INFO : Séisme de magnitude 6 au Japon", "guid": "f1"}
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=timezone.utc)  # what a FixedClock reads: delays are exact


def kinds(reports) -> dict[str, list[tuple[str, str]]]:
    return {r.source: [(e.kind, e.title) for e in r.events] for r in reports}


async def poll(engine, cfg, clock=None):
    async with make_client(cfg.fetch) as client:
        return await poll_all(engine, cfg, client, clock)


async def poll_due_at(engine, cfg, clock):
    async with make_client(cfg.fetch) as client:
        return await poll_due(engine, cfg, client, clock)


def item_rows(engine):
    with engine.connect() as conn:
        return {r["key"]: r for r in conn.execute(select(items)).mappings()}


async def test_baseline_then_flash_then_update_then_304(feed_server, ingest_config, ingest_engine):
    cfg = ingest_config([{"name": "src", "url": feed_server.url("/f")}])
    sync_sources(ingest_engine, cfg)
    feed_server.set("/f", rss([FLASH, A]), etag=True)
    assert kinds(await poll(ingest_engine, cfg)) == {"src": [("baseline", "Séisme de magnitude 6 au Japon"), ("baseline", "Grève à la SNCF")]}
    assert all(r["alert_state"] == "none" and r["baseline"] for r in item_rows(ingest_engine).values())

    new_flash = {"title": "Flash info - Incendie à Lyon", "guid": "f2"}
    feed_server.set("/f", rss([new_flash, FLASH, A, {"title": "Météo", "guid": "m"}]), etag=True)
    assert kinds(await poll(ingest_engine, cfg)) == {"src": [("flash", "Incendie à Lyon"), ("new", "Météo")]}
    row = item_rows(ingest_engine)["f2"]
    # Ingest alone decides the alert ('detected'); the pipeline's fan-out makes it 'queued'.
    assert (row["alert_state"], row["label"], row["headline"], row["revision"]) == ("detected", "FLASH INFO", "Incendie à Lyon", 0)
    assert row["detected_at"] is not None and row["norm_title"] == "incendie a lyon"

    edited = {**new_flash, "title": "Flash info - Incendie à Lyon : deux blessés"}
    feed_server.set("/f", rss([edited, FLASH, A, {"title": "Météo", "guid": "m"}]), etag=True)
    assert kinds(await poll(ingest_engine, cfg)) == {"src": [("update", "Incendie à Lyon : deux blessés")]}
    assert item_rows(ingest_engine)["f2"]["revision"] == 1

    reports = await poll(ingest_engine, cfg)
    assert reports[0].result.status == 304 and reports[0].events == []
    assert feed_server.log("/f")[-1].status == 304
    # An item is alerted at most once: one alert, never re-alerted.
    assert [r["key"] for r in item_rows(ingest_engine).values() if r["alert_state"] != "none"] == ["f2"]


async def test_alert_on_first_poll_and_require_approval(feed_server, ingest_config, ingest_engine):
    cfg = ingest_config([{"name": "src", "url": feed_server.url("/f"), "alert_on_first_poll": True}],
                        flash={"require_approval": True})
    sync_sources(ingest_engine, cfg)
    feed_server.set("/f", rss([FLASH, A]))
    assert kinds(await poll(ingest_engine, cfg)) == {"src": [("held", "Séisme de magnitude 6 au Japon"), ("new", "Grève à la SNCF")]}
    assert item_rows(ingest_engine)["f1"]["alert_state"] == "held"


async def test_same_story_from_two_sources_is_one_alert(feed_server, ingest_config, ingest_engine):
    cfg = ingest_config([{"name": "un", "url": feed_server.url("/1")}, {"name": "deux", "url": feed_server.url("/2")}])
    sync_sources(ingest_engine, cfg)
    feed_server.set("/1", rss([A]))
    feed_server.set("/2", rss([{"title": "Rien", "guid": "r"}]))
    await poll(ingest_engine, cfg)  # baselines
    feed_server.set("/1", rss([FLASH, A]))
    assert kinds(await poll(ingest_engine, cfg))["un"] == [("flash", "Séisme de magnitude 6 au Japon")]
    other = {"title": "URGENT – Séisme de magnitude 6 au Japon !", "guid": "x9"}
    unrelated = {"title": "FLASH INFO : Incendie à Lyon", "guid": "x10"}
    feed_server.set("/2", rss([other, unrelated]))
    got = kinds(await poll(ingest_engine, cfg))["deux"]
    assert sorted(got) == [("duplicate", "Séisme de magnitude 6 au Japon !"), ("flash", "Incendie à Lyon")]
    rows = item_rows(ingest_engine)
    assert rows["f1"]["also_sources"] == ["deux"]
    assert rows["x9"]["duplicate_of"] == rows["f1"]["id"] and rows["x9"]["alert_state"] == "none"


async def test_duplicate_window_expires(feed_server, ingest_config, ingest_engine):
    cfg = ingest_config([{"name": "un", "url": feed_server.url("/1"), "alert_on_first_poll": True},
                         {"name": "deux", "url": feed_server.url("/2"), "alert_on_first_poll": True}])
    sync_sources(ingest_engine, cfg)
    feed_server.set("/1", rss([FLASH]))
    feed_server.set("/2", rss([]))
    await poll(ingest_engine, cfg)
    with ingest_engine.begin() as conn:  # the first alert is now 7 hours old (window is 6 h)
        conn.execute(items.update().values(detected_at=utcnow() - timedelta(hours=7)))
    feed_server.set("/2", rss([{**FLASH, "guid": "other"}]))
    assert kinds(await poll(ingest_engine, cfg))["deux"] == [("flash", "Séisme de magnitude 6 au Japon")]


async def test_relabelled_story_is_alerted_once(feed_server, ingest_config, ingest_engine):
    cfg = ingest_config([{"name": "src", "url": feed_server.url("/f"), "alert_on_first_poll": True}])
    sync_sources(ingest_engine, cfg)
    feed_server.set("/f", rss([A]))
    assert kinds(await poll(ingest_engine, cfg))["src"] == [("new", "Grève à la SNCF")]
    feed_server.set("/f", rss([{**A, "title": "FLASH INFO : Grève à la SNCF"}]))
    assert kinds(await poll(ingest_engine, cfg))["src"] == [("flash", "Grève à la SNCF")]
    feed_server.set("/f", rss([{**A, "title": "Grève à la SNCF"}]))  # label dropped: a correction
    assert kinds(await poll(ingest_engine, cfg))["src"] == [("update", "Grève à la SNCF")]


async def test_one_failing_source_never_delays_others(feed_server, ingest_config, ingest_engine):
    srcs = [{"name": "lent", "url": feed_server.url("/never")}, {"name": "cassé", "url": feed_server.url("/500")},
            {"name": "html", "url": feed_server.url("/html")}, {"name": "absent", "url": "/nonexistent/feed.xml"}]
    srcs += [{"name": f"bon{i}", "url": feed_server.url(f"/ok{i}")} for i in range(5)]
    cfg = ingest_config(srcs, fetch={"timeout": 1})
    sync_sources(ingest_engine, cfg)
    feed_server.set("/never", rss([A]), delay=30)
    feed_server.set("/500", b"boom", status=500, content_type="text/plain")
    feed_server.set("/html", b"<html><body>Maintenance</body></html>", content_type="text/html")
    for i in range(5):
        feed_server.set(f"/ok{i}", rss([A, FLASH]))
    reports = {r.source: r for r in await poll(ingest_engine, cfg)}
    # The 30 s answer was not awaited: the client gave up at fetch.timeout (the message says so).
    assert reports["lent"].error == "timed out after 1 s (fetch.timeout)"
    assert reports["cassé"].error == "HTTP 500 Internal Server Error"
    assert reports["html"].error.startswith("not an RSS/Atom feed: got an HTML page")
    assert reports["absent"].error.startswith("cannot read /nonexistent/feed.xml")
    for i in range(5):
        assert reports[f"bon{i}"].error is None and len(reports[f"bon{i}"].events) == 2
    rows = {r["name"]: r for r in list_sources(ingest_engine)}
    assert rows["cassé"]["last_error"] == "HTTP 500 Internal Server Error" and rows["cassé"]["consecutive_failures"] == 1
    assert rows["bon0"]["last_error"] is None and rows["bon0"]["baselined"]


async def test_backoff_then_pause_then_resume(feed_server, ingest_config, ingest_engine):
    cfg = ingest_config([{"name": "src", "url": feed_server.url("/f"), "interval": 10}],
                        fetch={"max_failures": 4, "max_backoff": 50})
    sync_sources(ingest_engine, cfg)
    feed_server.set("/f", b"boom", status=502, content_type="text/plain")
    clock = FixedClock(T0)
    delays = []
    for _ in range(4):
        assert len(await poll_due_at(ingest_engine, cfg, clock)) == 1
        row = get_source(ingest_engine, "src")
        assert row["last_polled_at"] == clock.now()
        delays.append((row["next_poll_at"] - clock.now()).total_seconds())
        clock.advance(delays[-1] - 1)
        assert await poll_due_at(ingest_engine, cfg, clock) == []  # backing off: not due a second early
        clock.advance(1)
    assert delays == [10, 20, 40, 50]  # doubling, capped by fetch.max_backoff
    assert row["paused"] and row["consecutive_failures"] == 4
    assert row["pause_reason"] == "4 consecutive failures; last error: HTTP 502 Bad Gateway"
    assert await poll(ingest_engine, cfg, clock) == []  # paused sources are not polled
    from bot.store.sources import set_paused

    assert set_paused(ingest_engine, "src", False)
    row = get_source(ingest_engine, "src")
    assert (row["paused"], row["pause_reason"], row["next_poll_at"]) == (False, None, None)  # due at once
    feed_server.set("/f", rss([A]))
    assert (await poll_due_at(ingest_engine, cfg, clock))[0].error is None
    row = get_source(ingest_engine, "src")
    assert row["consecutive_failures"] == 0 and row["next_poll_at"] == clock.now() + timedelta(seconds=10)


async def test_gone_pauses_at_once_and_retry_after_is_honoured(feed_server, ingest_config, ingest_engine):
    cfg = ingest_config([{"name": "gone", "url": feed_server.url("/g")}, {"name": "busy", "url": feed_server.url("/b")}])
    sync_sources(ingest_engine, cfg)
    feed_server.set("/g", b"", status=410, content_type=None)
    feed_server.set("/b", b"", status=429, headers={"Retry-After": "300"}, content_type=None)
    clock = FixedClock(T0)
    await poll(ingest_engine, cfg, clock)
    gone, busy = get_source(ingest_engine, "gone"), get_source(ingest_engine, "busy")
    assert gone["paused"] and "HTTP 410" in gone["pause_reason"]
    assert busy["retry_after_until"] == T0 + timedelta(seconds=300)
    assert busy["next_poll_at"] >= busy["retry_after_until"]
    async with make_client(cfg.fetch) as client:
        clock.set(T0 + timedelta(seconds=299))
        assert await poll_all(ingest_engine, cfg, client, clock) == []  # even a forced poll waits
        clock.set(T0 + timedelta(seconds=300))
        assert [r.source for r in await poll_due(ingest_engine, cfg, client, clock)] == ["busy"]


async def test_next_poll_and_respect_ttl(feed_server, ingest_config, ingest_engine):
    cfg = ingest_config([{"name": "vite", "url": feed_server.url("/f"), "interval": 30},
                         {"name": "poli", "url": feed_server.url("/f"), "interval": 30, "respect_ttl": True}])
    sync_sources(ingest_engine, cfg)
    feed_server.set("/f", rss([A], ttl=10), headers={"Cache-Control": "max-age=120"})
    clock = FixedClock(T0)
    await poll(ingest_engine, cfg, clock)
    vite, poli = get_source(ingest_engine, "vite"), get_source(ingest_engine, "poli")
    assert (vite["ttl_seconds"], vite["max_age"]) == (600, 120)
    assert vite["next_poll_at"] == T0 + timedelta(seconds=30)  # breaking news cannot wait for <ttl>
    assert poli["next_poll_at"] == T0 + timedelta(seconds=600)
    async with make_client(cfg.fetch) as client:
        clock.set(T0 + timedelta(seconds=29))
        assert await poll_due(ingest_engine, cfg, client, clock) == []
        clock.set(T0 + timedelta(seconds=30))
        due = await poll_due(ingest_engine, cfg, client, clock)
    assert [r.source for r in due] == ["vite"]


async def test_permanent_redirect_updates_stored_url_and_survives_sync(feed_server, ingest_config, ingest_engine):
    cfg = ingest_config([{"name": "src", "url": feed_server.url("/old")}])
    sync_sources(ingest_engine, cfg)
    feed_server.redirect("/old", "/new", 301)
    feed_server.set("/new", rss([A]))
    await poll(ingest_engine, cfg)
    assert get_source(ingest_engine, "src")["url"] == feed_server.url("/new")
    sync_sources(ingest_engine, cfg)
    assert get_source(ingest_engine, "src")["url"] == feed_server.url("/new")
    await poll(ingest_engine, cfg)
    assert feed_server.log("/old")[-1:] == feed_server.log("/old")[:1]  # the old URL is not asked again


def test_sync_sources_upserts_pauses_removed_and_keeps_cli(ingest_config, ingest_engine):
    from bot.store.sources import add_source

    sync_sources(ingest_engine, ingest_config([{"name": "a", "url": "http://127.0.0.1:9/a"}, {"name": "b", "url": "http://127.0.0.1:9/b"}]))
    add_source(ingest_engine, "cli", "http://127.0.0.1:9/c")
    sync_sources(ingest_engine, ingest_config([{"name": "a", "url": "http://127.0.0.1:9/a2", "interval": 5}]))
    rows = {r["name"]: r for r in list_sources(ingest_engine)}
    assert (rows["a"]["url"], rows["a"]["interval"]) == ("http://127.0.0.1:9/a2", 5)
    assert rows["b"]["paused"] and rows["b"]["pause_reason"] == "no longer in config.toml"
    assert rows["cli"]["origin"] == "cli" and not rows["cli"]["paused"]
    sync_sources(ingest_engine, ingest_config([{"name": "a", "url": "http://127.0.0.1:9/a2"}, {"name": "b", "url": "http://127.0.0.1:9/b"}]))
    assert not get_source(ingest_engine, "b")["paused"]


async def test_ingest_bytes_for_websub_push(feed_server, ingest_config, ingest_engine):
    cfg = ingest_config([{"name": "src", "url": feed_server.url("/f")}])
    sync_sources(ingest_engine, cfg)
    feed_server.set("/f", rss([A]))
    await poll(ingest_engine, cfg)
    sid = get_source(ingest_engine, "src")["id"]
    events = ingest_bytes(ingest_engine, cfg, sid, rss([FLASH, A]), {"Content-Type": "application/rss+xml"})
    assert [(e.kind, e.title) for e in events] == [("flash", "Séisme de magnitude 6 au Japon")]
    try:
        ingest_bytes(ingest_engine, cfg, sid, b"<html>nope</html>", {"Content-Type": "text/html"})
    except ValueError as exc:
        assert "pushed content rejected: not an RSS/Atom feed" in str(exc)
    else:
        raise AssertionError("garbage push accepted")


async def test_refresh_source_unknown_id_is_an_error_not_a_crash(ingest_config, ingest_engine):
    cfg = ingest_config()
    async with make_client(cfg.fetch) as client:
        rep = await refresh_source(ingest_engine, cfg, client, 999)
    assert rep.error.startswith("internal error while polling: SourceError")
    with ingest_engine.connect() as conn:
        assert conn.execute(select(sources)).first() is None


async def test_a_source_being_polled_is_not_polled_twice(feed_server, ingest_config, ingest_engine):
    import asyncio

    cfg = ingest_config([{"name": "lent", "url": feed_server.url("/slow")}, {"name": "vite", "url": feed_server.url("/fast")}])
    sync_sources(ingest_engine, cfg)
    feed_server.set("/slow", rss([A]), delay=0.8)
    feed_server.set("/fast", rss([A]))
    async with make_client(cfg.fetch) as client:
        first = asyncio.create_task(poll_due(ingest_engine, cfg, client))
        await asyncio.sleep(0.3)  # "lent" is in flight; a scheduler tick now must skip it
        second = await poll_due(ingest_engine, cfg, client)
        assert [r.source for r in second] == []
        assert sorted(r.source for r in await first) == ["lent", "vite"]
    assert len(feed_server.log("/slow")) == 1


async def test_relative_local_path_resolves_against_config_folder(tmp_path, ingest_config, ingest_engine):
    import shutil

    from fixtures_ingest import SAMPLES

    (tmp_path / "feeds").mkdir()
    shutil.copy(SAMPLES / "flash.xml", tmp_path / "feeds" / "flash.xml")
    cfg = ingest_config([{"name": "local", "url": "feeds/flash.xml"}])
    sync_sources(ingest_engine, cfg)
    reports = await poll(ingest_engine, cfg)
    assert reports[0].error is None and [e.kind for e in reports[0].events] == ["baseline"] * 6
    assert (await poll(ingest_engine, cfg))[0].result.not_modified  # unchanged file: no parse
    shutil.copy(SAMPLES / "flash-suite.xml", tmp_path / "feeds" / "flash.xml")
    assert sorted(e.kind for e in (await poll(ingest_engine, cfg))[0].events) == ["flash", "flash", "new"]


async def test_websub_hub_is_recorded_on_the_source(feed_server, ingest_config, ingest_engine):
    cfg = ingest_config([{"name": "src", "url": feed_server.url("/f")}])
    sync_sources(ingest_engine, cfg)
    feed_server.set("/f", rss([A], extra='<atom:link rel="hub" href="http://127.0.0.1:9/hub"/>'))
    await poll(ingest_engine, cfg)
    row = get_source(ingest_engine, "src")
    assert (row["hub_url"], row["topic_url"]) == ("http://127.0.0.1:9/hub", feed_server.url("/f"))


async def test_a_new_hub_drops_the_old_websub_subscription(feed_server, ingest_config, ingest_engine):
    cfg = ingest_config([{"name": "src", "url": feed_server.url("/f")}])
    sync_sources(ingest_engine, cfg)
    feed_server.set("/f", rss([A], extra='<atom:link rel="hub" href="http://127.0.0.1:9/hub"/>'))
    await poll(ingest_engine, cfg)
    with ingest_engine.begin() as conn:  # as if the hub had verified our subscription
        conn.execute(sources.update().values(websub_state="active", websub_lease_until=utcnow() + timedelta(days=1)))
    await poll(ingest_engine, cfg)  # same hub: the subscription stands
    assert get_source(ingest_engine, "src")["websub_state"] == "active"
    feed_server.set("/f", rss([A], extra='<atom:link rel="hub" href="http://127.0.0.1:9/other-hub"/>'))
    with ingest_engine.begin() as conn:
        conn.execute(sources.update().values(next_poll_at=utcnow()))
    await poll(ingest_engine, cfg)
    row = get_source(ingest_engine, "src")
    assert (row["hub_url"], row["websub_state"], row["websub_lease_until"]) == ("http://127.0.0.1:9/other-hub", None, None)


async def test_a_cycle_releases_parsed_items_once_stored(feed_server, ingest_config, ingest_engine):
    # A cycle over thousands of sources must not hold every parsed feed until it ends.
    cfg = ingest_config([{"name": "src", "url": feed_server.url("/f")}])
    sync_sources(ingest_engine, cfg)
    feed_server.set("/f", rss([A, FLASH]))
    [report] = await poll(ingest_engine, cfg)
    assert report.result.items == [] and report.result.n_items == 2
    assert set(item_rows(ingest_engine)) == {"a", "f1"}
