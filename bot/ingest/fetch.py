"""Fetch one source (httpx, or a local file) and parse it into a FeedResult.

Conditional GET makes an unchanged feed cost a 304 and no parse. Redirects are followed by hand
so they can be capped, loops detected and permanent moves reported. The body is streamed and cut
at `fetch.max_bytes`; the whole fetch has one deadline (`fetch.timeout`), so a server sending a
byte per second cannot hold a poll forever.
"""
from __future__ import annotations

import asyncio
import email.utils
import re
import time
from dataclasses import dataclass
from datetime import timezone
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx

from bot.config import Config, FetchConfig
from bot.ingest.parse import parse_feed
from bot.ingest.httppool import ShardedTransport
from bot.ingest.inflate import ACCEPT_ENCODING, EncodingError, Inflater
from bot.models import FeedResult

ACCEPT = "application/rss+xml, application/atom+xml, application/rdf+xml;q=0.9, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5"
REDIRECTS = {301, 302, 303, 307, 308}
PERMANENT = {301, 308}


class FetchError(Exception):
    """A per-source fetch failure with a clear message."""

    def __init__(self, message: str, status: int | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


@dataclass
class Fetched:
    """Raw outcome of an HTTP fetch before parsing."""

    status: int
    url: str
    headers: dict[str, str]
    body: bytes = b""
    permanent_url: str | None = None
    link_header: dict | None = None


def make_client(fetch_cfg: FetchConfig) -> httpx.AsyncClient:
    """The one shared HTTP client: keep-alive pool sized to the concurrency, no auto-redirects."""
    # Sharded pool: same connection budget, far less per-request bookkeeping (see bot.ingest.httppool).
    transport = ShardedTransport(max(1, fetch_cfg.concurrency))
    return httpx.AsyncClient(
        timeout=httpx.Timeout(fetch_cfg.timeout), transport=transport, follow_redirects=False,
        headers={"User-Agent": fetch_cfg.user_agent, "Accept": ACCEPT, "Accept-Encoding": ACCEPT_ENCODING},
        trust_env=False,
    )


def is_http(url: str) -> bool:
    """True for http(s) URLs; anything else is a local file path."""
    return urlsplit(url).scheme.lower() in ("http", "https")


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Retry-After as seconds from now (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def parse_max_age(value: str | None) -> int | None:
    """max-age (or s-maxage) seconds from a Cache-Control header; no-cache/no-store → None."""
    if not value:
        return None
    m = re.search(r"(?:^|[,\s])(?:s-)?max-age\s*=\s*\"?(\d+)", value, re.I)
    return int(m.group(1)) if m else None


async def _read_capped(resp: httpx.Response, max_bytes: int) -> bytes:
    declared = resp.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise FetchError(f"response too large: {int(declared)} bytes declared, cap is {max_bytes} (fetch.max_bytes)", resp.status_code)
    try:
        inflater = Inflater(resp.headers.get("content-encoding"))
    except EncodingError as exc:
        raise FetchError(str(exc), resp.status_code) from None
    chunks: list[bytes] = []
    total = 0

    def take(pieces) -> None:
        nonlocal total
        for piece in pieces:  # bounded pieces: a bomb is cut at the cap on its inflated size
            total += len(piece)
            if total > max_bytes:
                raise FetchError(f"response too large: more than {max_bytes} bytes (fetch.max_bytes)", resp.status_code)
            chunks.append(piece)
    try:
        async for raw in resp.aiter_raw():  # raw: we decode ourselves, with a bound (bot.ingest.inflate)
            take(inflater.feed(raw))
        take(inflater.feed(b""))
    except EncodingError as exc:
        raise FetchError(str(exc), resp.status_code) from None
    return b"".join(chunks)


async def fetch_http(client: httpx.AsyncClient, url: str, fetch_cfg: FetchConfig,
                     etag: str | None = None, last_modified: str | None = None) -> Fetched:
    """GET with conditional headers and manual redirects; raise FetchError on failure."""
    headers = {}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    seen = [url]
    permanent_url = None
    still_permanent = True
    while True:
        async with client.stream("GET", url, headers=headers) as resp:
            if resp.status_code in REDIRECTS and resp.headers.get("location"):
                target = urljoin(url, resp.headers["location"].strip())
                if not is_http(target):
                    raise FetchError(f"redirect to a non-HTTP URL refused: {target[:200]}", resp.status_code)
                if target in seen:
                    raise FetchError("redirect loop: " + " → ".join(seen + [target]), resp.status_code)
                if len(seen) > fetch_cfg.max_redirects:
                    raise FetchError(f"too many redirects (more than {fetch_cfg.max_redirects}, fetch.max_redirects)", resp.status_code)
                still_permanent = still_permanent and resp.status_code in PERMANENT
                if still_permanent:
                    permanent_url = target
                seen.append(target)
                url = target
                continue
            hdrs = {k.lower(): v for k, v in resp.headers.items()}
            links = {k: v.get("url") for k, v in resp.links.items()} if "link" in hdrs else None
            if resp.status_code == 304:
                # Read the (empty, capped) body: an unread response closes its connection instead
                # of returning it to the pool, and every poll would then pay a new TCP connect.
                await _read_capped(resp, fetch_cfg.max_bytes)
                return Fetched(304, url, hdrs, b"", permanent_url, links)
            if resp.status_code >= 400:
                raise _http_error(resp)
            if resp.status_code != 200:
                raise FetchError(f"unexpected HTTP {resp.status_code} {resp.reason_phrase}", resp.status_code)
            body = await _read_capped(resp, fetch_cfg.max_bytes)
            return Fetched(200, url, hdrs, body, permanent_url, links)


def _http_error(resp: httpx.Response) -> FetchError:
    status = resp.status_code
    retry_after = parse_retry_after(resp.headers.get("retry-after")) if status in (429, 503) else None
    msg = f"HTTP {status} {resp.reason_phrase}".rstrip()
    if status == 410:
        msg += " (the feed was removed)"
    if retry_after is not None:
        msg += f" (server asked to retry after {retry_after:.0f} s)"
    return FetchError(msg, status, retry_after)


def _describe(exc: BaseException, timeout: float) -> str:
    """A clear one-line description of a network failure."""
    if isinstance(exc, (TimeoutError, httpx.TimeoutException)):
        return f"timed out after {timeout:g} s (fetch.timeout)"
    if isinstance(exc, httpx.ConnectError):
        return f"cannot connect: {exc or 'connection failed'}"
    if isinstance(exc, httpx.RemoteProtocolError):
        return f"server broke the HTTP protocol: {exc}"
    if isinstance(exc, httpx.DecodingError):
        return f"cannot decode the response body: {exc}"
    if isinstance(exc, httpx.HTTPError):
        return f"{type(exc).__name__}: {exc}"
    return f"{type(exc).__name__}: {exc}"


def read_local(path: Path, max_bytes: int, etag: str | None) -> tuple[bytes | None, str]:
    """(bytes or None when unchanged, version tag) of a local feed file."""
    st = path.stat()
    tag = f'"{st.st_size}-{st.st_mtime_ns}"'
    if etag == tag:
        return None, tag
    if st.st_size > max_bytes:
        raise FetchError(f"file too large: {st.st_size} bytes, cap is {max_bytes} (fetch.max_bytes)")
    with path.open("rb") as fh:
        body = fh.read(max_bytes + 1)
    if len(body) > max_bytes:
        raise FetchError(f"file too large: more than {max_bytes} bytes (fetch.max_bytes)")
    return body, tag


def local_path(cfg: Config, url: str) -> Path:
    """The file a non-HTTP source URL names (file:// or a path relative to the config folder)."""
    if url.startswith("file://"):
        url = urlsplit(url).path
    return cfg.resolve(url)


async def fetch_feed(client: httpx.AsyncClient, cfg: Config, url: str, etag: str | None = None,
                     last_modified: str | None = None) -> FeedResult:
    """Fetch and parse one source; never raises, failures land in FeedResult.error."""
    started = time.monotonic()
    try:
        result = await _fetch_and_parse(client, cfg, url, etag, last_modified)
    except FetchError as exc:
        result = FeedResult(status=exc.status, error=str(exc), retry_after=exc.retry_after)
    except (OSError, httpx.HTTPError, TimeoutError) as exc:
        msg = f"cannot read {url}: {exc.strerror or exc}" if isinstance(exc, OSError) and not is_http(url) else _describe(exc, cfg.fetch.timeout)
        result = FeedResult(error=msg)
    except Exception as exc:  # noqa: BLE001 - a hostile feed must not take the poller down
        result = FeedResult(error=f"unexpected error: {type(exc).__name__}: {exc}"[:500])
    result.elapsed = time.monotonic() - started
    return result


async def _fetch_and_parse(client, cfg: Config, url: str, etag, last_modified) -> FeedResult:
    if not is_http(url):
        path = local_path(cfg, url)
        body, tag = await asyncio.to_thread(read_local, path, cfg.fetch.max_bytes, etag)
        if body is None:
            return FeedResult(not_modified=True, etag=tag)
        result = await asyncio.to_thread(parse_feed, body, {}, None)
        result.etag = tag
        return result
    async with asyncio.timeout(cfg.fetch.timeout):
        got = await fetch_http(client, url, cfg.fetch, etag, last_modified)
    if got.status == 304:
        result = FeedResult(status=304, not_modified=True)
    else:
        result = await asyncio.to_thread(parse_feed, got.body, got.headers, got.url)
        result.status = got.status
    result.etag = got.headers.get("etag") or (etag if got.status == 304 else None)
    result.last_modified = got.headers.get("last-modified") or (last_modified if got.status == 304 else None)
    result.max_age = parse_max_age(got.headers.get("cache-control"))
    result.permanent_url = got.permanent_url
    if got.link_header:  # the Link header wins over the feed's own <link rel="hub"> (WebSub §4)
        result.hub_url = got.link_header.get("hub") or result.hub_url
        result.topic_url = got.link_header.get("self") or result.topic_url
    return result


__all__ = ["make_client", "fetch_feed", "fetch_http", "parse_feed", "FetchError", "is_http"]
