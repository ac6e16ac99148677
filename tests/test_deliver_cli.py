"""`flashbot deliveries` and `flashbot preview` through the real CLI."""
from __future__ import annotations

from email import policy
from email.parser import BytesParser
from pathlib import Path

from sqlalchemy import update
from typer.testing import CliRunner

from bot.delivery import engine as deliver
from bot.delivery.channels import build_channels
from bot.delivery import fanout
from bot.cli import app
from bot.render.renderer import Renderer
from bot.store import channels as channel_store
from bot.store import open_db
from bot.store.schema import deliveries
from fixtures_delivery import add_item, add_subscribers, rows_of


def write_config(tmp_path: Path, smtp_port: int, database: str | None = None) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(f"""
[bot]
database = "{database or 'cli.db'}"
public_url = "https://news.example.org"
[web]
secret_key = "cli-secret-key-0123456789"
[email]
host = "127.0.0.1"
port = {smtp_port}
sender = "Flash Info <alertes@example.org>"
tls = "none"
[delivery]
retry_delays = [60]
""", encoding="utf-8")
    return path


def cli(path: Path, *args: str):
    return CliRunner().invoke(app, ["--config", str(path), *args], catch_exceptions=False, env={"COLUMNS": "250"})


async def test_deliveries_tells_counts_failures_and_paused_channels(tmp_path, smtp_server, database):
    path = write_config(tmp_path, smtp_server.port, database)
    from bot.config import load_config

    cfg = load_config(path)
    db = open_db(cfg.database_url)
    item = add_item(db, "FLASH INFO — Tempête sur la Bretagne")
    add_subscribers(db, ["ok1@example.net", "ok2@example.net", "bad@example.net", "later@example.net"])
    smtp_server.fail(550, stage="rcpt", pattern="bad@*")
    smtp_server.fail(451, stage="rcpt", pattern="later@*")
    fanout.queue_item(db, cfg, item)
    eng = deliver.DeliveryEngine(db, cfg, build_channels(cfg), Renderer(cfg))
    await eng.run_due()
    await eng.channels["email"].close()
    channel_store.pause_channel(db, "email", "test pause")

    res = cli(path, "deliveries")
    assert res.exit_code == 0, res.output
    assert "Tempête sur la Bretagne" in res.output
    line = next(li for li in res.output.splitlines() if f"#{item}" in li and "email" in li)
    cells = [c.strip() for c in line.strip().strip("│").split("│")]
    # item, title, channel, pending, sending, retry, sent, failed, cancelled, folded, then refused (the 550)
    assert cells[2:] == ["email", "", "", "1", "2", "1", "", "", "1"]
    assert "bad@example.net" in res.output and "550" in res.output
    assert "later@example.net" in res.output and "451" in res.output
    assert "PAUSED" in res.output and "test pause" in res.output

    failed = rows_of(db, item, state="failed")[0]["id"]
    res = cli(path, "deliveries", "--resume", "email", "--retry", str(failed))
    assert "channel email resumed" in res.output and "1 of 1 deliveries queued again" in res.output
    assert "PAUSED" not in res.output and channel_store.paused_channels(db) == set()
    assert rows_of(db, item, state="failed") == []


def test_deliveries_on_an_empty_database(tmp_path, smtp_server, database):
    res = cli(write_config(tmp_path, smtp_server.port, database), "deliveries")
    assert res.exit_code == 0 and "no deliveries yet" in res.output and "no failures" in res.output


def test_preview_writes_email_and_telegram_files(tmp_path, smtp_server, database):
    path = write_config(tmp_path, smtp_server.port, database)
    from bot.config import load_config

    db = open_db(load_config(path).database_url)
    item = add_item(db, "FLASH INFO — Éruption <script>alert(1)</script> à l'Etna")
    out_dir = tmp_path / "pv"
    res = cli(path, "preview", str(item), "--out", str(out_dir), "--language", "en")
    assert res.exit_code == 0, res.output
    printed = [Path(p) for p in res.output.split()]
    assert {p.suffix for p in printed} == {".html", ".txt", ".eml"} and all(p.exists() for p in printed)
    html = (out_dir / f"item-{item}-alert-en.html").read_text()
    assert "Éruption" in html and "<script>" not in html
    assert "https://news.example.org/unsubscribe/PREVIEW" in html
    msg = BytesParser(policy=policy.default).parsebytes((out_dir / f"item-{item}-alert-en.eml").read_bytes())
    assert msg["To"] == "preview@example.invalid" and msg["Content-Language"] == "en"
    assert "Éruption" in (out_dir / f"item-{item}-alert-telegram.html").read_text()
    assert rows_of(db, item) == []  # previewing sends and queues nothing
    res = cli(path, "preview", "999", "--out", str(out_dir))
    assert res.exit_code == 1 and "no item 999" in res.output


def test_preview_explain_lists_removed_chrome_and_why(tmp_path, smtp_server):
    path = write_config(tmp_path, smtp_server.port)
    from bot.config import load_config

    db = open_db(load_config(path).database_url)
    summary = ('<p>Le conseil municipal a voté le budget [2027] de la ville pour l’année prochaine, '
               'après un long débat.</p><p>Suivez la séance sur <a href="https://twitter.com/mairie">Twitter</a>.</p>'
               '<div class="sharedaddy"><h3>Partager :</h3><a href="https://twitter.com/intent/tweet?u=1">Tweet</a></div>'
               '<p><a href="https://www.facebook.com/sharer.php?u=1">[Facebook]</a></p>'
               '<img src="https://pixel.wp.com/b.gif?host=x" width="1" height="1">')
    item = add_item(db, summary=summary)
    res = cli(path, "preview", str(item), "--out", str(tmp_path / "pv"), "--explain")
    assert res.exit_code == 0, res.output
    out = " ".join(res.output.split())
    assert f"Removed from item #{item} as page chrome (3 blocks)" in out
    for rule, signal, text in [("widget", 'class/id "sharedaddy"', "Partager : Tweet"),
                               ("share-intent", "link to https://www.facebook.com/sharer.php?u=1", "[Facebook]"),
                               ("pixel", "width 1", "[image https://pixel.wp.com/b.gif?host=x]")]:
        assert f"│ {rule} │ {signal} │ {text} │" in out, out
    assert "share-intent: links only to share-intent URLs" in out
    assert "Suivez la séance" not in out.split("page chrome")[1]  # the author's own Twitter link is not chrome
    text = (tmp_path / "pv" / f"item-{item}-alert-fr.txt").read_text()
    assert "Twitter [" in text and "Tweet" not in text and "Facebook" not in text

    plain = add_item(db, "FLASH INFO — Autre", summary="<p>Rien à retirer ici, seulement le texte de l’article.</p>",
                     link="https://news.example.org/autre")
    res = cli(path, "preview", str(plain), "--out", str(tmp_path / "pv"), "--explain")
    assert f"item #{plain}: nothing was removed from the article as page chrome" in res.output
