"""An httpx transport made of several small connection pools, for polling many feeds at once.

httpcore's pool re-examines every connection it holds each time a request starts or ends (an
O(connections²) scan plus a readability `poll()` syscall per idle connection), so one pool of 20
keep-alive connections spends more CPU on bookkeeping than on the 304 it fetches. Splitting the
same connection budget into shards of a few connections each keeps that scan short; every
request goes to the least busy shard, so the total concurrency and connection count are the
same as one big pool.
"""
from __future__ import annotations

import zlib
from collections.abc import AsyncIterator

import httpx

SHARD_CONNECTIONS = 2  # connections per shard: small enough that the per-request scan is cheap


class _CountedStream(httpx.AsyncByteStream):
    """Wraps a response body stream to tell the transport when the response is closed."""

    def __init__(self, stream: httpx.AsyncByteStream, done):
        self._stream, self._done = stream, done

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        done, self._done = self._done, None
        try:
            await self._stream.aclose()
        finally:
            if done is not None:
                done()


class ShardedTransport(httpx.AsyncBaseTransport):
    """`max_connections` split over shards of SHARD_CONNECTIONS; requests go to the least busy shard."""

    def __init__(self, max_connections: int, **transport_kw):
        count = max(1, -(-max_connections // SHARD_CONNECTIONS))  # ceil
        sizes = [max_connections // count + (1 if i < max_connections % count else 0) for i in range(count)]
        self._shards = [httpx.AsyncHTTPTransport(
            limits=httpx.Limits(max_connections=n, max_keepalive_connections=n), **transport_kw) for n in sizes]
        self._sizes = sizes
        self._busy = [0] * count

    def _pick(self, origin: bytes) -> int:
        # Start the search at a shard chosen by the origin, so that with equal load the same
        # host tends to land where its keep-alive connections already are.
        count = len(self._shards)
        start = zlib.crc32(origin) % count
        best, best_free = start, None
        for k in range(count):
            i = (start + k) % count
            free = self._sizes[i] - self._busy[i]
            if best_free is None or free > best_free:
                best, best_free = i, free
        return best

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send the request on the least busy shard; the shard counts as busy until the response closes."""
        url = request.url
        i = self._pick(f"{url.scheme}://{url.netloc.decode('ascii', 'replace')}".encode())
        self._busy[i] += 1

        def done() -> None:
            self._busy[i] -= 1
        try:
            resp = await self._shards[i].handle_async_request(request)
        except BaseException:
            done()
            raise
        resp.stream = _CountedStream(resp.stream, done)
        return resp

    async def aclose(self) -> None:
        """Close every shard's connections."""
        for shard in self._shards:
            await shard.aclose()
