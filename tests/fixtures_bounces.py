"""Bounce fixtures: a config with [bounces], subscribers with sent deliveries, the receiver on a free port."""
from __future__ import annotations

import asyncio
from pathlib import Path

import aiosmtplib
import pytest
from sqlalchemy import select, update

from bot.bounces.process import Processor
from bot.bounces.receiver import Receiver
from bot.config import parse_config
from bot.models import SendOutcome
from bot.store import open_db, outbox, stats, utcnow
from bot.store.schema import bounce_mails, deliveries, subscribers
from fixtures_delivery import SECRET, SENDER, add_item, add_subscribers

DOMAIN = "bounces.example.org"
CORPUS = Path(__file__).parent / "bounce_corpus"


def bounce_config(tmp_path: Path, smtp_port: int | None = None, database: str | None = None, **bounces):
    """A validated Config with [bounces] (receiver on a free port) and email to smtp_port when given;
    `database`: the database fixture's value (None: a SQLite file, else a PostgreSQL URL)."""
    data: dict = {
        "bot": {"database": database or str(tmp_path / "bounces.db"), "public_url": "https://news.example.org"},
        "web": {"secret_key": SECRET},
        "delivery": {"bounce_limit": 1, "retry_delays": [1], "max_attempts": 2},
        "bounces": {"domain": DOMAIN, "listen": "127.0.0.1:0", "soft_limit": 3, "soft_window_days": 7, **bounces},
    }
    if smtp_port is not None:
        data["email"] = {"host": "127.0.0.1", "port": smtp_port, "sender": SENDER, "tls": "none", "timeout": 5}
    return parse_config(data, tmp_path, env={})


class World:
    """A database with subscribers and sent deliveries, and helpers to ask what became of them."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.engine = open_db(cfg.database_url)
        self.processor = Processor(cfg, self.engine)
        self.verp = self.processor.verp
        self.item = add_item(self.engine)
        self._revision = 0

    def subscriber(self, email: str) -> int:
        """The subscriber of this address, made active with no bounces (created when new)."""
        with self.engine.begin() as conn:
            found = conn.execute(select(subscribers.c.id).where(subscribers.c.email == email)).scalar()
            if found is not None:
                conn.execute(update(subscribers).where(subscribers.c.id == found).values(
                    status="active", bounces=0, status_reason=None))
                return found
        return add_subscribers(self.engine, [email])[0]

    def sent(self, subscriber_id: int, message_id: str | None = None) -> int:
        """A `sent` email delivery to this subscriber, counted in the stats as the outbox does; returns its id."""
        self._revision += 1
        now = utcnow()
        with self.engine.begin() as conn:  # queued as the outbox queues rows: the delivery summary counts it
            stats.bump(conn, stats.DELIVERY, [(now, "email", SendOutcome.SENT)])
            outbox.insert_rows(conn, [dict(
                item_id=self.item, channel="email", recipient=str(subscriber_id), subscriber_id=subscriber_id,
                revision=self._revision, kind="alert", state="sent", attempts=1, created_at=now, sent_at=now,
                finished_at=now, external_id=message_id or f"<m{self._revision}@example.org>")])
            return conn.execute(select(deliveries.c.id).where(
                deliveries.c.item_id == self.item, deliveries.c.revision == self._revision,
                deliveries.c.subscriber_id == subscriber_id)).scalar_one()

    def return_path(self, delivery_id: int) -> str:
        """The VERP address the delivery was sent with (naming its subscriber and alert, as compose does)."""
        return self.verp.address(self.verp.bounce_local(delivery_id, self.delivery(delivery_id)))

    def row(self, table, row_id: int) -> dict:
        with self.engine.connect() as conn:
            return dict(conn.execute(select(table).where(table.c.id == row_id)).mappings().one())

    def delivery(self, delivery_id: int) -> dict:
        return self.row(deliveries, delivery_id)

    def person(self, subscriber_id: int) -> dict:
        return self.row(subscribers, subscriber_id)

    def mails(self) -> list[dict]:
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(select(bounce_mails).order_by(bounce_mails.c.id)).mappings()]


@pytest.fixture
def world(tmp_path, database):
    """A World on a fresh database (SQLite and PostgreSQL) with [bounces] configured; at the end, the
    delivery summary must match the rows."""
    from fixtures_delivery import assert_summary_in_step

    w = World(bounce_config(tmp_path, database=database))
    yield w
    assert_summary_in_step(w.engine)
    w.engine.dispose()


@pytest.fixture
async def receiver(world):
    """The bounce receiver listening on 127.0.0.1:<free port> (processing is left to the test)."""
    r = Receiver(world.cfg, world.engine)
    await r.start()
    yield r
    await r.stop()


async def send_bounce(port: int, raw: bytes, rcpt: str, sender: str = "") -> aiosmtplib.SMTPResponse:
    """Deliver raw bytes over real SMTP (null sender, as bounces come) to the receiver."""
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=30, start_tls=False)
    await client.connect()
    try:
        response = await client.sendmail(sender, [rcpt], raw)
        return response
    finally:
        await client.quit()


async def process(world) -> dict:
    """Run the processor over everything stored (in a thread, as the service does)."""
    return dict(await asyncio.to_thread(world.processor.run_pending))


async def send_alert(cfg, engine, item_id: int) -> None:
    """Queue the item for every active subscriber and send it through the real delivery engine."""
    from bot.delivery import fanout
    from bot.delivery.channels import build_channels
    from bot.delivery.engine import DeliveryEngine
    from bot.render.renderer import Renderer

    assert fanout.queue_item(engine, cfg, item_id) > 0
    channels = build_channels(cfg)
    try:
        await DeliveryEngine(engine, cfg, channels, Renderer(cfg)).run_due()
    finally:
        for channel in channels.values():
            await channel.close()


def list_unsubscribe(message) -> list[str]:
    """The URIs of a parsed message's List-Unsubscribe header, in order."""
    import re

    return re.findall(r"<([^<>]+)>", " ".join(str(message["List-Unsubscribe"]).split()))
