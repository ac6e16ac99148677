"""The /admin dashboard (auth, cookies, escaping, actions) plus /healthz and /metrics."""
from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from fixtures_web import ADMIN_PASSWORD, METRICS_AUTH, csrf_of, make_web_config
from sqlalchemy import func, select

from bot.store import open_db, utcnow
from bot.store import outbox
from bot.store import subscribers as subs
from bot.store.schema import channel_state, deliveries, items, sources
from bot.web import create_app

XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'


async def login(client: httpx.AsyncClient, password: str = ADMIN_PASSWORD) -> httpx.Response:
    page = await client.get("/admin/login")
    return await client.post("/admin/login", data={"csrf": csrf_of(page.text), "password": password})


async def post(client: httpx.AsyncClient, url: str, data: dict | None = None) -> httpx.Response:
    page = await client.get("/admin")
    return await client.post(url, data={"csrf": csrf_of(page.text), **(data or {})})


def seed(engine) -> dict:
    """A source, a held flash item, a running item with deliveries, a failed delivery, a paused channel."""
    now = utcnow()
    subs.add(engine, ["ok@example.org"])
    sid_sub = subs.by_email(engine, "ok@example.org")["id"]
    with engine.begin() as conn:
        src = conn.execute(sources.insert().values(name="Le Fil", url="http://x/feed", last_error="HTTP 503",
                                                   consecutive_failures=3, next_poll_at=now)).inserted_primary_key[0]

        def item(key, title, state, **kw):
            return conn.execute(items.insert().values(source_id=src, key=key, title=title, label="FLASH INFO",
                                                      is_flash=True, alert_state=state, content_hash=key,
                                                      detected_at=now, **kw)).inserted_primary_key[0]
        held = item("held", "FLASH INFO " + XSS, "held")
        running = item("run", "FLASH INFO Séisme", "queued", published_at=now - timedelta(seconds=30),
                       first_telegram_at=now + timedelta(seconds=2), first_email_at=now + timedelta(seconds=5))
        ids = {}
        for rev, state in enumerate(["pending", "retry", "sent", "failed"]):
            outbox.insert_rows(conn, [dict(
                item_id=running, channel="email", recipient=str(sid_sub), subscriber_id=sid_sub, revision=rev,
                state=state, attempts=8 if state == "failed" else 1, last_error="550 " + XSS if state == "failed" else None,
                created_at=now)])
            ids[state] = conn.execute(select(deliveries.c.id).where(deliveries.c.revision == rev)).scalar_one()
        conn.execute(channel_state.insert().values(channel="telegram", paused=True, last_error="403 Forbidden: bot was kicked",
                                                   updated_at=now))
    return {"source": src, "held": held, "running": running, **ids}


def state_of(engine, table, row_id, col="state"):
    with engine.connect() as conn:
        return conn.execute(select(table.c[col]).where(table.c.id == row_id)).scalar_one()


@pytest.mark.parametrize("url", ["/admin", "/admin/sources", "/admin/subscribers", "/admin/failures", "/admin/bounces"])
async def test_no_access_without_login(web_client, url):
    r = await web_client.get(url)
    assert r.status_code == 303 and r.headers["location"] == "/admin/login"


@pytest.mark.parametrize("url", ["/admin/deliveries/retry", "/admin/items/1/approve", "/admin/sources/1/pause",
                                 "/admin/channels/telegram/resume", "/admin/bounces/reprocess"])
async def test_actions_refused_without_login(web_client, web_engine, url):
    ids = seed(web_engine)
    r = await web_client.post(url, data={"id": str(ids["failed"])})
    assert r.status_code == 303 and r.headers["location"] == "/admin/login"
    assert state_of(web_engine, deliveries, ids["failed"]) == "failed"
    assert state_of(web_engine, items, ids["held"], "alert_state") == "held"


@pytest.mark.parametrize("password", ["wrong", "", ADMIN_PASSWORD[:-1], ADMIN_PASSWORD + " ", "' OR '1'='1"])
async def test_wrong_password(web_client, password):
    r = await login(web_client, password)
    assert r.status_code == 401 and "fb_admin" not in r.headers.get("set-cookie", "")
    assert (await web_client.get("/admin")).status_code == 303


