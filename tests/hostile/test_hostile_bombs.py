"""Size bombs measured in a child process with a hard address-space limit, so a failure is a clean
MemoryError in the child instead of an out-of-memory kill of the test run.

The child fetches through `bot.ingest.fetch.fetch_feed` from a real FeedServer and prints the outcome and
its peak RSS (ru_maxrss) as JSON.
"""
from __future__ import annotations

import gzip
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import gzip_bomb

HERE = Path(__file__).resolve().parent
LIMIT_MB = 1024  # address space of the child: Python + httpx + SQLAlchemy fit easily, a 2 GB inflate does not
CHILD = textwrap.dedent("""
    import asyncio, json, resource, sys, time
    sys.path[:0] = [{tests!r}, {here!r}]
    limit = {limit} * 1024 * 1024
    from bot.config import parse_config
    from bot.ingest.fetch import fetch_feed, make_client
    from bot.demo.feedserver import FeedServer
    body = open(sys.argv[1], "rb").read()
    headers = json.loads(sys.argv[2])
    cfg = parse_config({{"fetch": {{"timeout": 10}}}}, ".", env={{}})
    async def main():
        with FeedServer() as s:
            s.set("/bomb", body, headers=headers, content_type="application/rss+xml")
            base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
            t0 = time.monotonic()
            async with make_client(cfg.fetch) as c:
                res = await fetch_feed(c, cfg, s.url("/bomb"))
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            print(json.dumps({{"error": res.error, "seconds": time.monotonic() - t0, "rss_growth_mb": (peak - base) / 1024}}))
    asyncio.run(main())
""")


def fetch_in_child(tmp_path, body: bytes, headers: dict) -> dict:
    """Run one fetch in a memory-limited child; return its JSON verdict."""
    path = tmp_path / "body.bin"
    path.write_bytes(body)
    code = CHILD.format(tests=str(HERE.parent), here=str(HERE), limit=LIMIT_MB)
    run = subprocess.run([sys.executable, "-c", code, str(path), json.dumps(headers)], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


BOMBS = [
    ("gzip 2 GB", lambda: gzip_bomb(2048), {"Content-Encoding": "gzip"}),
    ("gzip 4 GB", lambda: gzip_bomb(4096), {"Content-Encoding": "gzip"}),
    ("deflate 2 GB (zlib wrapper)", lambda: _zlib_bomb(2048), {"Content-Encoding": "deflate"}),
]


def _zlib_bomb(megabytes: int) -> bytes:
    import zlib
    raw = gzip_bomb(megabytes)[10:-8]  # the raw deflate stream of the gzip member
    chunk_adler = 1
    zero = b"\0" * (1 << 24)
    for _ in range(megabytes // 16):
        chunk_adler = zlib.adler32(zero, chunk_adler)
    return b"\x78\xda" + raw + chunk_adler.to_bytes(4, "big")


@pytest.mark.parametrize("name,make,headers", BOMBS, ids=[b[0] for b in BOMBS])
def test_compression_bomb_is_cut_on_inflated_bytes(tmp_path, figures, name, make, headers):
    body = make()
    assert len(body) < 5 * 1024 * 1024  # a few MB on the wire …
    got = fetch_in_child(tmp_path, body, headers)
    figures.add("size-bombs (child, 1 GB address space)", tried=1)
    assert got["error"] and "too large" in got["error"], got  # … refused on its inflated size
    assert got["seconds"] < 5, got
    assert got["rss_growth_mb"] < 300, got  # bounded whatever the bomb's size (one 64 kB read inflated at a time)
    figures.add("size-bombs (child, 1 GB address space)", tried=0, passed=1)


def test_stacked_gzip_bomb_is_cut_before_inflating(tmp_path, figures):
    inner = gzip_bomb(2048)  # 2 MB inflating to 2 GB …
    body = gzip.compress(inner, 9)  # … wrapped again: 3.4 kB on the wire
    assert len(body) < 10_000
    figures.add("size-bombs (child, 1 GB address space)", tried=1)
    got = fetch_in_child(tmp_path, body, {"Content-Encoding": "gzip, gzip"})
    assert got["error"] and "too large" in got["error"], got
    assert got["rss_growth_mb"] < 300, got
    figures.add("size-bombs (child, 1 GB address space)", tried=0, passed=1)


def test_100_mb_body_streamed_without_length_is_cut_at_the_cap(tmp_path, hostile_server, figures):
    # The server generates the 100 MB as it writes; the client stops reading at fetch.max_bytes.
    code = CHILD.replace('s.set("/bomb", body, headers=headers, content_type="application/rss+xml")',
                         's.set("/bomb", b"", huge=100 * 1024 * 1024, send_length=False)')
    path = tmp_path / "empty.bin"
    path.write_bytes(b"")
    run = subprocess.run([sys.executable, "-c", code.format(tests=str(HERE.parent), here=str(HERE), limit=LIMIT_MB),
                          str(path), "{}"], capture_output=True, text=True, timeout=120)
    got = json.loads(run.stdout.strip().splitlines()[-1])
    figures.add("size-bombs (child, 1 GB address space)", tried=1)
    assert "too large" in got["error"] and got["seconds"] < 5 and got["rss_growth_mb"] < 100, got
    figures.add("size-bombs (child, 1 GB address space)", tried=0, passed=1)
