"""Hostile bounces: huge, malformed, nested, forged or replayed, naming someone else, relaying, and 10,000 at once."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time

import aiosmtplib
import pytest

from bot.models import InboundState
from bot.store import bounces as inbox
from fixtures_bounces import CORPUS, DOMAIN, SECRET, process, send_bounce

DSN = (CORPUS / "lhost-postfix-04.eml").read_bytes()  # names kijitora@example.co.jp
VICTIM = "kijitora@example.co.jp"


async def test_a_100_mb_bounce_is_refused_and_the_receiver_goes_on(world, receiver):
    line = b"A" * 998 + b"\r\n"
    huge = b"Subject: big\r\nContent-Type: text/plain\r\n\r\n" + line * (100 * 1024 * 1024 // len(line))
    dlv = world.sent(world.subscriber(VICTIM))
    with pytest.raises(aiosmtplib.SMTPResponseException) as exc:
        await send_bounce(receiver.port, huge, world.return_path(dlv))
    assert exc.value.code == 552
    assert world.mails() == []
    await send_bounce(receiver.port, DSN, world.return_path(dlv))  # still serving
    await process(world)
    assert world.delivery(dlv)["outcome"] == "bounced"


async def test_relaying_is_refused(world, receiver):
    with pytest.raises(aiosmtplib.SMTPRecipientsRefused):
        await send_bounce(receiver.port, DSN, "someone@example.com")
    with pytest.raises(aiosmtplib.SMTPRecipientsRefused):
        await send_bounce(receiver.port, DSN, f"x@{DOMAIN}.evil.example")
    assert world.mails() == []


MALFORMED = [
    b"\r\n".join([b"\x00\xff\xfe garbage without any header at all \x00"] * 50),
    b"Content-Type: multipart/report; boundary=\"x\"\r\n\r\n--x\r\nContent-Type: message/delivery-status\r\n\r\n"
    b"Final-Recipient: rfc822;\r\nAction: failed\r\nStatus: 9.9.9.9.9\r\n",  # unterminated, nonsense fields
    b"Content-Type: multipart/mixed; boundary=\r\nSubject: =?utf-8?B?////?=\r\n\r\n--\r\n--\r\n",
    b"Subject: deep\r\n" + b"".join(f"Content-Type: multipart/mixed; boundary=\"b{i}\"\r\n\r\n--b{i}\r\n".encode()
                                   for i in range(3000)),
]


@pytest.mark.parametrize("raw", MALFORMED, ids=["binary", "broken-dsn", "empty-boundary", "3000-deep"])
async def test_malformed_mime_is_kept_unparsed(world, receiver, raw):
    sub = world.subscriber(VICTIM)
    dlv = world.sent(sub)
    await send_bounce(receiver.port, raw, world.return_path(dlv))
    await process(world)
    mail = world.mails()[0]
    assert mail["state"] == InboundState.UNPARSED and mail["raw"]
    assert world.person(sub)["status"] == "active"


def _nested(outer_addr: str, inner: bytes) -> bytes:
    return (b"From: MAILER-DAEMON@relay.example\r\nSubject: Undelivered Mail Returned to Sender\r\n"
            b"MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"OUT\"\r\n\r\n"
            b"--OUT\r\nContent-Type: text/plain\r\n\r\nreturned\r\n"
            b"--OUT\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; relay.example\r\n\r\n"
            + f"Final-Recipient: rfc822; {outer_addr}\r\nAction: failed\r\nStatus: 5.1.1\r\n".encode()
            + b"Diagnostic-Code: smtp; 550 5.1.1 no such user\r\n\r\n"
            b"--OUT\r\nContent-Type: message/rfc822\r\n\r\n" + inner + b"\r\n--OUT--\r\n")


async def test_nested_dsns_use_the_outer_report(world, receiver):
    outer, other = world.subscriber("outer@example.net"), world.subscriber(VICTIM)
    dlv = world.sent(outer)
    await send_bounce(receiver.port, _nested("outer@example.net", DSN.replace(b"\n", b"\r\n")), world.return_path(dlv))
    await process(world)
    assert world.delivery(dlv)["outcome"] == "bounced" and world.person(other)["status"] == "active"
    # The inner DSN alone (about VICTIM) wrapped in a report that names nobody: no effect on anyone.
    dlv2 = world.sent(world.subscriber("third@example.net"))
    await send_bounce(receiver.port, _nested("third@example.net", b"Subject: x\r\n\r\nnothing"), world.return_path(dlv2))
    await process(world)
    assert world.person(other)["status"] == "active"


async def test_forged_replayed_and_misattributed_tokens_suppress_nobody(world, receiver, caplog):
    victim = world.subscriber(VICTIM)
    victim_dlv = world.sent(victim)
    attacker = world.subscriber("attacker@example.net")
    attacker_dlv = world.sent(attacker)
    good = world.return_path(victim_dlv)
    mac = good.split("-")[2].split("@")[0]
    forged = [good.replace(mac, "a" * 16), f"b-{victim_dlv}-{'2' * 16}@{DOMAIN}", f"b-{attacker_dlv}-{mac}@{DOMAIN}"]
    for rcpt in forged:
        await send_bounce(receiver.port, DSN, rcpt)
    # The attacker replays the return path of a mail they really received, with a DSN naming the victim.
    for n in range(3):
        await send_bounce(receiver.port, DSN + f"\nX-Replay: {n}\n".encode(), world.return_path(attacker_dlv))
    await process(world)
    states = [m["state"] for m in world.mails()]
    assert states == [InboundState.REJECTED] * 6
    assert world.person(victim)["status"] == "active" and world.person(victim)["bounces"] == 0
    assert world.person(attacker)["status"] == "active" and world.delivery(attacker_dlv)["outcome"] is None
    notes = [m["note"] for m in world.mails()]
    assert all("nobody touched" in n for n in notes) and any("does not verify" in n for n in notes)
    assert any(r.message == "bounce_rejected" for r in caplog.records)


@pytest.mark.timeout(400)
async def test_ten_thousand_bounces_at_once(world, receiver):
    """5,000 genuine DSNs for 5,000 subscribers and 5,000 forged ones naming 5,000 innocents, over 10 connections."""
    from fixtures_delivery import add_subscribers

    n = 5000
    dead = add_subscribers(world.engine, [f"dead{i}@example.net" for i in range(n)])
    innocent = add_subscribers(world.engine, [f"fine{i}@example.net" for i in range(n)])
    dead_dlv = [world.sent(s) for s in dead]
    template = DSN.replace(b"\n", b"\r\n")
    jobs = [(template.replace(VICTIM.encode(), f"dead{i}@example.net".encode()), world.return_path(d))
            for i, d in enumerate(dead_dlv)]
    jobs += [(template.replace(VICTIM.encode(), f"fine{i}@example.net".encode()), f"b-{10**9 + i}-{'x' * 16}@{DOMAIN}")
             for i in range(n)]

    async def connection(part):
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=receiver.port, timeout=60)
        await client.connect()
        for raw, rcpt in part:
            await client.sendmail("", [rcpt], raw)
        await client.quit()

    await asyncio.wait_for(asyncio.gather(*(connection(jobs[k::10]) for k in range(10))), timeout=300)
    counts = await process(world)
    assert counts == {"processed": n, "rejected": n}
    statuses = {s: 0 for s in ("active", "suppressed")}
    for sid in innocent[:200] + innocent[-200:]:
        statuses[world.person(sid)["status"]] += 1
    assert statuses == {"active": 400, "suppressed": 0}
    assert all(world.person(s)["status"] == "suppressed" for s in dead[:100] + dead[-100:])


CRASH_SCRIPT = """
import sys
from bot.config import load_config
from bot.store import open_db
from bot.bounces.process import Processor
cfg = load_config(sys.argv[1])
Processor(cfg, open_db(cfg.database_url)).run_pending(batch=int(sys.argv[2]))
"""


@pytest.mark.timeout(300)
def test_sigkill_mid_processing_loses_nothing_and_counts_once(tmp_path):
    """A processor killed with SIGKILL while working through 3,000 stored bounces; a second run finishes."""
    from fixtures_bounces import World
    from fixtures_delivery import add_subscribers
    from bot.config import load_config

    (tmp_path / "config.toml").write_text(
        f'[bot]\ndatabase = "k.db"\n[web]\nsecret_key = "{SECRET}"\n[delivery]\nbounce_limit = 2\n'
        f'[bounces]\ndomain = "{DOMAIN}"\nsoft_limit = 2\n')
    world = World(load_config(tmp_path / "config.toml"))
    n = 3000
    subs = add_subscribers(world.engine, [f"k{i}@example.net" for i in range(n)])
    template = DSN.replace(b"\n", b"\r\n")
    rows, dlvs = [], []
    for i, s in enumerate(subs):
        d = world.sent(s)
        dlvs.append(d)
        raw = template.replace(VICTIM.encode(), f"k{i}@example.net".encode())
        rows.append({"source": "smtp", "raw": raw, "envelope_to": world.return_path(d)})
        # The same bounce a second time (another copy): it must still count once.
        rows.append({"source": "imap", "raw": raw + b"\r\n", "envelope_to": world.return_path(d)})
    inbox.store(world.engine, rows)
    env = {**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-c", CRASH_SCRIPT, str(tmp_path / "config.toml"), "20"], env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        done = sum(1 for m in inbox.listing(world.engine, ["processed"], None, 1000))
        if done >= 200:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    left = len(inbox.pending(world.engine, 10 * n))
    assert 0 < left < 2 * n, "the kill did not land mid-processing"
    subprocess.run([sys.executable, "-c", CRASH_SCRIPT, str(tmp_path / "config.toml"), "200"], env=env, check=True, timeout=240)
    assert inbox.pending(world.engine, 10) == []
    bounces = [world.person(s)["bounces"] for s in subs]
    assert bounces == [1] * n  # every delivery bounced once, counted once, despite two copies and a kill
    assert all(world.delivery(d)["outcome"] == "bounced" for d in dlvs)
    world.engine.dispose()


def test_the_classifier_process_killed_classification_goes_on_here(world, caplog):
    """`flashbot run` classifies in a worker process; SIGKILLed (out of memory…), the next batch is classified in-process."""
    from bot.bounces.process import Processor
    from bot.bounces.worker import classifier_pool

    pool = classifier_pool()
    if pool is None:
        pytest.skip("one core: no classifier process to kill")
    try:
        processor = Processor(world.cfg, world.engine, classifier=pool)
        subs = [world.subscriber(f"k{i}@example.net") for i in range(2)]
        dlvs = [world.sent(s) for s in subs]
        raws = [DSN.replace(VICTIM.encode(), f"k{i}@example.net".encode()) for i in range(2)]
        inbox.store(world.engine, [{"source": "smtp", "raw": raws[0], "envelope_to": world.return_path(dlvs[0])}])
        assert processor.run_pending() == {"processed": 1}  # classified in the worker
        for pid in list(pool._processes):  # noqa: SLF001 - the test needs the worker's pid
            os.kill(pid, signal.SIGKILL)
        inbox.store(world.engine, [{"source": "smtp", "raw": raws[1], "envelope_to": world.return_path(dlvs[1])}])
        assert processor.run_pending() == {"processed": 1}
        assert processor.classifier is None and any(r.message == "bounce_classifier_lost" for r in caplog.records)
        assert [world.person(s)["status"] for s in subs] == ["suppressed", "suppressed"]
    finally:
        pool.shutdown(wait=True)
