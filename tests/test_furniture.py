"""Blocks a feed repeats across its items: found at ingest, stored with the item, removed at an article's edges."""
from pathlib import Path

from sqlalchemy import select, text

from bot.ingest.parse import parse_feed
from bot.render.html.furniture import repeated_blocks
from bot.store.db import migrate, schema_version
from bot.store.schema import SCHEMA_VERSION, items

FEEDS = Path(__file__).parent / "fidelity" / "feeds"


def _story(n: int, tail: str = "") -> str:
    return f"<p>Story number {n} tells its own news in its own words.</p>{tail}"


READ_MORE = '<p><a href="https://s.example/{n}">Read more of this story</a> at Slashdot.</p>'


def test_a_block_in_most_items_is_furniture_of_each_item_that_has_it():
    htmls = [_story(n, READ_MORE.format(n=n)) for n in range(5)] + [_story(9)]
    found = repeated_blocks(htmls)
    assert found[:5] == [["read more of this story at slashdot"]] * 5 and found[5] == []


def test_too_few_items_or_a_minority_is_never_furniture():
    # Two items (a Tumblr post and its reblog) share every paragraph: that is the author repeating.
    assert repeated_blocks([_story(1, "<p>Twitter</p>"), _story(2, "<p>Twitter</p>")]) == [[], []]
    # Three items out of ten share a line: a recurring quote, not the site's furniture.
    htmls = [_story(n, "<p>René Char, Recherche de la base et du sommet.</p>" if n < 3 else "") for n in range(10)]
    assert repeated_blocks(htmls) == [[]] * 10
    long_line = "<p>" + "word " * 120 + "</p>"
    assert repeated_blocks([_story(n, long_line) for n in range(4)]) == [[]] * 4


def test_parse_feed_gives_items_their_furniture_and_rendering_removes_it(render_config):
    from bot.render.renderer import Renderer
    entries = "".join(
        f"<item><title>Story {n}</title><link>https://s.example/{n}</link><guid>s{n}</guid>"
        f"<description><![CDATA[{_story(n, READ_MORE.format(n=n))}]]></description></item>" for n in range(4))
    feed = f'<?xml version="1.0"?><rss version="2.0"><channel><title>S</title>{entries}</channel></rss>'.encode()
    result = parse_feed(feed, {}, "https://s.example/feed")
    assert [i.furniture for i in result.items] == [["read more of this story at slashdot"]] * 4
    mail = Renderer(render_config()).email_alert(result.items[0], "en", {"unsubscribe": "u", "preferences": "p"})
    assert "Story number 0" in mail.text and "Read more of this story" not in mail.text + mail.html


def test_real_feed_furniture_is_found(tmp_path):
    # Slashdot's "Read more of this story at Slashdot." closes each of its 15 items.
    result = parse_feed((FEEDS / "news-slashdot.rdf").read_bytes(), {}, None)
    assert all("read more of this story at slashdot" in i.furniture for i in result.items)


def test_items_store_their_furniture_and_an_older_database_upgrades(tmp_path):
    import sqlite3
    from pathlib import Path

    from bot.store.db import MIGRATIONS, make_engine

    url = f"sqlite:///{tmp_path / 'old.db'}"
    old = sqlite3.connect(tmp_path / "old.db")  # release v1's schema (tests/schema/v1.sql)...
    old.executescript((Path(__file__).parent / "schema" / "v1.sql").read_text())
    old.close()
    engine = make_engine(url)
    with engine.begin() as conn:
        # ...brought to version 2 by its own step: no furniture column yet, one item stored by that release.
        MIGRATIONS[2](conn)
        conn.execute(text("UPDATE meta SET value = '2' WHERE key = 'schema_version'"))
        conn.execute(text("INSERT INTO sources (id, name, url, interval, all_flash, respect_ttl, alert_on_first_poll, "
                          "origin, paused, baselined, consecutive_failures) VALUES (1, 's', 'u', 60, 0, 0, 0, 'config', 0, 0, 0)"))
        conn.execute(text("INSERT INTO items (source_id, key, title, headline, categories, content_hash, revision, "
                          "is_flash, baseline, alert_state, also_sources, norm_title) "
                          "VALUES (1, 'k', 't', 't', '[]', 'h', 0, 0, 0, 'none', '[]', 't')"))
    assert migrate(engine) == SCHEMA_VERSION
    with engine.begin() as conn:
        assert schema_version(conn) == SCHEMA_VERSION
        assert conn.execute(select(items.c.furniture)).scalar_one() == []
        conn.execute(items.update().values(furniture=["read more"]))
        assert conn.execute(select(items.c.furniture)).scalar_one() == ["read more"]
