"""The receiver's SMTP on the wire (raw sockets): DATA read in chunks must end exactly at the lone dot,
undo dot-stuffing, keep a command sent right after the dot, hold the size cap to the byte, and
shrug off a client that vanishes mid-DATA."""
from __future__ import annotations

import asyncio

import pytest

from bot.bounces.receiver import Receiver
from fixtures_bounces import DOMAIN, World, bounce_config

MAX = 16 * 1024  # the smallest bounces.max_bytes


@pytest.fixture
async def small(tmp_path):
    """A receiver with bounces.max_bytes = 16 KiB."""
    world = World(bounce_config(tmp_path, max_bytes=MAX))
    receiver = Receiver(world.cfg, world.engine)
    await receiver.start()
    yield world, receiver
    await receiver.stop()
    world.engine.dispose()


class Wire:
    """A bare SMTP client: bytes exactly as written, replies read line by line."""

    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> "Wire":
        wire = cls(*await asyncio.open_connection("127.0.0.1", port))
        assert (await wire.reply()).startswith("220")
        return wire

    async def reply(self) -> str:
        while True:
            line = (await asyncio.wait_for(self.reader.readline(), 30)).decode()
            if line[3:4] != "-":
                return line.strip()

    async def send(self, data: bytes, replies: int = 1) -> list[str]:
        self.writer.write(data)
        await self.writer.drain()
        return [await self.reply() for _ in range(replies)]

    async def envelope(self, rcpt: str) -> None:
        assert (await self.send(f"EHLO mx.example\r\nMAIL FROM:<>\r\nRCPT TO:<{rcpt}>\r\nDATA\r\n".encode(), 4))[-1].startswith("354")


async def test_dot_stuffing_chunk_edges_and_a_command_right_after_the_dot(small):
    world, receiver = small
    wire = await Wire.open(receiver.port)
    body = b"Subject: dots\r\n\r\n..one dot\r\n...two dots\r\nlast\r\n"
    await wire.envelope(f"b-1-{'a' * 16}@{DOMAIN}")
    for piece in (body[:20], body[20:], b".", b"\r", b"\n"):  # the terminator split over three writes
        wire.writer.write(piece)
        await wire.writer.drain()
        await asyncio.sleep(0.01)
    assert (await wire.reply()).startswith("250 2.0.0 stored as bounce #")
    # The next message, its dot and the QUIT in one write: a client that does not wait is still served.
    await wire.envelope(f"b-2-{'a' * 16}@{DOMAIN}")
    replies = await wire.send(b"Subject: second\r\n\r\nbody\r\n.\r\nQUIT\r\n", 2)
    assert replies[0].startswith("250 2.0.0 stored") and replies[1].startswith("221")
    raws = [m["raw"] for m in world.mails()]
    assert raws == [b"Subject: dots\r\n\r\n.one dot\r\n..two dots\r\nlast\r\n", b"Subject: second\r\n\r\nbody\r\n"]


async def test_an_empty_message_is_stored_empty(small):
    world, receiver = small
    wire = await Wire.open(receiver.port)
    await wire.envelope(f"b-3-{'a' * 16}@{DOMAIN}")
    assert (await wire.send(b".\r\n"))[0].startswith("250")
    assert [m["raw"] for m in world.mails()] == [b""]


@pytest.mark.parametrize("size, code", [(MAX, "250"), (MAX + 1, "552")])
async def test_the_size_cap_holds_to_the_byte_and_the_session_goes_on(small, size, code):
    world, receiver = small
    wire = await Wire.open(receiver.port)
    head = b"Subject: big\r\n\r\n"
    line = b"x" * 98 + b"\r\n"
    body = head + line * ((size - len(head)) // len(line))
    body += b"y" * (size - len(body) - 2) + b"\r\n"
    assert len(body) == size
    await wire.envelope(f"b-4-{'a' * 16}@{DOMAIN}")
    assert (await wire.send(body + b".\r\n"))[0].startswith(code)
    assert len(world.mails()) == (1 if code == "250" else 0)
    await wire.envelope(f"b-5-{'a' * 16}@{DOMAIN}")  # the same session takes the next message
    assert (await wire.send(b"Subject: next\r\n\r\nok\r\n.\r\n"))[0].startswith("250")


async def test_a_client_gone_mid_data_stores_nothing_and_the_receiver_goes_on(small):
    world, receiver = small
    wire = await Wire.open(receiver.port)
    await wire.envelope(f"b-6-{'a' * 16}@{DOMAIN}")
    wire.writer.write(b"Subject: cut\r\n\r\nhalf a message")
    await wire.writer.drain()
    wire.writer.close()
    await asyncio.sleep(0.2)
    other = await Wire.open(receiver.port)
    await other.envelope(f"b-7-{'a' * 16}@{DOMAIN}")
    assert (await other.send(b"Subject: whole\r\n\r\nok\r\n.\r\n"))[0].startswith("250")
    assert [m["raw"] for m in world.mails()] == [b"Subject: whole\r\n\r\nok\r\n"]