async def test_login_sets_hardened_cookie_and_logout(web_client):
    r = await login(web_client)
    assert r.status_code == 303
    cookie = r.headers["set-cookie"].lower()
    assert "fb_admin=" in cookie and "httponly" in cookie and "samesite=strict" in cookie and "path=/admin" in cookie
    assert "secure" not in cookie  # plain http public_url
    assert (await web_client.get("/admin")).status_code == 200
    out = await post(web_client, "/admin/logout")
    assert out.status_code == 303
    assert (await web_client.get("/admin")).status_code == 303


async def test_forged_session_cookie_refused(web_client):
    web_client.cookies.set("fb_admin", "admin.forged.signature", path="/admin")
    assert (await web_client.get("/admin")).status_code == 303


async def test_secure_cookie_over_https(tmp_path):
    cfg = make_web_config(tmp_path, None)
    cfg.bot.public_url = "https://news.example.org"
    engine = open_db(cfg.database_url)
    transport = httpx.ASGITransport(app=create_app(cfg, engine))
    async with httpx.AsyncClient(transport=transport, base_url="https://news.example.org") as c:
        r = await login(c)
    assert r.status_code == 303 and "secure" in r.headers["set-cookie"].lower()
    engine.dispose()


async def test_login_is_rate_limited(web_client):
    for _ in range(10):
        assert (await login(web_client, "guess")).status_code == 401
    r = await login(web_client)  # even the right password waits now
    assert r.status_code == 429 and (await web_client.get("/admin")).status_code == 303


async def test_disabled_without_password(tmp_path):
    cfg = make_web_config(tmp_path, None, admin_password=None)
    engine = open_db(cfg.database_url)
    transport = httpx.ASGITransport(app=create_app(cfg, engine))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        for url in ("/admin", "/admin/login"):
            r = await c.get(url)
            assert r.status_code == 503 and "FLASHBOT_ADMIN_PASSWORD" in r.text
        r = await c.post("/admin/login", data={"password": ""})
        assert r.status_code == 503
    engine.dispose()


async def test_overview_escapes_feed_data_and_shows_figures(web_client, web_engine):
    seed(web_engine)
    await login(web_client)
    r = await web_client.get("/admin")
    assert r.status_code == 200
    assert XSS not in r.text and "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in r.text
    assert "<img src=x" not in r.text
    assert 'class="flash">FLASH INFO<' in r.text and "Séisme" in r.text
    assert "403 Forbidden: bot was kicked" in r.text
    assert "en attente : 1, à réessayer : 1, envoyé : 1" in r.text  # French by default
    assert "35,0 s" in r.text  # publication → first email: 30 s before detection + 5 s
    en = await web_client.get("/admin?lang=en")
    assert "pending: 1, retry: 1, sent: 1" in en.text and "35.0 s" in en.text
    assert XSS not in en.text and "403 Forbidden: bot was kicked" in en.text
    failures = await web_client.get("/admin/failures")
    assert XSS not in failures.text and "550 &lt;script&gt;" in failures.text


def count_rows(engine, item_id: int) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(deliveries).where(deliveries.c.item_id == item_id)).scalar_one()


async def test_held_item_approve_and_cancel(web_client, web_app, web_engine):
    ids = seed(web_engine)
    woken = []
    web_app.state.web.pipe.wake = lambda: woken.append(1)  # the service's delivery engine, here a probe
    await login(web_client)
    r = await post(web_client, f"/admin/items/{ids['held']}/approve")
    rows = count_rows(web_engine, ids["held"])
    assert rows >= 1 and r.status_code == 303
    assert r.headers["location"] == f"/admin?notice=approved&item={ids['held']}&n={rows}"
    shown = await web_client.get(r.headers["location"])
    assert f"Article {ids['held']} validé : {rows} envoi{'s' if rows > 1 else ''} en file d'attente." in shown.text.replace("&#39;", "'")
    # The pipeline fanned it out and woke delivery at once: queued only now that its rows exist.
    assert woken == [1] and state_of(web_engine, items, ids["held"], "alert_state") == "queued"
    again = await post(web_client, f"/admin/items/{ids['held']}/approve")
    assert "notice=not_held" in again.headers["location"] and count_rows(web_engine, ids["held"]) == rows  # no double fan-out
    shown = await web_client.get(again.headers["location"] + "&lang=en")
    assert f"Item {ids['held']} was not waiting for approval." in shown.text
    r = await post(web_client, f"/admin/items/{ids['running']}/cancel")
    assert r.status_code == 303
    assert state_of(web_engine, items, ids["running"], "alert_state") == "cancelled"
    assert [state_of(web_engine, deliveries, ids[s]) for s in ("pending", "retry", "sent", "failed")] == \
        ["cancelled", "cancelled", "sent", "failed"]
    assert (await post(web_client, f"/admin/items/{ids['held']}/explode")).status_code == 404


