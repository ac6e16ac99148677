"""What operators see: `flashbot bounces list|show|reprocess`, `subscribers show`, the dashboard page, /metrics."""
from __future__ import annotations

import httpx
import pytest
from typer.testing import CliRunner

from bot.cli import app as cli_app
from bot.store import bounces as inbox
from bot.web import create_app
from fixtures_bounces import CORPUS, DOMAIN, World
from fixtures_delivery import SECRET
from fixtures_web import csrf_of

ADMIN = "admin-password-for-tests"


@pytest.fixture
def seeded(tmp_path):
    """A config file + database holding a hard bounce, a complaint, an unparsed mail and a forged token."""
    (tmp_path / "config.toml").write_text(
        f'[bot]\ndatabase = "b.db"\npublic_url = "https://news.example.org"\n[web]\nsecret_key = "{SECRET}"\n'
        f'admin_password = "{ADMIN}"\n[delivery]\nbounce_limit = 1\n[bounces]\ndomain = "{DOMAIN}"\n')
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
    world.processor.run_pending()
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
        assert "Courriers non compris (1)" in html and "Taux de rebond par jour" in html
        # 3 sent today: 1 hard bounce, 1 complaint → a 33,3 % bounce rate (French decimal comma).
        assert "<td>3</td><td>1</td><td>0</td><td>1</td><td>33,3 %</td>" in html.split('id="bounce-rate"')[1]
        english = (await client.get("/admin/bounces?lang=en")).text
        assert "Unparsed mails (1)" in english and "complaint" in english
        unparsed = [m for m in world.mails() if m["state"] == "unparsed"][0]
        r = await client.post("/admin/bounces/reprocess", data={"csrf": csrf_of(html), "id": str(unparsed["id"])})
        assert r.status_code == 303 and "notice=reprocessed" in r.headers["location"]
        metrics = (await client.get("/metrics")).text
    assert 'flashbot_bounces_received_total{source="smtp"} 4.0' in metrics
    assert 'flashbot_bounces_processed_total{kind="hard",result="processed"} 1.0' in metrics
    assert 'flashbot_bounce_removals_total{action="suppressed",reason="hard"} 1.0' in metrics
    assert 'flashbot_bounce_removals_total{action="unsubscribed",reason="complaint"} 1.0' in metrics
    assert 'flashbot_bounce_mails{state="rejected"} 1.0' in metrics
