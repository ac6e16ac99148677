"""A real round trip through Postfix: Flashbot sends an alert, Postfix accepts it, the next hop answers
550, and Postfix itself writes the DSN to the VERP return path and routes it to our receiver.

Postfix (Debian's package, `make test-deps`) runs from its own config folder on free ports; the
test is skipped loudly when it is not installed or cannot run as root.
"""
from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest
from sqlalchemy import insert

from bot.bounces.receiver import Receiver
from bot.delivery.channels import build_channels
from bot.delivery.engine import DeliveryEngine
from bot.demo.smtpserver import SMTPServer
from bot.render.renderer import Renderer
from bot.store import utcnow
from bot.store.schema import deliveries
from fixtures_bounces import DOMAIN, World, bounce_config

POSTFIX = "/usr/sbin/postfix"
pytestmark = pytest.mark.timeout(180)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Postfix:
    """Postfix from a throwaway config folder: smtpd on `port`, transports to the next hop and our receiver."""

    def __init__(self, next_hop: int, receiver: int):
        self.dir = Path(tempfile.mkdtemp(prefix="fb-postfix-"))
        self.port = _free_port()
        etc, spool, data = self.dir / "etc", self.dir / "spool", self.dir / "data"
        for d in (self.dir, etc, spool, data):
            d.mkdir(exist_ok=True)
            d.chmod(0o755)  # the postfix user walks these
        shutil.chown(data, "postfix", "postfix")
        (etc / "main.cf").write_text(f"""compatibility_level = 3.6
queue_directory = {spool}
data_directory = {data}
meta_directory = /etc/postfix
mail_owner = postfix
setgid_group = postdrop
myhostname = mta.flashbot-test.example
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
transport_maps = inline:{{ dead.example=smtp:[127.0.0.1]:{next_hop}, {DOMAIN}=smtp:[127.0.0.1]:{receiver} }}
smtp_dns_support_level = disabled
smtputf8_enable = no
maillog_file = {self.dir}/maillog
maillog_file_prefixes = {self.dir}
alias_maps =
alias_database =
local_recipient_maps =
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
""")
        lines = []
        for line in Path("/etc/postfix/master.cf").read_text().splitlines():
            fields = line.split()
            if line.startswith("smtp ") and "inet" in fields:
                line = f"127.0.0.1:{self.port} inet n - n - - smtpd"
            elif line and not line[0].isspace() and not line.startswith("#") and len(fields) >= 8:
                fields[4] = "n"  # no chroot: the spool is ours, not /var/spool/postfix
                line = " ".join(fields)
            lines.append(line)
        (etc / "master.cf").write_text("\n".join(lines) + "\n")
        self.etc = etc

    def start(self) -> None:
        subprocess.run([POSTFIX, "-c", str(self.etc), "start"], check=True, capture_output=True, timeout=60)

    def stop(self) -> None:
        subprocess.run([POSTFIX, "-c", str(self.etc), "stop"], capture_output=True, timeout=60)
        shutil.rmtree(self.dir, ignore_errors=True)

    def log(self) -> str:
        path = self.dir / "maillog"
        return path.read_text(errors="replace") if path.exists() else ""


@pytest.fixture
def postfix_ports():
    if not os.path.exists(POSTFIX):
        pytest.skip("Debian postfix is not installed (make test-deps installs it): the Postfix round trip is NOT tested")
    if os.geteuid() != 0:
        pytest.skip("Postfix's master must start as root: the Postfix round trip is NOT tested")
    return _free_port()


async def test_postfix_writes_the_dsn_and_the_subscriber_ends_suppressed(tmp_path, postfix_ports):
    receiver_port = postfix_ports
    with SMTPServer() as next_hop:
        next_hop.fail(550, stage="rcpt", pattern="*@dead.example", message="5.1.1 <dead@dead.example>: no such user")
        postfix = Postfix(next_hop.port, receiver_port)
        cfg = bounce_config(tmp_path, smtp_port=postfix.port, listen=f"127.0.0.1:{receiver_port}")
        world = World(cfg)
        receiver = Receiver(cfg, world.engine)
        await receiver.start()
        postfix.start()
        try:
            sub = world.subscriber("dead@dead.example")
            with world.engine.begin() as conn:
                dlv = conn.execute(insert(deliveries).values(
                    item_id=world.item, channel="email", recipient=str(sub), subscriber_id=sub, revision=0, kind="alert",
                    state="pending", attempts=0, created_at=utcnow(), next_attempt_at=utcnow())).inserted_primary_key[0]
            engine = DeliveryEngine(world.engine, cfg, build_channels(cfg), Renderer(cfg))
            await engine.run_due()
            assert world.delivery(dlv)["state"] == "sent"  # Postfix said 250: the story used to end here
            for _ in range(600):
                if world.mails():
                    break
                await asyncio.sleep(0.1)
            else:
                pytest.fail("no DSN reached the receiver; Postfix log:\n" + postfix.log()[-3000:])
            mail = world.mails()[0]
            assert mail["envelope_to"] == world.return_path(dlv)  # Postfix wrote to the VERP address
            assert b"message/delivery-status" in mail["raw"]
            await asyncio.to_thread(world.processor.run_pending)
            mail = world.mails()[0]
            assert (mail["state"], mail["kind"], mail["delivery_id"]) == ("processed", "hard", dlv)
            assert world.delivery(dlv)["outcome"] == "bounced" and world.delivery(dlv)["state"] == "sent"
            person = world.person(sub)
            assert person["status"] == "suppressed" and "5.1.1" in person["status_reason"]
        finally:
            postfix.stop()
            await receiver.stop()
            await engine_close(world)


async def engine_close(world) -> None:
    world.engine.dispose()
