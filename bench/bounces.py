"""Section 6: DSNs per second through the SMTP bounce receiver (stored, then processed), target ≥ 500/s.

The sending MTA is a separate process (`python -m bench.bounces send …`: a minimal SMTP client on raw
sockets over 8 connections), as in production, so its CPU is not charged to Flashbot. Three measurements, each on
a fresh database, on the service's event loop (uvloop when installed):
- receive: `Receiver` alone, until the last 250 (each one after the group commit);
- process: `Processor.run_pending` alone over the stored mails (classification in this process too);
- service: `BounceWorker` exactly as `flashbot run` starts it (receiver and processing loop in one
  process), from the first connection until the last DSN is processed: the headline number.
CPU = this process's user + system time (all threads) per DSN: unlike wall time it hardly moves
when other work shares the machine.

`python -m bench.bounces` runs the section alone (3,000 DSNs, 10,000 with BENCH_FULL=1; or
`python -m bench.run bounces` to rewrite BENCHMARKS.md); `python -m bench.bounces smoke [N]` checks that
every path still works with N DSNs (default 50), one run, no verdict.
"""
from __future__ import annotations

import asyncio
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import func, insert, select

from bot.bounces.process import Processor
from bot.bounces.receiver import Receiver
from bot.bounces.worker import BounceWorker
from bot.config import parse_config
from bot.models import InboundState
from bot.service import loop
from bot.store import open_db, utcnow
from bot.store.schema import bounce_mails, deliveries, items, sources, subscribers

from .common import FULL, ROOT, RUNS, median

DSN = (ROOT / "tests" / "bounce_corpus" / "lhost-postfix-04.eml").read_bytes().replace(b"\n", b"\r\n")
NAMED = b"kijitora@example.co.jp"
CONNECTIONS = 8
TARGET = 500


def _setup(folder: Path, n: int):
    cfg = parse_config({"bot": {"database": str(folder / "b.db")}, "web": {"secret_key": "bench-secret-key-0123456789"},
                        "bounces": {"domain": "bounces.bench.example", "listen": "127.0.0.1:0"}}, folder, env={})
    engine = open_db(cfg.database_url)
    now = utcnow()
    with engine.begin() as conn:
        src = conn.execute(insert(sources).values(name="s", url="http://x", created_at=now)).inserted_primary_key[0]
        item = conn.execute(insert(items).values(source_id=src, key="k", title="t", content_hash="h", norm_title="t")).inserted_primary_key[0]
        conn.execute(insert(subscribers), [{"email": f"r{i}@example.net", "status": "active", "token_nonce": "n",
                                            "created_at": now} for i in range(n)])
        conn.execute(insert(deliveries), [{"item_id": item, "channel": "email", "recipient": str(i + 1), "subscriber_id": i + 1,
                                           "revision": 0, "kind": "alert", "state": "sent", "attempts": 1, "created_at": now,
                                           "sent_at": now} for i in range(n)])
    return cfg, engine


async def _mta(port: int, folder: Path, verp, n: int) -> None:
    """The sending MTA in its own process: one DSN per delivery, each to its VERP return path."""
    (folder / "rcpts").write_text("\n".join(verp.address(verp.bounce_local(i + 1)) for i in range(n)))
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "bench.bounces", "send", str(port), str(folder / "rcpts"),
                                                cwd=str(ROOT), env={**os.environ, "PYTHONPATH": str(ROOT)})
    if await proc.wait() != 0:
        raise RuntimeError("the sending process failed")


def _send(port: int, rcpt_file: str) -> None:
    """`python -m bench.bounces send PORT FILE`: DSN i (naming r{i}@example.net) to the i-th address of FILE.

    A minimal SMTP client on raw sockets, one command at a time as an MTA talks to a server that offers
    no PIPELINING, like Postfix's smtp client: the MTA's own CPU (an MTA is C code, not aiosmtplib) then
    takes little of the machine the receiver is measured on.
    """
    rcpts = Path(rcpt_file).read_text().split("\n")
    jobs = [(_stuffed(DSN.replace(NAMED, f"r{i}@example.net".encode())), rcpt.encode()) for i, rcpt in enumerate(rcpts)]

    async def expect(reader, code: bytes) -> None:
        while True:
            line = await reader.readline()
            if line[3:4] != b"-":
                break
        if not line.startswith(code):
            raise RuntimeError(f"expected {code!r}, got {line!r}")

    async def connection(part):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await expect(reader, b"220")
        writer.write(b"EHLO mta.bench.example\r\n")
        await expect(reader, b"250")
        for raw, rcpt in part:
            for line, code in ((b"MAIL FROM:<>\r\n", b"250"), (b"RCPT TO:<" + rcpt + b">\r\n", b"250"),
                               (b"DATA\r\n", b"354"), (raw + b".\r\n", b"250")):
                writer.write(line)
                await expect(reader, code)
        writer.write(b"QUIT\r\n")
        await expect(reader, b"221")
        writer.close()

    async def main():
        await asyncio.gather(*(connection(jobs[k::CONNECTIONS]) for k in range(CONNECTIONS)))

    loop.run(main())


