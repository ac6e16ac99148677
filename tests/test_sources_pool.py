"""The sharded connection pool behind make_client: same budget as one pool, connections reused."""
from __future__ import annotations

import asyncio

import httpx
import pytest
from fixtures_ingest import rss

from bot.ingest.httppool import ShardedTransport
from bot.ingest.fetch import fetch_feed, make_client

# The database here only carries the fixtures (fetching, rendering, the browser): SQLite is enough.
pytestmark = pytest.mark.sqlite_only

FEED = rss([{"title": "Grève à la SNCF", "guid": "a"}])


@pytest.mark.parametrize("budget,expected_shards", [(1, [1]), (2, [2]), (5, [2, 2, 1]), (20, [2] * 10)])
def test_connection_budget_is_split_exactly(budget, expected_shards):
    transport = ShardedTransport(budget)
    assert sorted(transport._sizes, reverse=True) == expected_shards
    assert sum(transport._sizes) == budget


@pytest.mark.parametrize("concurrency,parallel", [(1, 4), (4, 12), (6, 6)])
async def test_parallel_fetches_never_exceed_the_connection_budget(feed_server, ingest_config, concurrency, parallel):
    cfg = ingest_config(fetch={"concurrency": concurrency})
    for i in range(parallel):
        feed_server.set(f"/f{i}", FEED, delay=0.2)
    async with make_client(cfg.fetch) as client:
        results = await asyncio.gather(*(fetch_feed(client, cfg, feed_server.url(f"/f{i}")) for i in range(parallel)))
        assert all(r.error is None and len(r.items) == 1 for r in results)
        opened = feed_server.connections
        assert opened <= concurrency
        again = await asyncio.gather(*(fetch_feed(client, cfg, feed_server.url(f"/f{i}")) for i in range(parallel)))
        assert all(r.error is None for r in again)
    assert feed_server.connections == opened  # the second round reused every kept-alive connection


async def test_busy_count_is_released_on_errors_and_early_close(feed_server):
    feed_server.set("/ok", FEED)
    transport = ShardedTransport(4)
    async with httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get("http://127.0.0.1:1/unreachable")
        async with client.stream("GET", feed_server.url("/ok")) as resp:
            assert resp.status_code == 200  # closed without reading the body
        assert (await client.get(feed_server.url("/ok"))).content == FEED
        assert transport._busy == [0, 0]


async def test_the_least_busy_shard_takes_the_next_request(feed_server):
    feed_server.set("/slow", FEED, delay=0.3)
    transport = ShardedTransport(4)
    async with httpx.AsyncClient(transport=transport) as client:
        tasks = [asyncio.create_task(client.get(feed_server.url("/slow"))) for _ in range(2)]
        await asyncio.sleep(0.1)
        assert transport._busy == [1, 1]  # spread, not stacked on the shard the host hashes to
        await asyncio.gather(*tasks)
        assert transport._busy == [0, 0]
