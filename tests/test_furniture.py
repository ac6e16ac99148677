"""Blocks a feed repeats across its items: found at ingest, stored with the item, removed at an article's edges."""
from pathlib import Path

from sqlalchemy import select, text

from bot.ingest.parse import parse_feed
from bot.render.html.furniture import repeated_blocks
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
    import shutil

    from bot.store import migrate, open_db

    # A database made by the release of schema v2 (tests/data/README.md): its items have no furniture column.
    shutil.copy(Path(__file__).parent / "data" / "subscribers-v2.db", tmp_path / "old.db")
    engine = open_db(f"sqlite:///{tmp_path / 'old.db'}")
    try:
        assert migrate.status(engine)["current"] == migrate.head()
        with engine.begin() as conn:
            assert conn.execute(text("SELECT value FROM meta WHERE key = 'schema_version'")).scalar() == str(SCHEMA_VERSION)
            assert conn.execute(select(items.c.furniture).order_by(items.c.id)).scalars().all() == [[], []]
            conn.execute(items.update().values(furniture=["read more"]))
            assert conn.execute(select(items.c.furniture)).scalars().first() == ["read more"]
    finally:
        engine.dispose()
