"""Every file of feedparser's test corpus, served over HTTP, is ingested without an escaping exception."""
from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import pytest

from bot.models import FeedResult
from bot.sources import fetch_feed, make_client

CORPUS = Path(__file__).parent / "corpus"
FILES = sorted(p for p in CORPUS.rglob("*") if p.is_file() and p.suffix in (".xml", ".rdf", ".atom", ".rss"))
_HEADER = re.compile(rb"^\s*Header:\s*([A-Za-z-]+):\s*(.*?)\s*$", re.M)


def corpus_headers(data: bytes) -> dict[str, str]:
    """The `Header: Name: value` lines of a corpus file's leading comment (ASCII ones only)."""
    head = data[:2000]
    headers = {}
    for name, value in _HEADER.findall(head):
        try:
            headers[name.decode("ascii")] = value.decode("ascii")
        except UnicodeDecodeError:
            continue
    return headers


def test_corpus_is_complete():
    # The copy must hold the whole corpus (1100+ feeds) and its licence.
    assert len(FILES) > 1000
    assert (CORPUS / "LICENSE").read_text().lower().count("redistribution") >= 1


async def test_every_corpus_file_ingests_within_bounds(feed_server, ingest_config):
    cfg = ingest_config(fetch={"timeout": 10, "concurrency": 32})
    for i, path in enumerate(FILES):
        data = path.read_bytes()
        hdrs = corpus_headers(data)
        ctype = next((v for k, v in hdrs.items() if k.lower() == "content-type"), "application/xml")
        extra = {k: v for k, v in hdrs.items() if k.lower() not in ("content-type", "content-length", "last-modified", "etag") and v}
        feed_server.set(f"/c/{i}", data, content_type=ctype, headers=extra)
    sem = asyncio.Semaphore(32)
    timings: dict[Path, float] = {}

    async def one(client, i: int, path: Path) -> tuple[Path, FeedResult]:
        async with sem:
            t0 = time.monotonic()
            res = await fetch_feed(client, cfg, feed_server.url(f"/c/{i}"))
            timings[path] = time.monotonic() - t0
            return path, res

    started = time.monotonic()
    async with make_client(cfg.fetch) as client:
        results = await asyncio.gather(*(one(client, i, p) for i, p in enumerate(FILES)))
    total = time.monotonic() - started
    assert len(results) == len(FILES)
    unexpected = [(p.name, r.error) for p, r in results if r.error and r.error.startswith("unexpected error")]
    assert not unexpected, unexpected[:5]
    for path, res in results:
        for item in res.items:  # whatever feedparser made of it, the items are well-formed
            assert isinstance(item.key, str) and item.key
            assert item.link is None or item.link.startswith(("http://", "https://"))
            assert item.published_at is None or item.published_at.tzinfo is not None
    ok = sum(1 for _, r in results if not r.error)
    assert ok > 0.9 * len(FILES), f"only {ok}/{len(FILES)} corpus feeds parsed"
    assert max(timings.values()) < 5, max(timings.items(), key=lambda kv: kv[1])
    assert total < 60


@pytest.mark.parametrize("relpath", [
    "wellformed/rss/entity_in_doctype.xml",
    "wellformed/rdf/doctype_contains_entity_decl.xml",
])
async def test_corpus_entity_declarations_are_handled(feed_server, ingest_config, relpath):
    # Safe internal entities parse; external/parameter ones are refused with a clear message.
    data = (CORPUS / relpath).read_bytes()
    feed_server.set("/e", data)
    cfg = ingest_config()
    async with make_client(cfg.fetch) as client:
        res = await fetch_feed(client, cfg, feed_server.url("/e"))
    if b"PUBLIC" in data or b"SYSTEM" in data.split(b"<!ENTITY", 1)[-1][:200]:
        assert res.error and res.error.startswith("refused:")
    else:
        assert res.error is None, res.error