async def test_csrf_on_admin_actions(web_client, web_engine):
    ids = seed(web_engine)
    await login(web_client)
    r = await web_client.post(f"/admin/items/{ids['held']}/cancel", data={"csrf": "nope"})
    assert r.status_code == 403 and state_of(web_engine, items, ids["held"], "alert_state") == "held"


async def test_retry_failed_delivery(web_client, web_engine):
    ids = seed(web_engine)
    await login(web_client)
    r = await post(web_client, "/admin/deliveries/retry", {"id": [str(ids["failed"]), str(ids["sent"]), "x; DROP TABLE"]})
    assert r.status_code == 303
    assert state_of(web_engine, deliveries, ids["failed"]) == "pending"
    assert state_of(web_engine, deliveries, ids["sent"]) == "sent"


async def test_retry_skips_people_who_left(web_client, web_engine):
    ids = seed(web_engine)
    subs.remove(web_engine, "ok@example.org")
    await login(web_client)
    await post(web_client, "/admin/deliveries/retry", {"id": str(ids["failed"])})
    assert state_of(web_engine, deliveries, ids["failed"]) == "failed"


async def test_source_pause_resume_and_channel_resume(web_client, web_engine):
    ids = seed(web_engine)
    await login(web_client)
    page = await web_client.get("/admin/sources")
    assert "HTTP 503" in page.text and "en échec ×3" in page.text
    assert "failing ×3" in (await web_client.get("/admin/sources?lang=en")).text
    await post(web_client, f"/admin/sources/{ids['source']}/pause")
    assert state_of(web_engine, sources, ids["source"], "paused") is True
    await post(web_client, f"/admin/sources/{ids['source']}/resume")
    assert state_of(web_engine, sources, ids["source"], "paused") is False
    assert state_of(web_engine, sources, ids["source"], "consecutive_failures") == 0
    await post(web_client, "/admin/channels/telegram/resume")
    with web_engine.connect() as conn:
        assert conn.execute(select(channel_state.c.paused)).scalar_one() is False


@pytest.mark.parametrize("q", ["' OR 1=1 --", "%", "_", "\"; DROP TABLE subscribers; --", "\\", XSS])
async def test_subscriber_search_treats_input_as_data(web_client, web_engine, q):
    subs.add(web_engine, ["alice@example.org", "bob@example.org"])
    await login(web_client)
    r = await web_client.get("/admin/subscribers", params={"q": q, "status": "active' --", "page": "-3"})
    assert r.status_code == 200 and 'id="total">0 résultat<' in r.text and XSS not in r.text
    ok = await web_client.get("/admin/subscribers", params={"q": "ALICE", "lang": "en"})
    assert 'id="total">1 match<' in ok.text and "alice@example.org" in ok.text and "bob@example.org" not in ok.text


async def test_subscriber_pages_follow_keyset_cursors(web_client, web_engine):
    import re

    subs.insert_many(web_engine, [{"email": f"user{i:03d}@example.org"} for i in range(120)])
    await login(web_client)
    pages = [await web_client.get("/admin/subscribers?lang=en")]
    assert "120 matches" in pages[0].text and 'rel="prev"' not in pages[0].text
    while 'rel="next"' in pages[-1].text:  # follow the Next links as a reader would
        link = re.search(r'<a href="([^"]+)" rel="next">', pages[-1].text).group(1).replace("&amp;", "&")
        assert "after=" in link and "page=" not in link
        pages.append(await web_client.get(link))
    assert [p.text.count("@example.org</td>") for p in pages] == [50, 50, 20]
    assert "user119@" in pages[0].text and "user000@" in pages[2].text and "user069@" in pages[1].text
    back = re.search(r'<a href="([^"]+)" rel="prev">', pages[2].text).group(1).replace("&amp;", "&")
    # The same rows as the second page (not the same bytes: each form's CSRF token carries its second).
    addresses = lambda page: re.findall(r"user\d{3}@example\.org</td>", page.text)  # noqa: E731
    assert "before=" in back and addresses(await web_client.get(back)) == addresses(pages[1])


