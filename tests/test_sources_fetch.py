"""Fetching over real HTTP from the local feed server: conditional GET, redirects, caps, hostile input."""
from __future__ import annotations

import gzip

import pytest
from fixtures_ingest import SAMPLES, rss

from bot.ingest.parse import parse_feed
from bot.ingest.fetch import fetch_feed, make_client, parse_max_age, parse_retry_after

FEED = rss([{"title": "FLASH INFO : Séisme au Japon", "guid": "1"}, {"title": "Météo du jour", "guid": "2"}])


async def fetch(cfg, url, **kw):
    async with make_client(cfg.fetch) as client:
        return await fetch_feed(client, cfg, url, **kw)


async def test_conditional_get_etag_gives_304_and_no_parse(feed_server, ingest_config):
    cfg = ingest_config()
    feed_server.set("/f", FEED, etag=True)
    first = await fetch(cfg, feed_server.url("/f"))
    assert first.status == 200 and len(first.items) == 2 and first.etag
    second = await fetch(cfg, feed_server.url("/f"), etag=first.etag)
    assert second.status == 304 and second.not_modified and second.items == []
    assert second.etag == first.etag
    assert feed_server.log("/f")[-1].headers["if-none-match"] == first.etag
    assert "if-none-match" not in feed_server.log("/f")[0].headers


async def test_conditional_get_last_modified(feed_server, ingest_config):
    cfg = ingest_config()
    feed_server.set("/f", FEED, last_modified="Sat, 29 Nov 2025 09:00:00 GMT")
    first = await fetch(cfg, feed_server.url("/f"))
    second = await fetch(cfg, feed_server.url("/f"), last_modified=first.last_modified)
    assert second.status == 304
    assert feed_server.log("/f")[-1].headers["if-modified-since"] == "Sat, 29 Nov 2025 09:00:00 GMT"


async def test_user_agent_accept_and_keepalive(feed_server, ingest_config):
    cfg = ingest_config(fetch={"user_agent": "Flashbot-test/1"})
    feed_server.set("/f", FEED)
    async with make_client(cfg.fetch) as client:
        for _ in range(3):
            assert (await fetch_feed(client, cfg, feed_server.url("/f"))).error is None
    req = feed_server.log("/f")[0]
    assert req.headers["user-agent"] == "Flashbot-test/1"
    assert "application/rss+xml" in req.headers["accept"]
    assert feed_server.connections == 1  # HTTP/1.1 keep-alive: one TCP connection for three polls


@pytest.mark.parametrize("status,retry,expected", [(429, "120", 120), (503, "30", 30), (500, "30", None)])
async def test_retry_after(feed_server, ingest_config, status, retry, expected):
    cfg = ingest_config()
    feed_server.set("/f", b"busy", status=status, headers={"Retry-After": retry}, content_type="text/plain")
    res = await fetch(cfg, feed_server.url("/f"))
    assert res.status == status and res.error.startswith(f"HTTP {status}")
    assert res.retry_after == expected


def test_retry_after_and_max_age_parsing():
    assert parse_retry_after("Sat, 29 Nov 2025 10:01:00 GMT", now=1764410400.0) == 60
    assert parse_retry_after("soon") is None
    assert parse_max_age("public, max-age=300") == 300
    assert parse_max_age("no-cache") is None


async def test_ttl_and_max_age_recorded(feed_server, ingest_config):
    cfg = ingest_config()
    feed_server.set("/f", rss([{"title": "a", "guid": "1"}], ttl=15), headers={"Cache-Control": "max-age=600"})
    res = await fetch(cfg, feed_server.url("/f"))
    assert res.ttl_seconds == 900 and res.max_age == 600


async def test_permanent_redirect_reports_new_url(feed_server, ingest_config):
    cfg = ingest_config()
    feed_server.redirect("/old", "/mid", 301)
    feed_server.redirect("/mid", feed_server.url("/new"), 308)
    feed_server.set("/new", FEED)
    res = await fetch(cfg, feed_server.url("/old"))
    assert res.error is None and res.permanent_url == feed_server.url("/new")
    feed_server.redirect("/tmp", "/new", 302)
    res = await fetch(cfg, feed_server.url("/tmp"))
    assert res.error is None and res.permanent_url is None  # a temporary move keeps the stored URL


