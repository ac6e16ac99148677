"""The overview at a glance (over HTTP, no browser): live fan-out section, CSP nonce and script, charts,
source health, new metrics and the Grafana dashboard built on them."""
from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from fixtures_service import add_item, add_source
from sqlalchemy import select
from fixtures_web import METRICS_AUTH
from test_web_admin import login

from bot.models import DeliveryState, FeedResult
from bot.store import outbox, summary, utcnow
from bot.store import sources as store_sources
from bot.store import subscribers as subs
from bot.store.schema import deliveries
from bot.web import charts

ROOT = Path(__file__).resolve().parent.parent


def fanout(engine, n: int = 10, sent: int = 6, failed: int = 1, bounced: int = 1) -> int:
    """A flash item with `n` email rows: `sent` sent, `failed` failed, `bounced` bounced, the rest pending."""
    now = utcnow()
    item = add_item(engine, add_source(engine, "Le Fil"), "flash", now, is_flash=True, title="FLASH INFO Séisme",
                    published_at=now - timedelta(seconds=30))
    with engine.begin() as conn:  # queued as the fan-out queues them, then claimed as the engine claims them
        outbox.insert_rows(conn, [{"item_id": item, "channel": "email", "recipient": str(i), "revision": 0,
                                   "kind": "alert", "state": "pending", "attempts": 0, "created_at": now,
                                   "next_attempt_at": now} for i in range(n)])
        ids = conn.execute(select(deliveries.c.id).order_by(deliveries.c.id)).scalars().all()
    outbox.claim(engine, sent + failed + bounced, now=now)
    sid = subs.add(engine, ["bounce@example.org"]) and subs.by_email(engine, "bounce@example.org")["id"]
    results = [{"id": i, "state": DeliveryState.SENT, "item_id": item, "channel": "email", "sent": utcnow()}
               for i in ids[:sent]]
    results += [{"id": i, "state": DeliveryState.FAILED, "item_id": item, "channel": "email", "error": "552"}
                for i in ids[sent:sent + failed]]
    results += [{"id": i, "state": DeliveryState.FAILED, "item_id": item, "channel": "email", "error": "550",
                 "bounce_subscriber": sid} for i in ids[sent + failed:sent + failed + bounced]]
    outbox.record(engine, results, bounce_limit=5)
    return item


async def test_live_section_needs_a_session_and_shows_the_bars(web_client, web_engine):
    fanout(web_engine)
    r = await web_client.get("/admin/live")
    assert r.status_code == 401 and "<section" not in r.text  # the script says "session expired"
    await login(web_client)
    r = await web_client.get("/admin/live")
    assert r.status_code == 200 and r.text.lstrip().startswith('<section id="live" data-running="1"')
    bar = re.search(r'<div class="fan running" data-channel="email"[^>]*>', r.text).group(0)
    assert all(f'data-{k}="{v}"' in bar for k, v in
               {"total": 10, "sent": 6, "failed": 1, "bounced": 1, "pending": 2, "cancelled": 0}.items())
    # Segments on a 0..1000 axis, in order: sent, failed, bounced, then what is still pending.
    assert re.findall(r'<rect class="(\w+)" x="([\d.]+)" y="0" width="([\d.]+)"', r.text)[1:] == [
        ("sent", "0.0", "600.0"), ("failed", "600.0", "100.0"), ("bounced", "700.0", "100.0"),
        ("pending", "800.0", "200.0")]
    assert "envoyés : 6 sur 10 · échecs : 1 · rejetés : 1 · en attente : 2" in r.text and "80,0 %" in r.text
    assert "FLASH INFO Séisme" in r.text and "Le Fil" in r.text
    en = await web_client.get("/admin/live?lang=en")
    assert "sent: 6 of 10 · failed: 1 · bounced: 1 · pending: 2" in en.text


async def test_finished_fanout_shows_final_figures_and_stops_refreshing(web_client, web_engine, web_app):
    item = fanout(web_engine, n=4, sent=4, failed=0, bounced=0)
    with web_engine.begin() as conn:  # the first sends, as the engine records them
        conn.execute(deliveries.update().values(sent_at=utcnow()))
    await login(web_client)
    page = (await web_client.get("/admin")).text
    assert 'data-running="0" data-refresh="10000"' in page and 'http-equiv="refresh"' not in page
    assert "envoyés : 4 sur 4" in page and "terminé en" in page
    with web_engine.begin() as conn:  # an operator's retry of every row, in effect
        summary.move(conn, deliveries.c.item_id == item, ["sent"], state="pending")
    web_app.state.web.cache.clear()  # the live figures are shared for a second: read afresh
    page = (await web_client.get("/admin")).text
    refresh = int(re.search(r'data-refresh="(\d+)"', page).group(1))
    assert 1000 <= refresh <= 10000  # while it runs: every second, slower only if counting is costly
    # Running: without JavaScript the page reloads itself (inside <noscript>, so scripts are not affected).
    assert '<noscript><meta http-equiv="refresh" content="10"></noscript>' in page


