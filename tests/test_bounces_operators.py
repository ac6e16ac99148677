"""What operators see: `flashbot bounces list|show|reprocess`, `subscribers show`, the dashboard page, /metrics."""
from __future__ import annotations

from datetime import datetime, timezone

import httpx
import pytest
from typer.testing import CliRunner

import bot.web.bounces
import fixtures_bounces
from bot.cli import app as cli_app
from bot.store import bounces as inbox
from bot.web import create_app
from fixtures_bounces import CORPUS, DOMAIN, World
from fixtures_delivery import SECRET
from fixtures_web import csrf_of
from test_web_admin_i18n import ENGLISH_ONLY, FRENCH_ONLY, leftovers, prose

ADMIN = "admin-password-for-tests"
METRICS = "metrics-token-for-tests"


# Everything seeded and shown happens at one fixed instant (noon in Paris), so "today" on the
# dashboard cannot differ from the day of the seeded sends (a run crossing midnight would split them).
NOON = datetime(2026, 11, 30, 11, 0, tzinfo=timezone.utc)


@pytest.fixture
def seeded(tmp_path, monkeypatch):
    """A config file + database holding a hard bounce, a complaint, an unparsed mail and a forged token."""
    monkeypatch.setattr(fixtures_bounces, "utcnow", lambda: NOON)
    monkeypatch.setattr(bot.web.bounces, "utcnow", lambda: NOON)
    (tmp_path / "config.toml").write_text(
        f'[bot]\ndatabase = "b.db"\npublic_url = "https://news.example.org"\n[web]\nsecret_key = "{SECRET}"\n'
        f'admin_password = "{ADMIN}"\nmetrics_token = "{METRICS}"\n[delivery]\nbounce_limit = 1\n[bounces]\ndomain = "{DOMAIN}"\n')
    from bot.config import load_config

    world = World(load_config(tmp_path / "config.toml"))
    ids = {}
    for name, address in [("lhost-postfix-04.eml", "kijitora@example.co.jp"), ("arf-14.eml", "kijitora@y.example.com"),
                          ("is-not-bounce-01.eml", "reader@example.org")]:
        dlv = world.sent(world.subscriber(address))
        ids[name] = dlv
        inbox.store(world.engine, [{"source": "smtp", "raw": (CORPUS / name).read_bytes(), "envelope_to": world.return_path(dlv)}])
    forged = world.return_path(ids["arf-14.eml"]).replace("b-", "b-9", 1)
    inbox.store(world.engine, [{"source": "smtp", "raw": (CORPUS / "lhost-postfix-01.eml").read_bytes(), "envelope_to": forged}])
    world.processor.run_pending(now=NOON)
    yield world, tmp_path / "config.toml"
    world.engine.dispose()


