"""Build tests/data/subscribers-v1.db with the release's own code (run from a checkout of that release)."""
import sys
from datetime import datetime, timezone, timedelta
from pathlib import Path
from sqlalchemy import insert
from bot.config import parse_config
from bot.store import open_db, schema
from bot.store import subscribers as subs
from bot.delivery import fanout
from bot import digest, tokens

out = Path(sys.argv[1])
out.unlink(missing_ok=True)
cfg = parse_config({"bot": {"database": str(out)}, "email": {"sender": "Flash <a@example.org>"},
                    "telegram": {"token": "1:x", "channel": "@flash"}}, out.parent, env={})
engine = open_db(cfg.database_url)
t = datetime(2026, 11, 29, 6, 0, tzinfo=timezone.utc)
with engine.begin() as c:
    sid = c.execute(insert(schema.sources).values(name="quotidien", url="https://www.exemple.fr/rss.xml", config_url="https://www.exemple.fr/rss.xml", interval=60, baselined=True, created_at=t, etag='"abc"', next_poll_at=t)).inserted_primary_key[0]
    iid = c.execute(insert(schema.items).values(source_id=sid, key="g1", title="FLASH INFO — Séisme à Nice", headline="Séisme à Nice", label="FLASH INFO", link="https://www.exemple.fr/a/1", summary_html="<p>Un séisme.</p>", categories=["Monde"], content_hash="h1", is_flash=True, alert_state="detected", norm_title="seisme a nice", detected_at=t, published_at=t)).inserted_primary_key[0]
    c.execute(insert(schema.items).values(source_id=sid, key="g2", title="Météo du jour", headline="Météo du jour", link="https://www.exemple.fr/a/2", categories=[], content_hash="h2", norm_title="meteo du jour", detected_at=t, published_at=t))
subs.add(engine, ["alice@exemple.fr", "bob@example.com", "carol@example.net"], mode="both", language="fr")
n = fanout.queue_item(engine, cfg, iid)
tokens.secret_key(engine, None)
digest.note_first_start(engine, t)
digest.queue_digest(engine, cfg, "2026-11-29", t + timedelta(hours=1))
print("rows queued", n)