async def test_only_our_script_runs_and_only_on_the_dashboard(web_client, web_engine):
    await login(web_client)
    first, second = await web_client.get("/admin"), await web_client.get("/admin")
    nonces = []
    for r in (first, second):
        csp = r.headers["content-security-policy"]
        nonce = re.search(r"script-src 'nonce-([A-Za-z0-9_-]{16,})'", csp).group(1)
        assert "connect-src 'self'" in csp and "default-src 'none'" in csp and "unsafe" not in csp
        scripts = re.findall(r"<script[^>]*>", r.text)
        assert scripts == [f'<script src="/static/admin.js" nonce="{nonce}" defer>']  # no inline script
        assert " style=" not in r.text  # no inline style either: bars and charts use classes
        nonces.append(nonce)
    assert nonces[0] != nonces[1]
    js = await web_client.get("/static/admin.js")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    assert '"/admin/live"' in js.text and "eval(" not in js.text and "innerHTML" not in js.text
    public = await web_client.get("/")
    assert "script-src" not in public.headers["content-security-policy"] and "<script" not in public.text


def _points(html: str, chart_id: str) -> list[tuple[str, float]]:
    figure = re.search(rf'<figure class="chart" id="{chart_id}".*?</figure>', html, re.S).group(0)
    return [(cls, float(v)) for cls, v in re.findall(r'class="([^"]+)" data-value="([\d.]+)"', figure)]


async def test_charts_carry_the_data(web_client, web_engine, web_config):
    fanout(web_engine, n=10, sent=6, failed=1, bounced=1)
    with web_engine.begin() as conn:
        conn.execute(deliveries.update().where(deliveries.c.state == "sent").values(sent_at=utcnow()))
    from bot.store.schema import items
    with web_engine.begin() as conn:
        conn.execute(items.update().values(first_email_at=utcnow()))
    subs.insert_many(web_engine, [{"email": f"r{i}@example.org"} for i in range(7)])
    row = store_sources.get_source(web_engine, "Le Fil")
    store_sources.record_failure(web_engine, row, FeedResult(status=503, error="HTTP 503"), web_config, utcnow())
    await login(web_client)
    html = (await web_client.get("/admin")).text
    sends = _points(html, "chart-sends-email")
    assert sum(v for c, v in sends if c == "bar sent") == 6
    assert sum(v for c, v in sends if c == "bar failed") == 1 and sum(v for c, v in sends if c == "bar bounced") == 1
    assert len(_points(html, "chart-latency")) == 1
    signups = [v for c, v in _points(html, "chart-subscribers") if c == "pt signup"]
    assert sum(signups) == 8  # the 7 imported and the bounce test's operator add
    assert [c for c, _ in _points(html, "chart-health")] == ["cell error"]
    assert "Envois par heure sur 7 jours — email" in html and "p50" in html
    en = (await web_client.get("/admin?lang=en")).text
    assert "Sends per hour over 7 days — email" in en and "Source health: the last 48 polls" in en


NOW = datetime(2026, 11, 30, 14, 20, tzinfo=timezone.utc)  # a Monday


@pytest.mark.parametrize("lang, tz, quarter, midnight_label, hour_tip", [
    ("fr", "Europe/Paris", (14, 15), "lun. 30", "lun. 30 nov. 15:00"),
    ("en", "Europe/Paris", (14, 15), "Mon 30", "Mon, Nov 30 3:00\u202fPM"),
    ("fr", "America/New_York", (14, 0), "lun. 30", "lun. 30 nov. 09:00"),
    ("fr", "Asia/Kathmandu", (14, 15), "lun. 30", "lun. 30 nov. 20:00"),  # +5:45: quarters line up
])
def test_sends_chart_hours_and_labels_follow_the_time_zone(lang, tz, quarter, midnight_label, hour_tip):
    t = charts.Labels(lang, tz)
    rows = [(datetime(2026, 11, 30, *quarter, tzinfo=timezone.utc), "email", "sent", 5)]
    (chart,) = charts.sends(rows, NOW, t, ["email"])
    (rect,) = chart["rects"]
    assert rect["value"] == 5 and rect["title"].startswith(hour_tip + " · ")
    assert midnight_label in [x["text"] for x in chart["texts"]]
    assert len([x for x in chart["texts"] if x["cls"] == "tick x"]) == 7  # one label per local midnight


