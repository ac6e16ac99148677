"""The pieces under the web hardening, table by table: client addresses behind proxies, rate-limit keys,
mailbox keys, WebSub lease bounds, body caps per path, the atomic rate-limit check, schema v1 → v2."""
from __future__ import annotations

import threading

import pytest
from sqlalchemy import inspect, text
from starlette.requests import Request

from bot.addresses import mailbox_key
from bot.store import open_db, ratelimit
from bot.store.schema import SCHEMA_VERSION
from bot.web.limits import BodyLimit, client_ip, parse_networks, rate_key
from bot.web.websub import lease_seconds


def _request(peer: str, *forwarded: str) -> Request:
    headers = [(b"x-forwarded-for", f.encode()) for f in forwarded]
    return Request({"type": "http", "method": "GET", "path": "/", "headers": headers, "client": (peer, 1234)})


PROXIES = parse_networks(["10.0.0.1", "fd00::/8", "172.17.0.0/16"])


@pytest.mark.parametrize("peer, forwarded, trusted, client", [
    ("203.0.113.9", ["198.51.100.1"], (), "203.0.113.9"),  # no proxy trusted: the header is ignored
    ("127.0.0.1", ["198.51.100.1"], (), "127.0.0.1"),  # loopback is not trusted by default either
    ("203.0.113.9", ["198.51.100.1"], PROXIES, "203.0.113.9"),  # a peer that is no proxy of ours
    ("10.0.0.1", ["198.51.100.1"], PROXIES, "198.51.100.1"),
    ("10.0.0.1", ["6.6.6.6, 198.51.100.1"], PROXIES, "198.51.100.1"),  # what the client wrote stays left
    ("10.0.0.1", ["6.6.6.6", "198.51.100.1"], PROXIES, "198.51.100.1"),  # two header lines
    ("10.0.0.1", ["198.51.100.1, 172.17.0.5"], PROXIES, "198.51.100.1"),  # two proxies in a row
    ("10.0.0.1", ["10.0.0.1"], PROXIES, "10.0.0.1"),  # only proxies: the leftmost proxy
    ("10.0.0.1", ["198.51.100.1, garbage"], PROXIES, "10.0.0.1"),  # unparseable: stop at what we vouch for
    ("10.0.0.1", [], PROXIES, "10.0.0.1"),
    ("10.0.0.1", ["[2001:db8::5]:443"], PROXIES, "2001:db8::5"),
    ("10.0.0.1", ["198.51.100.1:8443"], PROXIES, "198.51.100.1"),
    ("fd00::1", ["2001:db8::7"], PROXIES, "2001:db8::7"),
    ("::ffff:10.0.0.1", ["198.51.100.1"], PROXIES, "198.51.100.1"),  # IPv4-mapped peer
])
def test_client_ip(peer, forwarded, trusted, client):
    assert client_ip(_request(peer, *forwarded), trusted) == client


@pytest.mark.parametrize("ip, key", [
    ("198.51.100.1", "198.51.100.1"),
    ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
    ("2001:db8:1:2::ffff", "2001:db8:1:2::/64"),
    ("::ffff:198.51.100.1", "198.51.100.1"),
    ("unknown", "unknown"),
])
def test_rate_key(ip, key):
    assert rate_key(ip) == key


@pytest.mark.parametrize("address, key", [
    ("bomb@example.org", "bomb@example.org"),
    ("Bomb+news@Example.ORG", "bomb@example.org"),
    ("b.o.m.b+1@gmail.com", "bomb@gmail.com"),
    ("bomb@googlemail.com", "bomb@gmail.com"),
    ("j.doe@proton.me", "jdoe@proton.me"),
    ("j.doe@example.org", "j.doe@example.org"),  # most providers deliver dots as written
    ("x@bücher.example", "x@xn--bcher-kva.example"),
    ("x@XN--BCHER-KVA.example", "x@xn--bcher-kva.example"),
    ("x@bücher.example.", "x@xn--bcher-kva.example"),
    ("+x@example.org", "+x@example.org"),  # nothing before the tag: kept whole
])
def test_mailbox_key(address, key):
    assert mailbox_key(address) == key


