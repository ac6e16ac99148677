"""Benchmark 3: feed changed → first Telegram post and first email, through the real service.

`flashbot run` runs as a subprocess against local stand-ins in the bench process: the feed
server (bot.demo.feedserver), the Telegram Bot API stand-in, an SMTP server that stamps each
message's arrival, and (push mode) the WebSub hub. One subscriber gets instant emails. Alerts
are published one after the other; each is timed from the moment the feed changed (the feed
server starts serving it, or the hub starts pushing it) to the first post / email that names it.
In polling mode each publication waits a random part of the interval after the previous
delivery, so publications fall at random points of the poll cycle, as real news does.
"""
from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .common import FULL, free_port, median, percentile
from .harness import run_child

INTERVAL = 5  # seconds between polls in polling mode (the figure)
ALERTS_FULL = 20
ALERTS_QUICK = {"push": 20, "polling": 12}  # polling costs ~interval per alert
HEADLINES = ["Séisme de magnitude 6 au large du Japon", "Incendie dans une usine chimique à Rouen",
             "Le Premier ministre annonce sa démission", "Panne géante d'électricité dans le Sud-Ouest",
             "Accord trouvé à Bruxelles sur le budget européen", "Le Louvre fermé après une alerte",
             "Grève surprise dans les aéroports parisiens", "Tempête : vigilance rouge en Bretagne"]
BASE = [("base-1", "Municipales : les listes déposées"), ("base-2", "Météo : un week-end doux")]
TIMEOUT = 30.0  # per alert: a lost alert is reported, not waited for forever


def _rss(entries: list[tuple[str, str]], extra: str = "") -> bytes:
    body = "".join(
        f"<item><title>{title}</title><guid isPermaLink=\"false\">{guid}</guid>"
        f"<link>https://www.exemple.fr/{guid}</link><description>&lt;p&gt;Texte de {guid}.&lt;/p&gt;"
        "</description><category>Monde</category></item>" for guid, title in entries)
    return ('<?xml version="1.0" encoding="utf-8"?><rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom">'
            f"<channel><title>Le Quotidien</title><link>https://www.exemple.fr/</link>{extra}{body}"
            "</channel></rss>").encode()


def _stamped_smtp():
    """bot.demo.smtpserver.SMTPServer that also records when each message arrived."""
    from bot.demo.smtpserver import SMTPServer

    class Stamped(SMTPServer):
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            self.arrivals: list[tuple[float, int]] = []  # (time, index in .messages)

        async def handle_DATA(self, server, session, envelope):
            reply = await super().handle_DATA(server, session, envelope)
            if reply.startswith("250"):
                self.arrivals.append((time.time(), len(self.messages) - 1))
            return reply
    return Stamped()


def _config(tmp: Path, feed_url: str, smtp_port: int, tg, mode: str, web_port: int) -> Path:
    push = mode == "push"
    path = tmp / "config.toml"
    path.write_text(f'''
[bot]
database = "flashbot.db"
public_url = "http://127.0.0.1:{web_port}"

[[sources]]
name = "quotidien"
url = "{feed_url}"
interval = {300 if push else INTERVAL}

[email]
host = "127.0.0.1"
port = {smtp_port}
sender = "Flash Info <alertes@example.org>"
tls = "none"

[telegram]
token = "{tg.token}"
channel = "@flash"
api_url = "{tg.base_url}"

[web]
host = "127.0.0.1"
port = {web_port}
admin_password = "bench-admin-pass"

[websub]
enabled = {"true" if push else "false"}
''')
    return path


def _wait(predicate, timeout: float, what: str, step: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}")


def _baselined(db: Path) -> bool:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as conn:
            row = conn.execute("SELECT baselined FROM sources LIMIT 1").fetchone()
        return bool(row and row[0])
    except sqlite3.Error:
        return False


def _subject(msg) -> str:
    return str(msg.parsed()["subject"] or "")


