"""The database schema (SQLAlchemy Core tables); portable between SQLite and PostgreSQL."""
from __future__ import annotations

from datetime import timezone

from sqlalchemy import (
    JSON, Boolean, Column, DateTime, ForeignKey, Index, Integer, LargeBinary, MetaData, String, Table, Text,
    UniqueConstraint, false, literal_column, text,
)
from sqlalchemy.types import TypeDecorator

metadata = MetaData()
# The schema is versioned by Alembic revisions in bot/store/migrations/versions/ (see
# bot/store/migrate.py). This number is the count of revisions up to head; it is also written to
# meta.schema_version, so a release from before Alembic refuses a database newer than itself.
SCHEMA_VERSION = 8


class UTCDateTime(TypeDecorator):
    """Aware UTC datetimes in and out; stored naive UTC (SQLite keeps no zone, PostgreSQL is fine)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None:
            if value.tzinfo is None:
                raise ValueError("naive datetime given to the database; use bot.store.utcnow()")
            value = value.astimezone(timezone.utc).replace(tzinfo=None)
        return value

    def process_result_value(self, value, dialect):
        return value.replace(tzinfo=timezone.utc) if value is not None else None


def _ts(name: str, **kw) -> Column:
    return Column(name, UTCDateTime(), **kw)


meta = Table(
    "meta", metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

sources = Table(
    "sources", metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("url", Text, nullable=False),
    # The URL as written in config.toml: a permanent redirect changes `url` but not this, so
    # sync_sources only resets `url` when the operator edits the config.
    Column("config_url", Text),
    Column("interval", Integer, nullable=False, default=60),
    Column("all_flash", Boolean, nullable=False, default=False),
    Column("respect_ttl", Boolean, nullable=False, default=False),
    Column("alert_on_first_poll", Boolean, nullable=False, default=False),
    Column("category", String(200)),
    Column("origin", String(16), nullable=False, default="config"),  # config | cli | opml
    Column("paused", Boolean, nullable=False, default=False),
    Column("pause_reason", Text),
    Column("baselined", Boolean, nullable=False, default=False),
    # Fetch state.
    Column("etag", Text),
    Column("last_modified", Text),
    Column("ttl_seconds", Integer),  # RSS <ttl>, in seconds
    Column("max_age", Integer),  # Cache-Control: max-age
    Column("last_status", Integer),
    _ts("last_polled_at"),
    _ts("last_success_at"),
    Column("last_error", Text),
    Column("consecutive_failures", Integer, nullable=False, default=0),
    _ts("next_poll_at"),
    _ts("retry_after_until"),
    # WebSub push.
    Column("hub_url", Text),
    Column("topic_url", Text),
    Column("websub_secret", String(128)),
    # Random part of the callback URL (/websub/ID/CALLBACK): only the hub we asked learns it.
    Column("websub_callback", String(64)),
    Column("websub_state", String(16)),  # pending | active | unsubscribing | unsubscribed | denied | error
    _ts("websub_lease_until"),
    _ts("created_at"),
    # Polls recorded so far: poll n goes to slot n % HISTORY_SLOTS of poll_history (a ring).
    Column("poll_count", Integer, nullable=False, default=0, server_default=text("0")),
)

items = Table(
    "items", metadata,
    Column("id", Integer, primary_key=True),
    Column("source_id", Integer, ForeignKey("sources.id", ondelete="CASCADE"), nullable=False),
    Column("key", Text, nullable=False),  # guid, else link, else content hash
    Column("title", Text, nullable=False, default=""),
    Column("headline", Text, nullable=False, default=""),  # title without the Flash label
    Column("label", String(100)),  # the matched Flash prefix/category, e.g. "FLASH INFO"
    Column("link", Text),
    Column("summary_html", Text),
    Column("content_html", Text),
    Column("categories", JSON, nullable=False, default=list),
    Column("author", Text),
    Column("language", String(16)),
    _ts("published_at"),
    _ts("updated_at"),
    Column("content_hash", String(64), nullable=False),
    Column("revision", Integer, nullable=False, default=0),  # bumped by each update of a flash item
    Column("is_flash", Boolean, nullable=False, default=False),
    Column("baseline", Boolean, nullable=False, default=False),  # seen on a source's first poll
    # Alert lifecycle: none (not flash / not alerted) | held | approved | cancelled | queued
    Column("alert_state", String(16), nullable=False, default="none"),
    Column("duplicate_of", Integer, ForeignKey("items.id", ondelete="SET NULL")),
    Column("also_sources", JSON, nullable=False, default=list),
    Column("norm_title", Text, nullable=False, default=""),
    Column("image_url", Text),  # the lead photo (bot.ingest.images)
    Column("image_alt", Text),
    # Hand-written alerts: the channels the editor chose ({"email": bool, "telegram": [chat, ...]});
    # NULL = every channel (feed items).
    Column("targets", JSON),
    # Texts of blocks most items of the feed repeated when this item was stored (chrome at its edges).
    Column("furniture", JSON, nullable=False, default=list),
    # Latency trail.
    _ts("detected_at"),
    _ts("first_telegram_at"),
    _ts("first_email_at"),
    _ts("last_email_at"),
    UniqueConstraint("source_id", "key", name="uq_items_source_key"),
    Index("ix_items_detected", "detected_at"),
    Index("ix_items_alert_state", "alert_state", "detected_at"),  # the dashboard's held alerts (v7)
    Index("ix_items_norm_title", "norm_title"),
)

subscribers = Table(
    "subscribers", metadata,
    Column("id", Integer, primary_key=True),
    Column("email", String(320), unique=True),  # NULL once the subscriber is erased
    # pending | active | unsubscribed | suppressed | deleted
    Column("status", String(16), nullable=False, default="pending"),
    Column("mode", String(8), nullable=False, default="both"),  # instant | digest | both
    Column("language", String(8), nullable=False, default="fr"),
    Column("topics", JSON, nullable=False, default=list),
    Column("origin", String(16), nullable=False, default="web"),  # web | operator | import
    Column("bounces", Integer, nullable=False, default=0),
    Column("last_error", Text),
    Column("token_nonce", String(32), nullable=False, default=""),  # rotating kills old tokens
    Column("status_reason", Text),  # why a bounce, complaint or mailto unsubscribe changed the status (v6)
    _ts("created_at"),
    _ts("confirmed_at"),
    _ts("unsubscribed_at"),
    _ts("last_digest_at"),
    # Delivery limits (bot.delivery.quiet): a daily cap lower than [delivery] max_alerts_per_day,
    # quiet hours "HH:MM" (local to `timezone`, NULL = [bot] timezone); NULL = none.
    Column("max_per_day", Integer),
    Column("quiet_start", String(5)),
    Column("quiet_end", String(5)),
    Column("timezone", String(64)),
    # The list filters (status, mode, language, origin) and the status × mode counts read this index
    # alone, never the rows: an index-only scan at a million subscribers.
    Index("ix_subscribers_filters", "status", "mode", "language", "origin"),
)

digests = Table(
    "digests", metadata,
    Column("id", Integer, primary_key=True),
    Column("run_key", String(64), nullable=False, unique=True),  # e.g. "2026-11-29"
    _ts("created_at"),
)

# One row per message to one recipient on one channel: the outbox.
deliveries = Table(
    "deliveries", metadata,
    Column("id", Integer, primary_key=True),
    Column("item_id", Integer, ForeignKey("items.id", ondelete="CASCADE")),
    Column("digest_id", Integer, ForeignKey("digests.id", ondelete="CASCADE")),
    Column("channel", String(32), nullable=False),  # email | telegram
    Column("recipient", String(320), nullable=False),  # subscriber id as text, or the channel name
    Column("subscriber_id", Integer, ForeignKey("subscribers.id", ondelete="SET NULL")),
    Column("revision", Integer, nullable=False, default=0),  # 0 = alert, n = nth update/correction
    Column("kind", String(16), nullable=False, default="alert"),  # alert | update | digest | summary | confirm
    # pending | sending | sent | retry | failed | cancelled | folded
    Column("state", String(16), nullable=False, default="pending"),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text),
    # When a due row may be tried; for a 'sending' row, when its claim's lease expires (another
    # worker then takes it back): one indexed column serves both, see bot/store/claims.py.
    _ts("next_attempt_at"),
    Column("claimed_by", String(64)),  # the instances.id of the worker sending it
    _ts("created_at"),
    _ts("sent_at"),
    Column("external_id", Text),  # SMTP Message-ID or Telegram message_id
    _ts("finished_at"),  # when it became sent, failed or cancelled (the live fan-out's throughput)
    # Failed because the address was refused (a hard bounce counted against the subscriber).
    Column("bounced", Boolean, nullable=False, default=False, server_default=false()),
    # What happened after the hand-off (v6): bounced | soft-bounced | complained, with when and why.
    Column("outcome", String(16)),
    _ts("outcome_at"),
    Column("diagnostic", Text),
    UniqueConstraint("item_id", "channel", "recipient", "revision", name="uq_deliveries_item"),
    UniqueConstraint("digest_id", "channel", "recipient", name="uq_deliveries_digest"),
    Index("ix_deliveries_due", "state", "next_attempt_at"),
    Index("ix_deliveries_subscriber", "subscriber_id"),  # export, erasure, subscribers show
    # The failures pages, newest first, overall and per alert: only failed rows are in them (v7).
    Index("ix_deliveries_failed", "state", "id", sqlite_where=literal_column("state = 'failed'"),
          postgresql_where=literal_column("state = 'failed'")),
    Index("ix_deliveries_failed_item", "item_id", "state", "id", sqlite_where=literal_column("state = 'failed'"),
          postgresql_where=literal_column("state = 'failed'")),
    # Summary mails (bot/store/limits.py) in queueing order: what compaction sweeps of them (v7).
    Index("ix_deliveries_summary", "id", sqlite_where=literal_column("kind = 'summary'"),
          postgresql_where=literal_column("kind = 'summary'")),
)

# Which items went into which subscriber's digest or summary mail: an item at most once per subscriber.
digest_items = Table(
    "digest_items", metadata,
    Column("subscriber_id", Integer, ForeignKey("subscribers.id", ondelete="CASCADE"), nullable=False),
    Column("item_id", Integer, ForeignKey("items.id", ondelete="CASCADE"), nullable=False),
    Column("delivery_id", Integer, ForeignKey("deliveries.id", ondelete="CASCADE"), nullable=False),
    UniqueConstraint("subscriber_id", "item_id", name="uq_digest_items"),
    # A digest's items by its delivery (composing it), and the cascade when its row is compacted (v7).
    Index("ix_digest_items_delivery", "delivery_id"),
)

# Hand-written alerts (the newsroom desk): who wrote or corrected each one, when, and from where.
desk_log = Table(
    "desk_log", metadata,
    Column("id", Integer, primary_key=True),
    Column("item_id", Integer, ForeignKey("items.id", ondelete="CASCADE"), nullable=False),
    Column("action", String(16), nullable=False),  # sent | edited
    Column("revision", Integer, nullable=False, default=0),
    Column("editor", String(200), nullable=False),
    Column("via", String(16), nullable=False),  # web | cli
    _ts("at", nullable=False),
    Index("ix_desk_log_item", "item_id"),
)

# Per-channel operational state (a Telegram 403 pauses the channel until an operator resumes it).
channel_state = Table(
    "channel_state", metadata,
    Column("channel", String(32), primary_key=True),
    Column("paused", Boolean, nullable=False, default=False),
    Column("last_error", Text),
    _ts("updated_at"),
)

# Sliding-window counters for web abuse limits (per IP, per address).
rate_events = Table(
    "rate_events", metadata,
    Column("id", Integer, primary_key=True),
    Column("bucket", String(400), nullable=False),
    _ts("at", nullable=False),
    Index("ix_rate_events_bucket", "bucket", "at"),
)

# One row per web sign-up: the choices its confirmation link activates (a later sign-up of the
# same address adds a row and never changes what an earlier link confirms).
signup_requests = Table(
    "signup_requests", metadata,
    Column("id", Integer, primary_key=True),
    Column("subscriber_id", Integer, ForeignKey("subscribers.id", ondelete="CASCADE"), nullable=False),
    Column("nonce", String(32), nullable=False),
    Column("mode", String(8), nullable=False),
    Column("language", String(8), nullable=False),
    Column("topics", JSON, nullable=False, default=list),
    _ts("created_at", nullable=False),
    _ts("used_at"),
    UniqueConstraint("subscriber_id", "nonce", name="uq_signup_requests_nonce"),
)

# Server-side admin sessions: the cookie carries a random id, the database its SHA-256; logging
# out deletes the row, so the old cookie opens nothing.
admin_sessions = Table(
    "admin_sessions", metadata,
    Column("id", String(64), primary_key=True),
    _ts("created_at", nullable=False),
    _ts("expires_at", nullable=False),
)

# The last HISTORY_SLOTS polls of each source, as a ring: poll n of a source overwrites slot
# n % HISTORY_SLOTS, so the table never grows past sources × HISTORY_SLOTS rows, with or without
# housekeeping (`run --once` from cron never prunes).
HISTORY_SLOTS = 48
poll_history = Table(
    "poll_history", metadata,
    Column("source_id", Integer, ForeignKey("sources.id", ondelete="CASCADE"), primary_key=True),
    Column("slot", Integer, primary_key=True, autoincrement=False),
    Column("seq", Integer, nullable=False),  # the source's poll number (newest = highest)
    _ts("at", nullable=False),
    Column("outcome", String(16), nullable=False),  # a PollOutcome: ok | not_modified | error
    Column("status", Integer),  # HTTP status, when there was one
    Column("duration_ms", Integer),
    Column("error", Text),  # the poll's error, cut to 300 characters
)

# Counts per 15-minute bucket (UTC; every time zone's hours and days are made of whole quarters):
# delivery outcomes per channel, poll outcomes, subscriber events. Written in the same transaction
# as the change they count, so the charts and the Prometheus counters never miss or double one; old
# buckets are folded into one (1970-01-01) bucket, which keeps the all-time totals.
stats = Table(
    "stats", metadata,
    _ts("bucket", primary_key=True),
    Column("metric", String(16), primary_key=True),  # delivery | poll | subscriber | bounce
    Column("label", String(64), primary_key=True),  # the channel for deliveries, "" otherwise
    Column("outcome", String(16), primary_key=True),  # SendOutcome | PollOutcome | SubscriberEvent | BounceKind
    Column("n", Integer, nullable=False),
)

# Every bounce, complaint, auto-reply or mailto unsubscribe received (SMTP, IMAP, webhook), kept
# as received before anything is done with it; `state` says how far its processing went (v6).
bounce_mails = Table(
    "bounce_mails", metadata,
    Column("id", Integer, primary_key=True),
    Column("source", String(16), nullable=False),  # smtp | imap | ses | mailgun | postmark | sendgrid
    Column("dedupe", String(64), nullable=False, unique=True),  # the same mail or event is stored once
    Column("envelope_to", Text),
    Column("envelope_from", Text),
    Column("raw", LargeBinary, nullable=False),
    Column("size", Integer, nullable=False, default=0),
    _ts("received_at", nullable=False),
    # new | processed | unparsed | ignored | rejected
    Column("state", String(16), nullable=False, default="new"),
    Column("kind", String(16)),  # hard | soft | complaint | autoreply | unsubscribe | other
    Column("delivery_id", Integer, ForeignKey("deliveries.id", ondelete="SET NULL")),
    Column("subscriber_id", Integer, ForeignKey("subscribers.id", ondelete="SET NULL")),
    Column("recipient", Text),  # the address the report names
    Column("status", String(16)),  # enhanced status code, e.g. 5.1.1
    Column("diagnostic", Text),
    Column("note", Text),  # what processing did or why it did nothing
    Column("attempts", Integer, nullable=False, default=0),
    _ts("processed_at"),
    Index("ix_bounce_mails_state", "state", "id"),
    Index("ix_bounce_mails_received", "received_at"),
)
