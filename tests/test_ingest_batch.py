"""A cycle's unchanged (304) sources: their bookkeeping is batched, yet exact and isolated per source."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from fixtures_ingest import rss
from sqlalchemy import event

from bot.clock import FixedClock
from bot.ingest import poll as ingest
from bot.ingest.poll import poll_due, sync_sources
from bot.ingest.fetch import make_client
from bot.store import sources as store_sources
from bot.store.sources import list_sources

A = {"title": "Grève à la SNCF", "guid": "a"}
FLASH = {"title": "FLASH INFO : Séisme de magnitude 6 au Japon", "guid": "f1"}
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=timezone.utc)
LATER = T0 + timedelta(seconds=31)  # the second cycle: one 30 s interval (and a second) on


def count_commits(engine) -> list[int]:
    n = [0]
    event.listen(engine, "commit", lambda conn: n.__setitem__(0, n[0] + 1))
    return n


async def cycle(engine, cfg, when=T0):
    """One poll_due cycle with the clock standing at `when`."""
    async with make_client(cfg.fetch) as client:
        return await poll_due(engine, cfg, client, FixedClock(when))


def setup(feed_server, ingest_config, ingest_engine, n, interval=30, **sections):
    srcs = [{"name": f"s{i:03d}", "url": feed_server.url(f"/f{i}"), "interval": interval} for i in range(n)]
    cfg = ingest_config(srcs, **sections)
    sync_sources(ingest_engine, cfg)
    for i in range(n):
        feed_server.set(f"/f{i}", rss([A], title=f"Fil {i}"), etag=True)
    return cfg


@pytest.mark.parametrize("n,batch,max_commits", [(30, 250, 2), (30, 7, 6), (1, 250, 2)])
async def test_unchanged_cycle_is_a_few_transactions_with_exact_state(
        feed_server, ingest_config, ingest_engine, monkeypatch, n, batch, max_commits):
    monkeypatch.setattr(ingest.Unchanged, "BATCH", batch)
    cfg = setup(feed_server, ingest_config, ingest_engine, n)
    await cycle(ingest_engine, cfg)
    before = {r["name"]: r for r in list_sources(ingest_engine)}
    commits = count_commits(ingest_engine)
    reports = await cycle(ingest_engine, cfg, LATER)
    assert len(reports) == n and all(r.error is None and r.result.not_modified for r in reports)
    # claim_due (1) + one per batch of unchanged sources, instead of one per source
    assert commits[0] <= max_commits, commits[0]
    for row in list_sources(ingest_engine):
        old = before[row["name"]]
        assert row["last_status"] == 304 and row["etag"] == old["etag"] and row["last_error"] is None
        assert (old["last_polled_at"], row["last_polled_at"], row["last_success_at"]) == (T0, LATER, LATER)
        assert row["next_poll_at"] == LATER + timedelta(seconds=30)  # the lease was replaced
        assert row["consecutive_failures"] == 0 and row["ttl_seconds"] == old["ttl_seconds"]


async def test_mixed_cycle_keeps_changes_errors_and_304s_apart(feed_server, ingest_config, ingest_engine):
    cfg = setup(feed_server, ingest_config, ingest_engine, 6)
    await cycle(ingest_engine, cfg)
    feed_server.set("/f1", rss([FLASH, A], title="Fil 1"), etag=True)
    feed_server.set("/f2", b"boom", status=503, headers={"Retry-After": "120"}, content_type="text/plain")
    feed_server.set("/f3", b"", status=410, content_type=None)
    reports = {r.source: r for r in await cycle(ingest_engine, cfg, LATER)}
    assert [(e.kind, e.title) for e in reports["s001"].events] == [("flash", "Séisme de magnitude 6 au Japon")]
    assert reports["s002"].error.startswith("HTTP 503") and reports["s003"].error.startswith("HTTP 410")
    assert all(reports[f"s00{i}"].result.not_modified and reports[f"s00{i}"].error is None for i in (0, 4, 5))
    rows = {r["name"]: r for r in list_sources(ingest_engine)}
    assert rows["s001"]["last_status"] == 200 and rows["s000"]["last_status"] == 304
    assert rows["s002"]["consecutive_failures"] == 1 and rows["s002"]["retry_after_until"] == LATER + timedelta(seconds=120)
    assert rows["s003"]["paused"] and rows["s004"]["consecutive_failures"] == 0


async def test_a_failing_batch_write_falls_back_per_source(feed_server, ingest_config, ingest_engine, monkeypatch):
    cfg = setup(feed_server, ingest_config, ingest_engine, 4)
    await cycle(ingest_engine, cfg)
    real = store_sources.record_success

    def broken_batch(*a, **kw):
        raise RuntimeError("disk I/O error")

    def one_broken(engine, row, result, cfg, now):
        if row["name"] == "s002":
            raise RuntimeError("disk I/O error")
        return real(engine, row, result, cfg, now)
    monkeypatch.setattr(store_sources, "record_successes", broken_batch)
    monkeypatch.setattr(store_sources, "record_success", one_broken)
    reports = {r.source: r for r in await cycle(ingest_engine, cfg, LATER)}
    assert reports["s002"].error == "internal error while polling: RuntimeError: disk I/O error"
    assert [n for n, r in reports.items() if r.error] == ["s002"]
    rows = {r["name"]: r for r in list_sources(ingest_engine)}
    for name in ("s000", "s001", "s003"):
        assert rows[name]["last_status"] == 304 and rows[name]["next_poll_at"] == LATER + timedelta(seconds=30)


async def test_permanent_redirect_and_max_age_on_304_are_kept_in_a_batch(feed_server, ingest_config, ingest_engine):
    cfg = setup(feed_server, ingest_config, ingest_engine, 3)
    feed_server.set("/f1", rss([A], title="Fil 1"), etag='"v1"', headers={"Cache-Control": "max-age=90"})
    await cycle(ingest_engine, cfg)
    feed_server.redirect("/f0", "/moved", 301)
    feed_server.set("/moved", rss([A], title="Fil 0"), etag=True)
    feed_server.set("/f1", rss([A], title="Fil 1"), etag='"v1"', headers={"Cache-Control": "max-age=300"})
    await cycle(ingest_engine, cfg, LATER)
    rows = {r["name"]: r for r in list_sources(ingest_engine)}
    assert rows["s000"]["url"] == feed_server.url("/moved") and rows["s000"]["last_status"] == 304
    assert rows["s001"]["max_age"] == 300 and rows["s001"]["last_status"] == 304
    assert rows["s002"]["max_age"] is None


@pytest.mark.parametrize("alert_on_first_poll", [False, True])
async def test_new_items_are_inserted_in_one_statement_with_their_events_in_feed_order(
        feed_server, ingest_config, ingest_engine, alert_on_first_poll):
    entries = [{"title": f"Titre {k}", "guid": f"g{k}"} for k in range(30)]
    entries[3] = {"title": "FLASH INFO : Séisme au Japon", "guid": "g3"}
    cfg = ingest_config([{"name": "src", "url": feed_server.url("/f"), "alert_on_first_poll": alert_on_first_poll}])
    sync_sources(ingest_engine, cfg)
    feed_server.set("/f", rss(entries))
    inserts = []
    event.listen(ingest_engine, "before_cursor_execute",
                 lambda conn, cur, stmt, params, ctx, many: inserts.append(stmt) if stmt.startswith("INSERT INTO items") else None)
    [report] = await cycle(ingest_engine, cfg)
    assert len(inserts) == 1, inserts  # one executemany, not one INSERT per item
    kinds = [e.kind for e in report.events]
    expected = "flash" if alert_on_first_poll else "baseline"
    assert kinds == ["new" if alert_on_first_poll else "baseline"] * 3 + [expected] + kinds[4:] and len(kinds) == 30
    assert [e.title for e in report.events] == ["Séisme au Japon" if k == 3 else f"Titre {k}" for k in range(30)]
    with ingest_engine.connect() as conn:
        from bot.store.schema import items
        from sqlalchemy import select
        rows = {r.id: r for r in conn.execute(select(items))}
    assert all(rows[e.item_id].key == f"g{k}" for k, e in enumerate(report.events))