@pytest.mark.parametrize("raw, lease", [
    (None, 86400), ("", 86400), ("60", 60), ("86400", 86400), ("315360000", 86400), ("99999999999999", None),
    ("0", None), ("-5", None), ("1e9", None), ("١٢٣", None), (" 60", None),
])
def test_lease_seconds_bounded(raw, lease):
    assert lease_seconds(raw, 86400) == lease


def test_body_caps_per_path():
    limit = BodyLimit(app=None, default=100, caps={"/websub/": 5000, "/websub/big/": 9000})
    assert [limit.cap_for(p) for p in ("/", "/subscribe", "/websub/1/x", "/websub/big/x")] == [100, 100, 5000, 9000]


def test_rate_limit_check_is_atomic_across_threads(tmp_path):
    engine = open_db(f"sqlite:///{tmp_path / 'r.db'}")
    results: list = []
    gate = threading.Barrier(20)

    def one():
        gate.wait()
        results.append(ratelimit.take(engine, "b", 7, 900))

    threads = [threading.Thread(target=one) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    granted = [r for r in results if r is not None]
    assert len(granted) == 7 and sorted(rank for _, rank in granted) == list(range(1, 8))
    assert ratelimit.count(engine, "b", 900) == 7
    ratelimit.give_back(engine, [granted[0][0]])
    assert ratelimit.count(engine, "b", 900) == 6
    engine.dispose()


def test_bucket_names_are_keyed():
    a, b = ratelimit.bucket("signup-ip", "198.51.100.1", "k1"), ratelimit.bucket("signup-ip", "198.51.100.1", "k2")
    assert a.startswith("signup-ip:") and a != b and "198.51" not in a


def test_schema_v1_database_upgrades_in_place(tmp_path):
    import sqlite3
    from pathlib import Path

    url = f"sqlite:///{tmp_path / 'old.db'}"
    old = sqlite3.connect(tmp_path / "old.db")  # exactly what release v1 created (tests/schema/v1.sql)
    old.executescript((Path(__file__).parent / "schema" / "v1.sql").read_text())
    old.execute("INSERT INTO sources (name, url, interval, all_flash, respect_ttl, alert_on_first_poll, origin, paused, "
                "baselined, consecutive_failures, hub_url, topic_url, websub_state) "
                "VALUES ('s', 'http://x', 60, 0, 0, 0, 'config', 0, 1, 0, 'http://hub', 'http://t', 'active')")
    old.commit()
    old.close()
    engine = open_db(url)
    names = inspect(engine).get_table_names()
    assert {"signup_requests", "admin_sessions"} <= set(names)
    assert "websub_callback" in {c["name"] for c in inspect(engine).get_columns("sources")}
    with engine.connect() as conn:
        assert conn.execute(text("SELECT value FROM meta WHERE key = 'schema_version'")).scalar_one() == str(SCHEMA_VERSION)
        # A subscription made at the old guessable URL starts over at a secret one.
        assert conn.execute(text("SELECT websub_state FROM sources")).scalar_one() is None
    engine.dispose()


@pytest.mark.parametrize("public_url, host, proxies, verdict", [
    ("https://news.example.org", "127.0.0.1", [], "warn"),  # a proxy in front, nobody trusted
    ("https://news.example.org", "127.0.0.1", ["127.0.0.1", "::1"], "ok"),
    ("http://127.0.0.1:8080", "127.0.0.1", [], "ok"),  # local use
    ("https://news.example.org", "0.0.0.0", [], "ok"),  # listening publicly: clients connect directly
])
def test_check_warns_behind_an_untrusted_proxy(tmp_path, public_url, host, proxies, verdict):
    from bot.config import parse_config
    from bot.service.checks import check_web

    cfg = parse_config({"bot": {"public_url": public_url}, "web": {"host": host, "port": 0, "trusted_proxies": proxies}},
                       tmp_path, env={})
    part, got, detail = check_web(cfg)
    assert (part, got) == ("web", verdict)
    assert ("trusted_proxies" in detail) == (verdict == "warn")
