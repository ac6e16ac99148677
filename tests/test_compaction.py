"""Compaction of the delivery log (issue #17): a real fan-out (SMTP and Telegram stand-ins), then compaction
across the `delivery.detail_days` boundary with an injected clock. Every number an operator reads
(`flashbot deliveries`, `subscribers show`, the dashboard's overview, per-alert and failures pages,
/metrics, latency) is the same before and after; rows that matter (failed, bounced, the Telegram post)
stay; the file gives its space back."""
from __future__ import annotations

import re
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import func, select, update
from typer.testing import CliRunner

from bot.cli import app as cli_app
from bot.delivery import fanout
from bot.models import Event
from bot.store import compaction, dashboard, delivery_log, desk, maintenance, summary_rebuild, utcnow
from bot.store.schema import deliveries, items, subscribers
from bot.store.schema_summary import delivery_counts, subscriber_counts
from bot.web import create_app
from fixtures_delivery import add_item, add_subscribers, assert_summary_in_step, make_delivery_config, rows_of
from fixtures_web import ADMIN_PASSWORD, METRICS_AUTH, METRICS_TOKEN, csrf_of
from test_deliver import run

TABLES = ("counts", "per-chat", "items", "groups", "failures", "item")


@pytest.fixture
def world(tmp_path, smtp_server, telegram_config, database):
    """Config (email + Telegram stand-ins, dashboard on), database, and a config file for the CLI."""
    from bot.store import open_db

    cfg = make_delivery_config(tmp_path, smtp_server.port, telegram=telegram_config.model_dump(), database=database)
    cfg.web.admin_password, cfg.web.metrics_token = ADMIN_PASSWORD, METRICS_TOKEN
    engine = open_db(cfg.database_url)
    (tmp_path / "config.toml").write_text(f'[bot]\ndatabase = "{database or tmp_path / "delivery.db"}"\n')
    yield cfg, engine, tmp_path / "config.toml"
    assert_summary_in_step(engine)
    engine.dispose()


async def sent_alert(cfg, engine, smtp_server, n: int = 40) -> tuple[int, list[int]]:
    """An alert to n subscribers (two refused by the server, one gone before sending), sent; plus a correction."""
    item = add_item(engine)
    ids = add_subscribers(engine, [f"r{i}@example.net" for i in range(n)] + ["bad1@refuse.example", "bad2@refuse.example"])
    smtp_server.fail(550, stage="rcpt", pattern="*@refuse.example")
    fanout.queue_events(engine, cfg, [Event(item_id=item, kind="flash", source="src", title="t", is_flash=True)])
    with engine.begin() as conn:  # left after the alert was queued: that row is cancelled, not sent
        conn.execute(update(subscribers).where(subscribers.c.id == ids[0]).values(status="unsubscribed"))
    await run(cfg, engine)
    return item, ids


async def numbers(cfg, engine, config_file, item: int, people: list[str]) -> dict:
    """Everything an operator reads, as text."""
    runner = CliRunner()

    def cli(*args):
        res = runner.invoke(cli_app, ["--config", str(config_file), *args], catch_exceptions=False)
        assert res.exit_code == 0, res.output
        return res.output

    out = {"deliveries": cli("deliveries", "--limit", "100"), "stats": cli("stats"),
           "show": [re.search(r"deliveries: .*", cli("subscribers", "show", p)).group(0) for p in people],
           "latency": dashboard.latency(engine), "samples": dashboard.latency_samples(engine),
           "alert": [{k: v for k, v in g.items() if k not in ("compacted", "compacted_at")}
                     for g in delivery_log.alert(engine, item)["groups"]]}
    with engine.connect() as conn:  # the desk's per-item table (channel, chat, kind, state)
        out["desk"] = desk.delivery_counts(conn, item)
    transport = httpx.ASGITransport(app=create_app(cfg, engine), client=("127.0.0.1", 50000))
    # At the public address: the session cookies are Secure under an https public_url.
    async with httpx.AsyncClient(transport=transport, base_url=cfg.bot.public_url) as c:
        page = await c.get("/admin/login")
        logged = await c.post("/admin/login", data={"csrf": csrf_of(page.text), "password": ADMIN_PASSWORD})
        assert logged.status_code == 303, logged.text
        for url in ("/admin", f"/admin/items/{item}", "/admin/failures"):
            got = await c.get(url)
            assert got.status_code == 200, (url, got.status_code)
            html = got.text
            out[url] = [re.search(rf'<table id="{t}">.*?</table>', html, re.S).group(0)
                        for t in TABLES if f'<table id="{t}">' in html] + re.findall(r"<h1>.*?</h1>|<h2>.*?</h2>", html)
        # The live fan-out section (its bars, figures, duration and rate), less how soon it asks again.
        live = await c.get("/admin/live")
        assert live.status_code == 200, live.text
        out["live"] = re.sub(r' data-refresh="\d+"', "", live.text)
        scrape = await c.get("/metrics", headers=METRICS_AUTH)
        assert scrape.status_code == 200, scrape.text
        metrics = scrape.text
    out["metrics"] = [ln for ln in metrics.splitlines() if ln.startswith(("flashbot_deliveries", "flashbot_send_latency"))]
    return out


def live_rows(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(deliveries)).scalar_one()


