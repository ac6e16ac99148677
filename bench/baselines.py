"""The anchors: (a) an rss2email-style sender and (b) the raw aiosmtplib ceiling."""
from __future__ import annotations

import asyncio
import smtplib
import time

from . import loops, message


def _rcpt(i: int) -> str:
    return f"abonne{i:07d}@example.org"


def rss2email_style(p: dict) -> dict:
    """(a) smtplib: a new connection and a new EmailMessage per recipient, one after the other."""
    host, port, n = "127.0.0.1", p["port"], p["n"]
    t0 = time.perf_counter()
    first = None
    for i in range(n):
        msg = message.build(_rcpt(i), i)
        with smtplib.SMTP(host, port, timeout=30) as smtp:
            smtp.send_message(msg)
        if first is None:
            first = time.perf_counter() - t0
    wall = time.perf_counter() - t0
    return {"n": n, "sent": n, "wall_s": round(wall, 3), "msg_per_s": round(n / wall, 1),
            "first_s": round(first, 4)}


def raw_ceiling(p: dict) -> dict:
    """(b) aiosmtplib over `conns` persistent connections sending pre-rendered bytes, no DB."""
    import aiosmtplib

    host, port, n, conns = "127.0.0.1", p["port"], p["n"], p["conns"]
    body = message.prerendered()
    sender = "alertes@bench.example.org"
    state = {"next": 0, "first": None}

    async def worker(t0: float) -> int:
        smtp = aiosmtplib.SMTP(hostname=host, port=port, timeout=30, start_tls=False)
        await smtp.connect()
        sent = 0
        try:
            while state["next"] < n:
                i = state["next"]
                state["next"] += 1
                await smtp.sendmail(sender, [_rcpt(i)], body)
                sent += 1
                if state["first"] is None:
                    state["first"] = time.perf_counter() - t0
        finally:
            await smtp.quit()
        return sent

    async def main() -> tuple[int, float]:
        t0 = time.perf_counter()
        counts = await asyncio.gather(*(worker(t0) for _ in range(conns)))
        return sum(counts), time.perf_counter() - t0

    sent, wall = loops.run(main, p.get("loop", "asyncio"))
    return {"n": n, "sent": sent, "wall_s": round(wall, 3), "msg_per_s": round(sent / wall, 1),
            "first_s": round(state["first"] or 0, 4), "conns": conns, "loop": p.get("loop", "asyncio")}
