"""feedparser's own test corpus (tests/corpus, 1,100+ files, checked complete against the shared copy)
through the real pipeline: every file a source whose items are all alerts, one `run_once`, then every
email and Telegram post scanned. `make test` runs every 8th file; `make soak` runs all of them.
"""
from __future__ import annotations

import filecmp
from pathlib import Path

import pytest

from bot.config import parse_config
from bot.service.once import run_once
from bot.store import open_db
from bot.demo.smtpserver import SMTPServer
from bot.demo.telegram_api import BotAPIStandin
from conftest import SOAK
from fixtures_delivery import add_subscribers
from hostile_scan import email_problems, telegram_problems
from test_sources_corpus import FILES, corpus_headers

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
SHARED = Path("/work/shared/corpora/feedparser-tests")


@pytest.mark.skipif(not SHARED.is_dir(), reason="shared corpus not mounted")
def test_corpus_copy_is_complete():
    cmp = filecmp.dircmp(SHARED, Path(__file__).resolve().parents[1] / "corpus")
    missing, differ = [], []

    def walk(d, rel=""):
        missing.extend(f"{rel}{n}" for n in d.left_only)
        differ.extend(f"{rel}{n}" for n in d.diff_files)
        for name, sub in d.subdirs.items():
            walk(sub, f"{rel}{name}/")
    walk(cmp)
    assert not missing and not differ, (missing[:5], differ[:5])


@pytest.mark.timeout(120)
def test_every_8th_corpus_file_through_the_pipeline(tmp_path, hostile_server, figures):
    corpus_run(tmp_path, hostile_server, figures, FILES[::8], "feedparser corpus through run_once (every 8th file)")


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.skipif(not SOAK, reason="soak only (make soak / FLASHBOT_SOAK=1)")
def test_soak_every_corpus_file_through_the_pipeline(tmp_path, hostile_server, figures):
    corpus_run(tmp_path, hostile_server, figures, FILES, "feedparser corpus through run_once (all files, soak)")


def corpus_run(tmp_path, hostile_server, figures, chosen, label) -> None:
    """Serve `chosen` corpus files as sources, run the pipeline once, scan every email and post."""
    srcs = []
    for i, path in enumerate(chosen):
        data = path.read_bytes()
        hdrs = corpus_headers(data)
        ctype = next((v for k, v in hdrs.items() if k.lower() == "content-type"), "application/xml")
        extra = {k: v for k, v in hdrs.items() if k.lower() not in ("content-type", "content-length", "last-modified", "etag") and v}
        hostile_server.set(f"/fp/{i}", data, content_type=ctype, headers=extra)
        srcs.append({"name": f"fp{i}", "url": hostile_server.url(f"/fp/{i}"), "alert_on_first_poll": True, "all_flash": True})
    with SMTPServer() as smtp, BotAPIStandin() as tg:
        cfg = parse_config({
            "bot": {"database": str(tmp_path / "fp.db"), "public_url": "https://news.example.org"},
            "web": {"secret_key": "fp-secret-key-0123456789abcdef"}, "digest": {"enabled": False},
            "flash": {"dedupe_window_hours": 0}, "fetch": {"timeout": 5, "concurrency": 32},
            "email": {"host": "127.0.0.1", "port": smtp.port, "sender": "Flash <a@example.org>", "tls": "none"},
            "telegram": {"token": tg.token, "channel": "@flash", "api_url": tg.base_url},
            "sources": srcs}, tmp_path, env={})
        engine = open_db(cfg.database_url)
        add_subscribers(engine, ["lecteur@example.org"])
        result = run_once(cfg, engine, horizon=0)
        mails, posts = list(smtp.messages), tg.posts
        engine.dispose()
    assert result["sources"] == len(chosen)
    bad_mail = {i: p for i, m in enumerate(mails) if (p := email_problems(m.data))}
    bad_post = {p.plain[:50]: q for p in posts if (q := telegram_problems(p))}
    figures.add(label, tried=len(chosen), passed=len(chosen) if not (bad_mail or bad_post) else 0,
                emails_scanned=len(mails), posts_scanned=len(posts), source_errors=result["errors"])
    assert len(mails) == len(posts) > 0.5 * len(chosen)  # most corpus files carry an item: alerts were sent
    assert result["delivery"].get("failed", 0) == 0, result
    assert not bad_mail and not bad_post, (list(bad_mail.items())[:3], list(bad_post.items())[:3])