async def test_numbers_are_the_same_across_the_detail_days_boundary(world, smtp_server):
    cfg, engine, config_file = world
    item, ids = await sent_alert(cfg, engine, smtp_server)
    people = ["r1@example.net", "r2@example.net", "bad1@refuse.example", "r0@example.net"]
    before = await numbers(cfg, engine, config_file, item, people)
    assert "sent" in before["deliveries"] and "550" in before["deliveries"]
    assert 'data-channel="email" data-revision="0" data-total="42" data-sent="39"' in before["live"]
    assert 'flashbot_deliveries{channel="email",state="sent"} 39.0' in before["metrics"]
    for url, tables in (("/admin", ("counts", "per-chat", "items")), (f"/admin/items/{item}", ("item", "groups", "failures")),
                        ("/admin/failures", ("failures",))):
        assert [t for t in tables if any(f'<table id="{t}">' in part for part in before[url])] == list(tables), url
    queued = rows_of(engine, item)[0]["created_at"]

    # Just inside the detail window nothing moves.
    report = compaction.compact(engine, cfg.delivery.detail_days, now=queued + timedelta(days=7) - timedelta(seconds=1))
    assert report.rows == 0 and live_rows(engine) == 43

    report = compaction.compact(engine, cfg.delivery.detail_days, now=queued + timedelta(days=7, seconds=1))
    left = rows_of(engine, item)
    # Kept: the two refused addresses (failed, bounced) and the Telegram post (a correction edits it).
    assert sorted(r["state"] for r in left if r["channel"] == "email" and r["state"] == "failed") == ["failed", "failed"]
    assert [r["channel"] for r in left if r["subscriber_id"] is None] == ["telegram"]
    assert report.rows == 43 - len(left) >= 38
    assert await numbers(cfg, engine, config_file, item, people) == before
    # Compacted groups are swept once: a second run has nothing to do.
    assert compaction.compact(engine, cfg.delivery.detail_days, now=queued + timedelta(days=8)).rows == 0
    with engine.connect() as conn:
        per_person = dict(conn.execute(select(subscriber_counts.c.subscriber_id, func.sum(subscriber_counts.c.n))
                                       .group_by(subscriber_counts.c.subscriber_id)).all())
        folded = conn.execute(select(func.sum(delivery_counts.c.compacted))).scalar_one()
    assert sum(per_person.values()) == folded == report.rows and set(per_person.values()) == {1}


async def test_bounced_rows_stay_until_retention(world, smtp_server):
    cfg, engine, config_file = world
    item, _ = await sent_alert(cfg, engine, smtp_server, n=10)
    refused = [r["id"] for r in rows_of(engine, item) if r["bounced"]]
    assert len(refused) == 2  # the two 550s: failed, the address refused
    before = await numbers(cfg, engine, config_file, item, ["bad1@refuse.example"])
    queued = rows_of(engine, item)[0]["created_at"]
    compaction.compact(engine, 7, now=queued + timedelta(days=30))
    assert [r["id"] for r in rows_of(engine, item) if r["bounced"]] == refused
    assert await numbers(cfg, engine, config_file, item, ["bad1@refuse.example"]) == before
    # At retention every finished row is folded; the numbers still hold until the item itself goes.
    assert maintenance.prune(engine, 90, queued + timedelta(days=90, seconds=1))["items"] == 1
    assert rows_of(engine, item) == []


async def test_correction_after_compaction_edits_the_post_only(world, smtp_server, telegram_api):
    cfg, engine, _ = world
    item, _ = await sent_alert(cfg, engine, smtp_server, n=10)
    compaction.compact(engine, 7, now=utcnow() + timedelta(days=8))
    with engine.begin() as conn:
        conn.execute(update(items).where(items.c.id == item)
                     .values(revision=1, title="FLASH INFO — Séisme au large de Nice (bilan)", content_hash="new"))
    assert fanout.queue_update(engine, cfg, item) == 1  # the Telegram post only: mail readers' rows are compacted
    await run(cfg, engine)
    assert len(telegram_api.edits) == 1


async def test_a_fully_compacted_alert_is_never_fanned_out_again(world, smtp_server):
    cfg, engine, _ = world
    cfg.telegram = None
    first, _ = await sent_alert(cfg, engine, smtp_server, n=5)
    later = add_item(engine, title="FLASH INFO — Autre chose", link="https://news.example.org/autre")
    fanout.queue_item(engine, cfg, later)
    await run(cfg, engine)
    compaction.compact(engine, 7, now=utcnow() + timedelta(days=8))
    assert [r for r in rows_of(engine, first) if r["state"] == "sent"] == []
    assert first not in maintenance.orphaned_alerts(engine, 90, utcnow())


async def test_the_file_gives_the_space_back(world, smtp_server, backend):
    if backend != "sqlite":
        pytest.skip("SQLite's file and its pages; PostgreSQL's space is autovacuum's")
    cfg, engine, _ = world
    cfg.telegram = None
    item = add_item(engine)
    add_subscribers(engine, [f"p{i:04d}@example.net" for i in range(3000)])
    fanout.queue_item(engine, cfg, item)
    await run(cfg, engine)

    def pages():
        with engine.connect() as conn:
            return [conn.exec_driver_sql(f"PRAGMA {p}").scalar() for p in ("auto_vacuum", "page_count", "freelist_count")]

    mode, before, _ = pages()
    assert mode == 2  # a new file is created with incremental auto_vacuum
    compaction.compact(engine, 7, now=utcnow() + timedelta(days=8))
    freed = maintenance.reclaim(engine)
    mode, after, free = pages()
    assert free == 0 and freed["freed_pages"] > 0 and after < before - freed["freed_pages"] // 2
    with engine.connect() as conn:
        assert summary_rebuild.verify(conn) == {}
