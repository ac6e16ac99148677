"""A cluster of real `flashbot run` processes on one throwaway PostgreSQL, for the fault tests
(tests/test_cluster_faults.py) and `make soak`: a counting SMTP server, a feed, N processes."""
from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

from aiosmtpd.controller import Controller
from sqlalchemy import insert, text

from bot.demo.feedserver import FeedServer
from bot.store import open_db
from bot.store.schema import subscribers
from fixtures_service import RSS_TYPE, flash_rss

BASE = [("a1", "Municipales : les listes déposées"), ("a2", "Météo : un week-end doux")]
ROOT = Path(__file__).resolve().parent.parent


class _Count:
    """aiosmtpd handler keeping only who received what (no message bodies: 20,000 of them)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.by_recipient: Counter = Counter()

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            for r in envelope.rcpt_tos:
                self.by_recipient[r] += 1
        return "250 OK"


class _Controller(Controller):
    def _trigger_server(self):
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class CountingSMTP:
    """A real SMTP server on 127.0.0.1 counting deliveries per recipient."""

    def __init__(self):
        self.handler = _Count()
        self.controller = _Controller(self.handler, hostname="127.0.0.1", port=0)

    def start(self) -> "CountingSMTP":
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    @property
    def port(self) -> int:
        return self.controller.port

    def total(self) -> int:
        with self.handler.lock:
            return sum(self.handler.by_recipient.values())

    def counts(self) -> Counter:
        with self.handler.lock:
            return Counter(self.handler.by_recipient)


class Fleet:
    """Config, subscribers and `flashbot run --role …` processes sharing one PostgreSQL database."""

    def __init__(self, tmp: Path, url: str, subscribers_n: int, digest_n: int = 0, lease: float = 6):
        self.dir, self.url = tmp, url
        self.smtp = CountingSMTP().start()
        self.feeds = FeedServer().start()
        self.feeds.set("/feed.xml", flash_rss(BASE), headers=RSS_TYPE)
        self.procs: dict[str, subprocess.Popen] = {}
        self.config = tmp / "config.toml"
        self.config.write_text(f'''
[bot]
database = "{url}"

[[sources]]
name = "quotidien"
url = "{self.feeds.url('/feed.xml')}"
interval = 1

[email]
host = "127.0.0.1"
port = {self.smtp.port}
sender = "Flash Info <alertes@example.org>"
tls = "none"
concurrency = 8

[web]
enabled = false

[delivery]
retry_delays = [1]
lease_seconds = {lease}
batch_size = 200
grace_seconds = 2
''')
        self.engine = open_db(url)
        self.emails = [f"s{i:05d}@example.net" for i in range(subscribers_n)]
        self._add_subscribers(digest_n)

    def _add_subscribers(self, digest_n: int) -> None:
        now = datetime.now(timezone.utc)
        rows = [{"email": e, "status": "active", "mode": "both" if i < digest_n else "instant", "language": "fr",
                 "topics": [], "origin": "import", "token_nonce": hashlib.md5(e.encode()).hexdigest()[:12],
                 "created_at": now, "confirmed_at": now} for i, e in enumerate(self.emails)]
        with self.engine.begin() as conn:
            conn.execute(insert(subscribers), rows)

    def backdate_install(self, days: int = 2) -> None:
        """Make today's digest run count as missed (the first scheduler queues it at election)."""
        when = (datetime.now(timezone.utc) - timedelta(days=days)).isoformat()
        with self.engine.begin() as conn:
            conn.execute(text("INSERT INTO meta (key, value) VALUES ('first_started_at', :v)"), {"v": when})

    def start(self, name: str, roles: str) -> subprocess.Popen:
        """`flashbot run --role ROLES` with its output in files named after it."""
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        out = open(self.dir / f"{name}.out", "w")
        err = open(self.dir / f"{name}.err", "w")
        proc = subprocess.Popen([sys.executable, "-m", "bot", "--config", str(self.config), "run", "--role", roles],
                                cwd=self.dir, stdout=out, stderr=err, env=env)
        self.procs[name] = proc
        return proc

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        """A one-off `flashbot ARGS` on the same config."""
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        return subprocess.run([sys.executable, "-m", "bot", "--config", str(self.config), *args],
                              cwd=self.dir, capture_output=True, text=True, timeout=120, env=env)

    def log(self, name: str) -> str:
        return (self.dir / f"{name}.err").read_text(errors="replace")

    def sql(self, statement: str, **params) -> list[tuple]:
        with self.engine.begin() as conn:
            result = conn.execute(text(statement), params)
            return [tuple(r) for r in result] if result.returns_rows else []

    def scalar(self, statement: str, **params):
        return self.sql(statement, **params)[0][0]

    def wait(self, what: str, check, timeout: float):
        """Poll `check` until truthy; fail naming `what` (a hang guard, not a timing assertion)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = check()
            if value:
                return value
            for name, p in self.procs.items():
                if p.poll() is not None and not getattr(p, "killed", False):
                    raise AssertionError(f"{name} exited with {p.returncode} while waiting for {what}:\n{self.log(name)[-3000:]}")
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}")

    def instance_of(self, name: str) -> str:
        pid = self.procs[name].pid
        return self.wait(f"{name}'s heartbeat", lambda: (self.sql("SELECT id FROM instances WHERE pid = :p", p=pid) or [[None]])[0][0], 30)

    def kill(self, name: str) -> None:
        proc = self.procs[name]
        proc.killed = True
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    def publish_flash(self, guid: str, title: str) -> None:
        self.feeds.set("/feed.xml", flash_rss([(guid, f"FLASH INFO : {title}"), *BASE]), headers=RSS_TYPE)

    def summary_mismatches(self) -> dict:
        """The delivery summary's counts that differ from the rows (empty: in step, as every write keeps it)."""
        from bot.store import summary_rebuild

        with self.engine.connect() as conn:
            return summary_rebuild.verify(conn)

    def states(self) -> dict[str, int]:
        return dict(self.sql("SELECT state, count(*) FROM deliveries GROUP BY state"))

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.engine.dispose()
        self.smtp.stop()
        self.feeds.stop()
