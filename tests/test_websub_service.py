"""WebSub through the real service: a feed declaring a hub is subscribed, a pushed Flash Info item
reaches the Telegram stand-in in under a second (no polling involved)."""
from __future__ import annotations

import asyncio
import socket
import time

from bot.config import load_config
from bot.service.daemon import Service
from bot.store import open_db
from bot.store import websub as wstore
from bot.demo.hub import Hub
from fixtures_service import flash_rss

BASE = [("a1", "Municipales : les listes déposées"), ("a2", "Météo : un week-end doux")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await asyncio.to_thread(predicate)
        if value:
            return value
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


async def test_push_to_post_under_one_second(svc_stack):
    with Hub() as hub:
        topic = svc_stack.feeds.url("/feed.xml")
        links = f'<atom:link rel="hub" href="{hub.url}"/><atom:link rel="self" href="{topic}"/>'
        svc_stack.publish(BASE, extra=links)
        port = _free_port()
        # A long poll interval: only the push can deliver within the test.
        cfg = load_config(svc_stack.write_config(interval=300, web_port=port, public_url=f"http://127.0.0.1:{port}"))
        engine = open_db(cfg.database_url)
        service = Service(cfg, engine)
        await service.start()
        try:
            [sub] = await asyncio.to_thread(hub.wait_subscribed, topic, 1, 15)
            row = wstore.get_source(engine, 1)
            assert sub.callback == f"http://127.0.0.1:{port}/websub/1/{row['websub_callback']}" and sub.secret
            assert row["websub_state"] == "active" and row["websub_secret"] == sub.secret
            pushed = flash_rss([("f9", "FLASH INFO : Explosion dans une usine chimique à Rouen"), *BASE], links)
            polls_before = len(svc_stack.feeds.log("/feed.xml"))
            [d] = await asyncio.to_thread(hub.publish, topic, pushed, "application/rss+xml")
            post = await _until(lambda: svc_stack.telegram.posts, 5, "the pushed post")
            assert d.status == 202
            assert "Explosion dans une usine chimique" in post[0].text
            # The push itself delivered it (speed is measured in bench/latency.py, not asserted here).
            assert len(svc_stack.feeds.log("/feed.xml")) == polls_before  # no poll was needed
            # A forged push (bad signature) changes nothing.
            hub.tamper = True
            await asyncio.to_thread(hub.publish, topic, flash_rss([("f10", "FLASH INFO : Faux"), *BASE], links))
            await asyncio.sleep(0.5)
            assert len(svc_stack.telegram.posts) == 1
        finally:
            await service.shutdown()
            engine.dispose()