def run(p: dict) -> dict:
    """Child: stand-ins here, `flashbot run` as a subprocess; publish alerts, time their arrival."""
    from bot.store import open_db
    from bot.store import subscribers as subs
    from bot.demo.feedserver import FeedServer
    from bot.demo.hub import Hub
    from bot.demo.telegram_api import BotAPIStandin

    mode, n = p["mode"], p["alerts"]
    tmp = Path(tempfile.mkdtemp(prefix=f"flashbot-lat-{mode}-"))
    feeds, smtp, tg = FeedServer().start(), _stamped_smtp().start(), BotAPIStandin().start()
    hub = Hub().start() if mode == "push" else None
    topic = feeds.url("/feed.xml")
    links = (f'<atom:link rel="hub" href="{hub.url}"/><atom:link rel="self" href="{topic}"/>' if hub else "")
    web_port = free_port()
    cfg_path = _config(tmp, topic, smtp.port, tg, mode, web_port)
    engine = open_db(f"sqlite:///{tmp / 'flashbot.db'}")
    subs.add(engine, ["lecteur@example.org"], mode="instant")
    engine.dispose()
    entries = list(BASE)
    feeds.set("/feed.xml", _rss(entries, links))
    log = open(tmp / "service.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "bot", "--config", str(cfg_path), "run"], cwd=tmp,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    samples: list[dict] = []
    try:
        _wait(lambda: _baselined(tmp / "flashbot.db") or proc.poll() is not None, 60, "the first poll")
        if proc.poll() is not None:
            raise RuntimeError(f"flashbot run exited {proc.returncode}: {(tmp / 'service.log').read_text()[-2000:]}")
        if hub:
            hub.wait_subscribed(topic, 1, 30)
        rng = random.Random(6)
        for k in range(n):
            tag = f"A{k:03d}"
            entries.insert(0, (f"flash-{k}", f"FLASH INFO : {HEADLINES[k % len(HEADLINES)]} ({tag})"))
            body = _rss(entries[:30], links)
            t0 = time.time()
            feeds.set("/feed.xml", body)
            if hub:  # the hub pushes the change at once (a fallback poll would see it too)
                hub.publish(topic, body, "application/rss+xml")
            samples.append(_arrivals(tag, t0, tg, smtp))
            # Next publication: a random point of the poll cycle (push: a short random pause).
            time.sleep(rng.uniform(0, INTERVAL) if not hub else rng.uniform(0.1, 0.5))
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
        for server in (feeds, smtp, tg, *([hub] if hub else [])):
            server.stop()
    return _summary(mode, samples, tmp)


def _arrivals(tag: str, t0: float, tg, smtp) -> dict:
    """Wait for this alert's first Telegram post and first email; their delays from t0."""
    found: dict = {"tag": tag}

    def check() -> bool:
        if "telegram" not in found:
            post = next((x for x in tg.posts if tag in x.text), None)
            if post:
                found["telegram"] = round(post.time - t0, 4)
        if "email" not in found:
            for at, i in list(smtp.arrivals):
                if tag in _subject(smtp.messages[i]):
                    found["email"] = round(at - t0, 4)
                    break
        return "telegram" in found and "email" in found
    try:
        _wait(check, TIMEOUT, f"alert {tag}", step=0.01)
    except RuntimeError:
        found["lost"] = True
    return found


def _summary(mode: str, samples: list[dict], tmp: Path) -> dict:
    out: dict = {"n": len(samples), "samples": samples, "lost": sum(1 for s in samples if s.get("lost"))}
    for ch in ("telegram", "email"):
        vals = [s[ch] for s in samples if ch in s]
        out.update({f"{ch}_p50": _r(median(vals)), f"{ch}_p95": _r(percentile(vals, 95)),
                    f"{ch}_max": _r(max(vals) if vals else None), f"{ch}_n": len(vals)})
    if mode == "polling":
        out["interval_s"] = INTERVAL
    for f in sorted(tmp.iterdir()):
        f.unlink()
    tmp.rmdir()
    return out


def _r(v):
    return None if v is None else round(v, 3)


def bench(log=print) -> dict:
    """Push and polling runs, each in its own child process."""
    out: dict = {}
    for mode in ("push", "polling"):
        n = ALERTS_FULL if FULL else ALERTS_QUICK[mode]
        res = run_child("latency", {"mode": mode, "alerts": n}, timeout=n * (TIMEOUT + INTERVAL) + 120)
        log(f"  {mode}: {res['n']} alerts, telegram p50 {res['telegram_p50']} s p95 {res['telegram_p95']} s, "
            f"email p50 {res['email_p50']} s p95 {res['email_p95']} s, lost {res['lost']}")
        out[mode] = res
    out["method"] = (
        "`flashbot run` (the real service, a subprocess, on uvloop when installed) against local "
        "stand-ins: the feed server, the Telegram Bot API stand-in, an SMTP server stamping each "
        "arrival, and for push the WebSub hub (the feed declares it; the service subscribes and "
        "verifies). One source, one instant-mode email subscriber plus the Telegram channel. "
        "Alerts are published one after the other; each is timed from the moment the feed "
        "changed (the feed server serves the new item, or the hub starts pushing it) to the "
        "first Telegram post and the first email naming it. Polling: `interval = "
        f"{INTERVAL}` s, each publication at a random point of the poll cycle (so the wait for "
        "the next poll is part of the number, as for real news); push: the source's polling "
        "interval is 300 s, so only the push can deliver in time.")
    if not FULL:
        out["note"] = (f"Quick mode: {ALERTS_QUICK['push']} push alerts and {ALERTS_QUICK['polling']} "
                       f"polling alerts; `BENCH_FULL=1` measures {ALERTS_FULL} of each.")
    return out