async def test_healthz(tmp_path, web_config, web_engine):
    for alive, code in ((None, 200), (lambda: True, 200), (lambda: False, 503), (lambda: 1 / 0, 503)):
        transport = httpx.ASGITransport(app=create_app(web_config, web_engine, scheduler_alive=alive))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            r = await c.get("/healthz")
        assert r.status_code == code and r.json()["checks"]["database"] == "ok"
    web_engine.dispose()
    broken = open_db(f"sqlite:///{tmp_path / 'x.db'}")
    app = create_app(web_config, broken)
    (tmp_path / "x.db").unlink()
    (tmp_path / "x.db").mkdir()  # the file is gone and cannot be recreated: the ping fails
    broken.dispose()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as c:
        r = await c.get("/healthz")
    assert r.status_code == 503 and r.json()["checks"]["database"].startswith("error")


async def test_metrics_from_database(web_client, web_engine):
    seed(web_engine)
    r = await web_client.get("/metrics", headers=METRICS_AUTH)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    body = r.text
    assert 'flashbot_items{flash="true"} 2.0' in body
    assert 'flashbot_deliveries{channel="email",state="failed"} 1.0' in body
    assert 'flashbot_send_latency_seconds_bucket{channel="email",le="5.0"} 1.0' in body
    assert 'flashbot_send_latency_seconds_bucket{channel="email",le="2.0"} 0.0' in body
    assert 'flashbot_send_latency_seconds_count{channel="telegram"} 1.0' in body
    assert 'flashbot_source_consecutive_failures{source="Le Fil"} 3.0' in body
    assert 'flashbot_channel_paused{channel="telegram"} 1.0' in body
    assert 'flashbot_subscribers{status="active"} 1.0' in body


async def test_secrets_stay_out_of_logs_and_error_pages(web_config, web_engine, web_client, caplog, monkeypatch):
    caplog.set_level("DEBUG")
    await login(web_client, "hunter2-not-the-password")
    await login(web_client)
    import bot.web.public as public_mod

    def boom(engine):
        raise RuntimeError(f"db exploded near {web_config.web.secret_key}")
    monkeypatch.setattr(public_mod.dashboard, "source_categories", boom)
    transport = httpx.ASGITransport(app=create_app(web_config, web_engine), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        r = await c.get("/")
    assert r.status_code == 500 and "Erreur" in r.text
    assert "Traceback" not in r.text and "exploded" not in r.text and web_config.web.secret_key not in r.text
    assert ADMIN_PASSWORD not in caplog.text and "hunter2" not in caplog.text


def test_rate_events_are_pruned(web_engine, monkeypatch):
    from bot.store import ratelimit

    old = utcnow() - timedelta(days=3)
    for _ in range(5):
        ratelimit.hit(web_engine, "signup-ip:x", now=old)
    monkeypatch.setattr(ratelimit, "PRUNE_CHANCE", 1.0)
    assert ratelimit.allow(web_engine, "signup-ip:y", 10, 3600)
    assert ratelimit.count(web_engine, "signup-ip:x", 10 * 86400) == 0
    assert ratelimit.count(web_engine, "signup-ip:y", 3600) == 1


@pytest.mark.slow
async def test_pages_stay_fast_with_100k_subscribers(web_client, web_engine):
    for start in range(0, 100_000, 10_000):
        subs.insert_many(web_engine, [{"email": f"user{i}@example{i % 97}.org", "mode": ("instant", "digest", "both")[i % 3]}
                                      for i in range(start, start + 10_000)])
    await login(web_client)
    for params in ({}, {"page": 1500}, {"q": "user99999@"}, {"status": "active", "mode": "digest", "page": 300}):
        r = await web_client.get("/admin/subscribers", params=params)  # timings: make bench
        assert r.status_code == 200, params
    assert "1 résultat<" in (await web_client.get("/admin/subscribers", params={"q": "user99999@"})).text
    assert (await web_client.get("/metrics", headers=METRICS_AUTH)).status_code == 200