async def test_hub_from_link_header_wins(feed_server, ingest_config):
    cfg = ingest_config()
    extra = '<atom:link rel="hub" href="https://hub.feed.example/"/><atom:link rel="self" href="https://www.exemple.fr/feed"/>'
    feed_server.set("/f", rss([{"title": "a", "guid": "1"}], extra=extra))
    res = await fetch(cfg, feed_server.url("/f"))
    assert (res.hub_url, res.topic_url) == ("https://hub.feed.example/", "https://www.exemple.fr/feed")
    feed_server.set("/g", rss([{"title": "a", "guid": "1"}], extra=extra),
                    headers={"Link": '<https://push.example/hub>; rel="hub", <https://t.example/f>; rel="self"'})
    res = await fetch(cfg, feed_server.url("/g"))
    assert (res.hub_url, res.topic_url) == ("https://push.example/hub", "https://t.example/f")


async def test_local_file_source_and_unchanged_file(ingest_config):
    cfg = ingest_config()
    res = await fetch(cfg, str(SAMPLES / "flash.xml"))
    assert res.error is None and len(res.items) == 6 and res.etag
    again = await fetch(cfg, str(SAMPLES / "flash.xml"), etag=res.etag)
    assert again.not_modified and again.items == []


def _laughs(oneline: bool) -> bytes:
    nl = b"" if oneline else b"\n"
    ents = b"".join(b'<!ENTITY l%d "%s">' % (i, (b"&l%d;" % (i - 1)) * 10) + nl for i in range(1, 10))
    return (b'<?xml version="1.0"?>' + nl + b'<!DOCTYPE rss [<!ENTITY l0 "lol">' + nl + ents + b"]>" + nl
            + b'<rss version="2.0"><channel><title>&l9;</title><item><title>&l9;</title></item></channel></rss>')


def _xxe(target: str, oneline: bool) -> bytes:
    nl = "" if oneline else "\n"
    return (f'<?xml version="1.0"?>{nl}<!DOCTYPE rss [{nl}<!ENTITY xxe SYSTEM "file://{target}">{nl}]>{nl}'
            f'<rss version="2.0"><channel><title>t</title><item><title>&xxe;</title><guid>x</guid>'
            f'<description>&xxe;</description></item></channel></rss>').encode()


BAD = [
    # (name, route kwargs, expected error start)
    ("html page", dict(body=b"<!DOCTYPE html><html><head><title>Accueil</title></head><body><p>Bonjour</p></body></html>",
                       content_type="text/html; charset=utf-8"), "not an RSS/Atom feed: got an HTML page"),
    ("empty body", dict(body=b""), "empty response body"),
    ("not found", dict(body=b"nope", status=404, content_type="text/plain"), "HTTP 404 Not Found"),
    ("gone", dict(body=b"", status=410, content_type=None), "HTTP 410 Gone (the feed was removed)"),
    ("server error", dict(body=b"oops", status=500, content_type="text/plain"), "HTTP 500"),
    ("billion laughs", dict(body=_laughs(False)), "refused: the feed declares nested XML entities"),
    ("billion laughs one line", dict(body=_laughs(True)), "refused: the feed declares nested XML entities"),
    ("xxe", dict(body=_xxe("/etc/passwd", False)), "refused: the feed declares an external XML entity"),
    ("xxe one line", dict(body=_xxe("/etc/passwd", True)), "refused: the feed declares an external XML entity"),
    ("xxe utf-16", dict(body=_xxe("/etc/passwd", False).replace(b'?>', b' encoding="utf-16"?>', 1).decode().encode("utf-16")),
     "refused: the feed declares an external XML entity"),
    ("declared too large", dict(body=b"", huge=12 * 1024 * 1024), "response too large: 12582912 bytes declared"),
    ("undeclared too large", dict(body=b"", huge=12 * 1024 * 1024, send_length=False), "response too large: more than"),
    ("gzip bomb", dict(body=gzip.compress(b" " * (12 * 1024 * 1024)), headers={"Content-Encoding": "gzip"}),
     "response too large: more than"),
    ("never answers", dict(body=FEED, delay=30), "timed out after 1 s"),
    ("slow body", dict(body=FEED, byte_interval=0.05), "timed out after 1 s"),
]


@pytest.mark.parametrize("name,route,expected", BAD, ids=[b[0] for b in BAD])
async def test_bad_input_gives_clear_error(feed_server, ingest_config, name, route, expected):
    cfg = ingest_config(fetch={"timeout": 1})
    body = route.pop("body")
    feed_server.set("/bad", body, **route)
    res = await fetch(cfg, feed_server.url("/bad"))
    assert res.error and res.error.startswith(expected), res.error  # a timeout says fetch.timeout fired
    assert res.items == []


