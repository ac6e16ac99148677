"""How tests/migrations/v1-demo.db was made (kept for the record; the tests only read the .db file).

A schema-v1 database written by Flashbot's own v1 code, not by hand: the code of the commit
before schema v2 (`git merge-base main issue-12`, 4e53cda) ran `flashbot demo` (polling, alerts,
a correction, Telegram, the digest), then this script added, through the same v1 code, the rows
the demo does not make (a paused channel, rate-limit events, an unsubscribed, a suppressed and an
erased subscriber), replaced the demo's random secret key by a test value and compacted the file.

    git archive 4e53cda bot templates pyproject.toml | tar -x -C /tmp/v1tree
    PYTHONPATH=/tmp/v1tree python -m bot demo --dir /tmp/v1demo
    PYTHONPATH=/tmp/v1tree python tests/migrations/make_v1_db.py /tmp/v1demo/flashbot.db tests/migrations/v1-demo.db
"""
from __future__ import annotations

import sqlite3
import sys
from datetime import datetime, timezone

from sqlalchemy import create_engine, select, update

from bot.store import channels, ratelimit
from bot.store import subscribers as subs
from bot.store.schema import SCHEMA_VERSION, meta, subscribers

AT = datetime(2026, 11, 30, 2, 52, tzinfo=timezone.utc)


def main(source: str, target: str) -> None:
    assert SCHEMA_VERSION == 1, "run this with the v1 code on PYTHONPATH"
    engine = create_engine(f"sqlite:///{source}")
    channels.pause_channel(engine, "telegram", "401 Unauthorized: the bot token was revoked")
    for n in range(3):
        ratelimit.hit(engine, ratelimit.bucket("signup-ip", f"192.0.2.{n}"), now=AT)
    subs.add(engine, ["leaver@example.org", "bounced@example.org", "erased@example.org"], mode="instant")
    with engine.begin() as conn:
        ids = dict(conn.execute(select(subscribers.c.email, subscribers.c.id)).all())
        conn.execute(update(subscribers).where(subscribers.c.id == ids["bounced@example.org"])
                     .values(status="suppressed", bounces=3, last_error="550 5.1.1 user unknown"))
        conn.execute(update(meta).where(meta.c.key == "secret_key").values(value="v1-fixture-secret-key-not-used-anywhere"))
    subs.unsubscribe(engine, ids["leaver@example.org"], now=AT)
    subs.erase(engine, ids["erased@example.org"], now=AT)
    engine.dispose()
    db = sqlite3.connect(source)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
    db.execute(f"VACUUM INTO '{target}'")
    db.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
