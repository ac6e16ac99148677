"""Every file of feedparser's test corpus, served over HTTP, is ingested without an escaping exception."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from sqlalchemy import func, select

from bot.ingest.poll import poll_all, sync_sources
from bot.ingest.fetch import fetch_feed, make_client
from bot.store.schema import items

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


async def test_every_corpus_file_ingests_within_bounds(feed_server, ingest_config, ingest_engine):
    srcs = []
    for i, path in enumerate(FILES):
        data = path.read_bytes()
        hdrs = corpus_headers(data)
        ctype = next((v for k, v in hdrs.items() if k.lower() == "content-type"), "application/xml")
        extra = {k: v for k, v in hdrs.items() if k.lower() not in ("content-type", "content-length", "last-modified", "etag") and v}
        feed_server.set(f"/c/{i}", data, content_type=ctype, headers=extra)
        srcs.append({"name": str(path.relative_to(CORPUS)), "url": feed_server.url(f"/c/{i}"), "alert_on_first_poll": True})
    cfg = ingest_config(srcs, fetch={"timeout": 10, "concurrency": 32})
    sync_sources(ingest_engine, cfg)
    async with make_client(cfg.fetch) as client:
        reports = await poll_all(ingest_engine, cfg, client)  # fetch, parse, detect and store, for real
    assert len(reports) == len(FILES)
    escaped = [(r.source, r.error) for r in reports if r.error and r.error.startswith(("unexpected", "internal"))]
    assert not escaped, escaped[:5]
    ok = [r for r in reports if not r.error]
    assert len(ok) > 0.9 * len(FILES), f"only {len(ok)}/{len(FILES)} corpus feeds parsed"
    for rep in reports:
        for item in rep.result.items:  # whatever feedparser made of it, the items are well-formed
            assert isinstance(item.key, str) and item.key
            assert item.link is None or item.link.startswith(("http://", "https://"))
            assert item.published_at is None or item.published_at.tzinfo is not None
    with ingest_engine.connect() as conn:
        stored = conn.execute(select(func.count()).select_from(items)).scalar()
    assert stored == sum(len(r.events) for r in reports) > 500
    # A pathological file would hit fetch.timeout (10 s) and show as an error above; speed: make bench.


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