def run(config, *args, code=0):
    result = CliRunner().invoke(cli_app, ["--config", str(config), *args], catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result.output


def test_cli_list_show_reprocess(seeded):
    world, config = seeded
    listing = run(config, "bounces", "list")
    assert "processed" in listing and "unparsed" in listing and "rejected" in listing and "4 shown" in listing
    assert "1 shown" in run(config, "bounces", "list", "--kind", "complaint")
    assert "--state must be one of" in run(config, "bounces", "list", "--state", "weird", code=2)
    unparsed = [m for m in world.mails() if m["state"] == "unparsed"][0]
    shown = run(config, "bounces", "show", str(unparsed["id"]))
    assert "unparsed" in shown and "Subject:" in shown.replace("       Subject", "Subject")
    run(config, "bounces", "show", "999", code=1)
    assert "1 requeued; 1 unparsed" in run(config, "bounces", "reprocess", "--unparsed")
    processed = [m for m in world.mails() if m["state"] == "processed"][0]
    assert "0 requeued" in run(config, "bounces", "reprocess", str(processed["id"]))  # effects never re-applied
    assert world.person(processed["subscriber_id"])["bounces"] == 1


def test_subscribers_show_gives_the_last_bounce(seeded):
    _, config = seeded
    shown = run(config, "subscribers", "show", "kijitora@example.co.jp")
    assert "suppressed" in shown and "last bounce" in shown and "hard 5.1.1" in shown and "Address rejected" in shown
    assert "spam complaint" in run(config, "subscribers", "show", "kijitora@y.example.com")


async def test_dashboard_page_and_metrics(seeded):
    world, _ = seeded
    web_app = create_app(world.cfg, world.engine)
    transport = httpx.ASGITransport(app=web_app, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as client:  # Secure cookies
        page = await client.get("/admin/login")
        await client.post("/admin/login", data={"csrf": csrf_of(page.text), "password": ADMIN})
        page = await client.get("/admin/bounces")
        assert page.status_code == 200
        html = page.text
        assert "Rebonds et plaintes" in html and "kijitora@example.co.jp" in html and "plainte" in html
        assert "Courriers non compris (1)" in html and "Rebonds et plaintes par jour" in html
        # 3 sent today, none refused at sending, 1 hard bounce, no soft one, 1 complaint → a 33,3 % bounce rate
        # (French decimal comma); the forged token counts nowhere.
        assert "<td>3</td><td>0</td><td>1</td><td>0</td><td>1</td><td>33,3 %</td>" in html.split('id="bounce-rate"')[1]
        chart = html.split('id="chart-bounces"')[1].split("</figure>")[0]
        assert chart.count("<rect") == 2 and 'class="bar hard"' in chart and 'class="bar complaint"' in chart
        english = (await client.get("/admin/bounces?lang=en")).text
        assert "Unparsed mails (1)" in english and "complaint" in english
        # No word of the other language: what the page shows of the stored mails aside.
        data = [str(m[k]) for m in world.mails() for k in ("diagnostic", "recipient", "envelope_to", "status") if m[k]]
        data += ["kijitora@example.co.jp", "kijitora@y.example.com", "reader@example.org", "smtp", "Flashbot"]
        assert leftovers(prose(html, data), ENGLISH_ONLY) == []
        assert leftovers(prose(english, data), FRENCH_ONLY) == []
        unparsed = [m for m in world.mails() if m["state"] == "unparsed"][0]
        r = await client.post("/admin/bounces/reprocess", data={"csrf": csrf_of(html), "id": str(unparsed["id"])})
        assert r.status_code == 303 and "notice=reprocessed" in r.headers["location"]
        metrics = (await client.get("/metrics", headers={"Authorization": f"Bearer {METRICS}"})).text
    assert 'flashbot_bounces_received_total{source="smtp"} 4.0' in metrics
    assert 'flashbot_bounces_processed_total{kind="hard",result="processed"} 1.0' in metrics
    assert 'flashbot_bounce_removals_total{action="suppressed",reason="hard"} 1.0' in metrics
    assert 'flashbot_bounce_removals_total{action="unsubscribed",reason="complaint"} 1.0' in metrics
    assert 'flashbot_bounce_mails{state="rejected"} 1.0' in metrics
    assert 'flashbot_bounce_outcomes_total{kind="hard"} 1.0' in metrics
    assert 'flashbot_bounce_outcomes_total{kind="complaint"} 1.0' in metrics
    # The overview's subscribers chart and counters see the suppression and the complaint's departure.
    assert 'flashbot_subscriber_events_total{event="suppress"} 1.0' in metrics
    assert 'flashbot_subscriber_events_total{event="unsubscribe"} 1.0' in metrics


def test_reactivation_and_erasure_clear_what_bounces_left(seeded):
    world, config = seeded
    hard, complained = "kijitora@example.co.jp", "kijitora@y.example.com"
    by_address = {world.person(m["subscriber_id"])["email"]: m for m in world.mails() if m["subscriber_id"]}
    assert world.person(by_address[hard]["subscriber_id"])["status_reason"]
    run(config, "subscribers", "reactivate", hard)
    person = world.person(by_address[hard]["subscriber_id"])
    assert (person["status"], person["status_reason"], person["bounces"]) == ("active", None, 0)
    # Erasure: the reason, each delivery's diagnostic and every stored bounce naming the address go too.
    sid = by_address[complained]["subscriber_id"]
    assert world.delivery(by_address[complained]["delivery_id"])["diagnostic"]
    run(config, "subscribers", "remove", "--erase", complained)
    assert world.person(sid)["status_reason"] is None and world.person(sid)["email"] is None
    assert world.delivery(by_address[complained]["delivery_id"])["diagnostic"] is None
    left = world.mails()
    assert [m for m in left if m["subscriber_id"] == sid or m["recipient"] == complained] == []
    assert len(left) == 3  # the others' bounce mails stay