def test_latency_chart_percentile_lines_and_log_axis():
    t = charts.Labels("fr", "Europe/Paris")
    alerts = [{"title": f"a{i}", "published_at": NOW - timedelta(days=i, seconds=s), "detected_at": NOW - timedelta(days=i),
               "first_telegram_at": NOW - timedelta(days=i) + timedelta(seconds=1), "first_email_at": None}
              for i, s in enumerate([9, 19, 29, 39, 599])]
    chart = charts.latency(alerts, NOW, t)
    assert sorted(c["value"] for c in chart["circles"]) == [10, 20, 30, 40, 600]
    labels = {x["text"] for x in chart["texts"]}
    assert {"p50 30 s", "p95 10 min"} <= labels and {"10 s", "1 min", "10 min"} <= labels
    assert charts.percentile([1, 2, 3, 4], 50) == 2 and charts.percentile([], 95) is None


def test_subscriber_days_are_local_days_across_a_dst_change():
    t = charts.Labels("fr", "Europe/Paris")
    now = datetime(2026, 11, 5, 12, 0, tzinfo=timezone.utc)  # DST ended on 25 October
    rows = [(datetime(2026, 10, 20, 22, 15, tzinfo=timezone.utc), "", "signup", 2),  # 21 Oct 00:15 CEST
            (datetime(2026, 10, 30, 23, 0, tzinfo=timezone.utc), "", "signup", 3)]   # 31 Oct 00:00 CET
    chart = charts.subscribers(rows, now, t)
    tips = sorted(c["title"] for c in chart["circles"])
    assert tips == ["mer. 21 oct. · inscriptions : 2", "sam. 31 oct. · inscriptions : 3"]


async def test_sources_page_shows_each_source_health(web_client, web_engine, web_config):
    ok = add_source(web_engine, "Le Fil")
    bad = add_source(web_engine, "Le Direct")
    for k in range(3):
        at = utcnow()
        store_sources.record_success(web_engine, store_sources.get_source(web_engine, ok),
                                     FeedResult(status=304 if k else 200, not_modified=bool(k)), web_config, at)
        store_sources.record_failure(web_engine, store_sources.get_source(web_engine, bad),
                                     FeedResult(status=500, error="HTTP 500"), web_config, at)
    await login(web_client)
    html = (await web_client.get("/admin/sources")).text
    rows = dict(re.findall(r'<tr data-id="(\d+)">(.*?)</tr>', html, re.S))
    assert re.findall(r'class="cell (\w+)"', rows[str(ok)]) == ["ok", "not_modified", "not_modified"]
    assert re.findall(r'class="cell (\w+)"', rows[str(bad)]) == ["error"] * 3 and "HTTP 500" in rows[str(bad)]
    failing = (await web_client.get("/admin/sources?state=failing")).text
    assert "Le Direct" in failing and "Le Fil" not in failing
    found = (await web_client.get("/admin/sources", params={"q": "fil"})).text
    assert "Le Fil" in found and "Le Direct" not in found


async def test_metrics_counters_and_the_grafana_dashboard(web_client, web_engine, web_config):
    fanout(web_engine, n=5, sent=3, failed=1, bounced=1)
    row = store_sources.get_source(web_engine, "Le Fil")
    store_sources.record_failure(web_engine, row, FeedResult(status=503, error="HTTP 503"), web_config, utcnow())
    from bot.store.schema import items
    with web_engine.begin() as conn:
        detected = conn.execute(select(items.c.detected_at)).scalar_one()
        conn.execute(items.update().values(first_email_at=detected + timedelta(seconds=3)))
    body = (await web_client.get("/metrics", headers=METRICS_AUTH)).text
    assert 'flashbot_delivery_outcomes_total{channel="email",outcome="sent"} 3.0' in body
    assert 'flashbot_delivery_outcomes_total{channel="email",outcome="bounced"} 1.0' in body
    assert 'flashbot_polls_total{outcome="error"} 1.0' in body
    assert 'flashbot_subscriber_events_total{event="signup"} 1.0' in body
    assert 'flashbot_alert_latency_seconds_bucket{channel="email",le="5.0",origin="detected"} 1.0' in body
    assert 'flashbot_alert_latency_seconds_bucket{channel="email",le="2.0",origin="detected"} 0.0' in body
    assert 'flashbot_alert_latency_seconds_count{channel="email",origin="published"} 1.0' in body
    suffixes = {"counter": [""], "histogram": ["_bucket", "_sum", "_count"], "gauge": [""]}  # TYPE names counters with _total
    exposed = {name + suffix for name, kind in re.findall(r"^# TYPE (flashbot_\w+) (\w+)$", body, re.M)
               for suffix in suffixes[kind]}
    dashboard = json.loads((ROOT / "deploy" / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    used = {m for e in exprs for m in re.findall(r"\bflashbot_\w+", e)}
    assert used and used <= exposed, used - exposed
    assert {"flashbot_delivery_outcomes_total", "flashbot_alert_latency_seconds_bucket",
            "flashbot_polls_total"} <= used
    assert all(p["datasource"]["uid"] == "${DS_PROMETHEUS}" for p in dashboard["panels"] if p["type"] != "row")