@pytest.mark.parametrize("path,expected", [("/loop1", "redirect loop: "), ("/r0", "too many redirects (more than 3")])
async def test_redirect_loops_and_caps(feed_server, ingest_config, path, expected):
    cfg = ingest_config(fetch={"max_redirects": 3})
    feed_server.redirect("/loop1", "/loop2", 302)
    feed_server.redirect("/loop2", "/loop1", 302)
    for i in range(6):
        feed_server.redirect(f"/r{i}", f"/r{i + 1}", 301)
    res = await fetch(cfg, feed_server.url(path))
    assert res.error.startswith(expected), res.error


async def test_redirect_to_file_url_refused(feed_server, ingest_config):
    cfg = ingest_config()
    feed_server.redirect("/evil", "file:///etc/passwd", 302)
    res = await fetch(cfg, feed_server.url("/evil"))
    assert res.error.startswith("redirect to a non-HTTP URL refused")


@pytest.mark.parametrize("oneline", [False, True])
def test_feedparser_alone_never_reads_local_files(tmp_path, oneline):
    # Defence in depth: even without our entity screen, feedparser must not read the file.
    import feedparser

    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-MARKER")
    parsed = feedparser.parse(_xxe(str(secret), oneline))
    assert "TOP-SECRET-MARKER" not in repr(parsed)


@pytest.mark.parametrize("ctype,body,title", [
    ("application/rss+xml; charset=iso-8859-1", "<?xml version='1.0'?><rss version='2.0'><channel><title>x</title>"
     "<item><title>Été brûlant</title><guid>1</guid></item></channel></rss>".encode("latin-1"), "Été brûlant"),
    ("application/rss+xml; charset=x-bogus-42", b"<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel>"
     b"<title>x</title><item><title>caf\xc3\xa9</title><guid>1</guid></item></channel></rss>", "café"),
    ("text/xml; charset=utf-8", "<?xml version='1.0' encoding='windows-1252'?><rss version='2.0'><channel><title>x</title>"
     "<item><title>“Guillemets” €</title><guid>1</guid></item></channel></rss>".encode("cp1252"), None),
])
async def test_wrong_or_unknown_charset_still_parses(feed_server, ingest_config, ctype, body, title):
    cfg = ingest_config()
    feed_server.set("/c", body, content_type=ctype)
    res = await fetch(cfg, feed_server.url("/c"))
    assert res.error is None and len(res.items) == 1
    if title:
        assert res.items[0].title == title
    else:
        assert res.bozo  # mismatched declarations are reported, not fatal


def test_normalized_item_fields():
    res = parse_feed((SAMPLES / "flash.xml").read_bytes(), {"Content-Type": "application/rss+xml"}, "https://feeds.exemple.fr/flash")
    item = res.items[0]
    assert item.key == "https://www.redaction-exemple.fr/?p=48213"
    assert item.link.startswith("https://www.redaction-exemple.fr/2025/11/29/")
    assert item.published_at.isoformat() == "2025-11-29T08:42:00+00:00"
    assert item.categories == ["Monde", "Libye", "Turquie"] and item.author == "La rédaction"
    assert item.language == "fr-FR"
    # The link words of the article stay inside <a> tags, with absolute URLs.
    assert '<a href="https://feeds.exemple.fr/tag/khalifa-haftar/">Haftar</a> comme des cibles' in item.content_html
    assert len(item.content_hash) == 64


@pytest.mark.parametrize("entry,key", [
    ("<guid isPermaLink='false'>abc-1</guid><link>https://e.fr/a</link>", "abc-1"),
    ("<link>https://e.fr/a</link>", "https://e.fr/a"),
    ("<description>sans lien</description>", "sha256:"),
])
def test_stable_key_order(entry, key):
    data = f"<rss version='2.0'><channel><title>x</title><item><title>t</title>{entry}</item></channel></rss>".encode()
    got = parse_feed(data, {}, None).items[0].key
    assert got.startswith(key) and parse_feed(data, {}, None).items[0].key == got


async def test_keepalive_survives_304s(feed_server, ingest_config):
    cfg = ingest_config()
    feed_server.set("/f", FEED, etag=True)
    async with make_client(cfg.fetch) as client:
        first = await fetch_feed(client, cfg, feed_server.url("/f"))
        for _ in range(3):
            res = await fetch_feed(client, cfg, feed_server.url("/f"), etag=first.etag)
            assert res.not_modified and res.error is None
    assert [r.status for r in feed_server.log("/f")] == [200, 304, 304, 304]
    assert feed_server.connections == 1  # a 304's empty body is read, so its connection is reused