def _stuffed(raw: bytes) -> bytes:
    """The message as sent in DATA: CRLF line ends, a leading dot doubled (RFC 5321 4.5.2)."""
    lines = raw.replace(b"\r\n", b"\n").split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    return b"".join((b"." + ln if ln.startswith(b".") else ln) + b"\r\n" for ln in lines)


def _done(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(bounce_mails).where(bounce_mails.c.state != InboundState.NEW)).scalar_one()


async def _phases(folder: Path, n: int) -> dict:
    """Receiving alone, then processing alone."""
    cfg, engine = _setup(folder, n)
    receiver, processor = Receiver(cfg, engine), Processor(cfg, engine)
    port = await receiver.start()
    t0, c0 = time.perf_counter(), time.process_time()
    await _mta(port, folder, processor.verp, n)
    t1, c1 = time.perf_counter(), time.process_time()
    await receiver.stop()
    counts = await asyncio.to_thread(processor.run_pending, 500)
    t2, c2 = time.perf_counter(), time.process_time()
    engine.dispose()
    assert counts.get(InboundState.PROCESSED) == n, counts
    return {"received_per_s": n / (t1 - t0), "receive_cpu_ms": 1000 * (c1 - c0) / n,
            "processed_alone_per_s": n / (t2 - t1), "process_cpu_ms": 1000 * (c2 - c1) / n}


async def _service(folder: Path, n: int) -> dict:
    """The bounce side of `flashbot run`: receiving and processing at the same time."""
    cfg, engine = _setup(folder, n)
    worker = BounceWorker(cfg, engine)
    await worker.start()
    t0, c0, k0 = time.perf_counter(), time.process_time(), _children_cpu()
    await _mta(worker.receiver.port, folder, worker.processor.verp, n)
    k1 = _children_cpu()  # the MTA process has exited
    while await asyncio.to_thread(_done, engine) < n:
        await asyncio.sleep(0.05)
    t1, c1 = time.perf_counter(), time.process_time()
    await worker.stop()  # joins the classifier process: its CPU is counted from here
    engine.dispose()
    return {"service_per_s": n / (t1 - t0), "service_cpu_ms": 1000 * (c1 - c0) / n,
            "classifier_cpu_ms": 1000 * (_children_cpu() - k1) / n, "mta_cpu_ms": 1000 * (k1 - k0) / n}


def _children_cpu() -> float:
    """User + system seconds of this process's exited children."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run(kind, n: int) -> dict:
    folder = Path(tempfile.mkdtemp(prefix="fb-bench-bounces-"))
    try:
        return loop.run(kind(folder, n))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def bench(log) -> dict:
    """N DSNs through the receiver, the processor and the two together; medians of RUNS interleaved runs."""
    n = 10000 if FULL else 3000
    load_before = os.getloadavg()[0]
    runs = []
    for _ in range(RUNS):
        runs.append({**_run(_phases, n), **_run(_service, n)})
    res = {k: median([r[k] for r in runs]) for k in runs[0]}
    log(f"  {n} DSNs: received {res['received_per_s']:.0f}/s ({res['receive_cpu_ms']:.2f} ms CPU each), processed "
        f"{res['processed_alone_per_s']:.0f}/s ({res['process_cpu_ms']:.2f} ms), through the service "
        f"{res['service_per_s']:.0f}/s ({res['service_cpu_ms']:.2f} ms + {res['classifier_cpu_ms']:.2f} ms in the "
        f"classifier process; the MTA used {res['mta_cpu_ms']:.2f} ms)")
    return {**res, "n": n, "connections": CONNECTIONS, "target_per_s": TARGET, "processed_per_s": res["service_per_s"],
            "load_avg": [round(load_before, 1), round(os.getloadavg()[0], 1)], "cores": os.cpu_count(),
            "method": f"{n} real Postfix DSNs (tests/bounce_corpus/lhost-postfix-04.eml, one per subscriber, each to its "
                      f"delivery's VERP return path) sent by a separate process (the MTA: a minimal SMTP client on raw "
                      f"sockets, one command at a time as Postfix talks to a server without PIPELINING, {CONNECTIONS} "
                      "connections) over real SMTP. *receive*: `Receiver` alone, until the last 250 (each given after the "
                      "group commit); *process*: `Processor.run_pending` alone over the stored mails, all in this process "
                      "(classify, tie to the delivery by the VERP token, apply the hard bounce, mark; one transaction per "
                      "500); *service*: "
                      "`BounceWorker` as `flashbot run` starts it, receiving and processing at once (classification in its "
                      "worker process), from the first connection to the last DSN processed. CPU = user + system time per "
                      "DSN of the Flashbot process (all threads), of its classifier process and of the sending MTA. "
                      f"Event loop: the service's (uvloop when installed). Median of {RUNS} interleaved runs."}


def smoke(n: int = 50) -> dict:
    """One small run of each measurement: every path works (each DSN received, processed, counted); no verdict."""
    res = {**_run(_phases, n), **_run(_service, n)}
    return {"n": n, "smoke": True, **{k: round(v, 2) for k, v in res.items()}}


if __name__ == "__main__":
    if sys.argv[1:2] == ["send"]:
        _send(int(sys.argv[2]), sys.argv[3])
    elif sys.argv[1:2] == ["smoke"]:
        print(smoke(int(sys.argv[2]) if len(sys.argv) > 2 else 50))
    else:
        print(bench(print))
