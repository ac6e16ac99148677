"""Build tests/data/subscribers-v<N>.db with a release's own code (run from a checkout of that release).

The same content for every release before Alembic, plus what each schema step added when the release
has it: one source, a Flash Info item queued to three subscribers and a Telegram channel, one email
of it recorded as sent, a daily digest queued, the generated signing key; from schema v2 a pending
web sign-up and an admin session; from v3 an item's furniture; from v4 a subscriber's cap and quiet
hours and a desk_log row; from v6 a received bounce mail waiting to be processed.
Usage: PYTHONPATH=<checkout> python make_legacy_db.py OUT.db
"""
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import insert, update

from bot import digest, tokens
from bot.config import parse_config
from bot.delivery import fanout
from bot.store import open_db, outbox, schema
from bot.store import subscribers as subs

out = Path(sys.argv[1])
out.unlink(missing_ok=True)
cfg = parse_config({"bot": {"database": str(out)}, "email": {"sender": "Flash <a@example.org>"},
                    "telegram": {"token": "1:x", "channel": "@flash"}}, out.parent, env={})
engine = open_db(cfg.database_url)
version = schema.SCHEMA_VERSION
t = datetime(2026, 11, 29, 6, 0, tzinfo=timezone.utc)
extra = {"furniture": ["lire la suite"]} if version >= 3 else {}
with engine.begin() as c:
    sid = c.execute(insert(schema.sources).values(name="quotidien", url="https://www.exemple.fr/rss.xml", config_url="https://www.exemple.fr/rss.xml", interval=60, baselined=True, created_at=t, etag='"abc"', next_poll_at=t)).inserted_primary_key[0]
    iid = c.execute(insert(schema.items).values(source_id=sid, key="g1", title="FLASH INFO — Séisme à Nice", headline="Séisme à Nice", label="FLASH INFO", link="https://www.exemple.fr/a/1", summary_html="<p>Un séisme.</p>", categories=["Monde"], content_hash="h1", is_flash=True, alert_state="detected", norm_title="seisme a nice", detected_at=t, published_at=t, **extra)).inserted_primary_key[0]
    c.execute(insert(schema.items).values(source_id=sid, key="g2", title="Météo du jour", headline="Météo du jour", link="https://www.exemple.fr/a/2", categories=[], content_hash="h2", norm_title="meteo du jour", detected_at=t, published_at=t))
subs.add(engine, ["alice@exemple.fr", "bob@example.com", "carol@example.net"], mode="both", language="fr")
n = fanout.queue_item(engine, cfg, iid)
(claimed,) = outbox.claim(engine, 1, None, ["email"])  # as the engine does: claimed, then its outcome
first = claimed["id"]
outbox.record(engine, [{"id": first, "state": "sent", "inc": 1, "sent": t + timedelta(seconds=2),
                        "ext": "<m1@example.org>", "item_id": iid, "channel": "email"}], 2)
tokens.secret_key(engine, None)
digest.note_first_start(engine, t)
digest.queue_digest(engine, cfg, "2026-11-29", t + timedelta(hours=1))
if version >= 2:
    from bot.store import sessions, signups
    signups.signup(engine, "dora@example.org", "instant", "en", ["sport"], now=t)
    sessions.create(engine, "session-of-the-test-file", timedelta(hours=12), now=t)
if version >= 4:
    with engine.begin() as c:
        c.execute(update(schema.subscribers).where(schema.subscribers.c.email == "bob@example.com")
                  .values(max_per_day=3, quiet_start="22:00", quiet_end="07:00", timezone="America/Montreal"))
        c.execute(insert(schema.desk_log).values(item_id=iid, action="sent", revision=0, editor="Léa", via="cli", at=t))
if version >= 6:
    from bot.store import bounces
    bounces.store(engine, [{"source": "smtp", "raw": b"From: MAILER-DAEMON@example.com\r\nSubject: Undelivered\r\n\r\n550 5.1.1\r\n",
                            "envelope_to": "b-test@bounces.example.org", "envelope_from": ""}], now=t)
print(f"schema v{version}: rows queued {n}")
