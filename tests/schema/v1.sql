-- The SQLite schema of a Flashbot database at schema version 1 (commit 4e53cda), for migration tests.
-- Generated with bot.store.open_db at that commit, dumped from sqlite_master.
CREATE TABLE meta (
	"key" VARCHAR(64) NOT NULL, 
	value TEXT NOT NULL, 
	PRIMARY KEY ("key")
);
CREATE TABLE sources (
	id INTEGER NOT NULL, 
	name VARCHAR(200) NOT NULL, 
	url TEXT NOT NULL, 
	config_url TEXT, 
	interval INTEGER NOT NULL, 
	all_flash BOOLEAN NOT NULL, 
	respect_ttl BOOLEAN NOT NULL, 
	alert_on_first_poll BOOLEAN NOT NULL, 
	category VARCHAR(200), 
	origin VARCHAR(16) NOT NULL, 
	paused BOOLEAN NOT NULL, 
	pause_reason TEXT, 
	baselined BOOLEAN NOT NULL, 
	etag TEXT, 
	last_modified TEXT, 
	ttl_seconds INTEGER, 
	max_age INTEGER, 
	last_status INTEGER, 
	last_polled_at DATETIME, 
	last_success_at DATETIME, 
	last_error TEXT, 
	consecutive_failures INTEGER NOT NULL, 
	next_poll_at DATETIME, 
	retry_after_until DATETIME, 
	hub_url TEXT, 
	topic_url TEXT, 
	websub_secret VARCHAR(128), 
	websub_state VARCHAR(16), 
	websub_lease_until DATETIME, 
	created_at DATETIME, 
	PRIMARY KEY (id), 
	UNIQUE (name)
);
CREATE TABLE subscribers (
	id INTEGER NOT NULL, 
	email VARCHAR(320), 
	status VARCHAR(16) NOT NULL, 
	mode VARCHAR(8) NOT NULL, 
	language VARCHAR(8) NOT NULL, 
	topics JSON NOT NULL, 
	origin VARCHAR(16) NOT NULL, 
	bounces INTEGER NOT NULL, 
	last_error TEXT, 
	token_nonce VARCHAR(32) NOT NULL, 
	created_at DATETIME, 
	confirmed_at DATETIME, 
	unsubscribed_at DATETIME, 
	last_digest_at DATETIME, 
	PRIMARY KEY (id), 
	UNIQUE (email)
);
CREATE INDEX ix_subscribers_status ON subscribers (status);
CREATE TABLE digests (
	id INTEGER NOT NULL, 
	run_key VARCHAR(64) NOT NULL, 
	created_at DATETIME, 
	PRIMARY KEY (id), 
	UNIQUE (run_key)
);
CREATE TABLE channel_state (
	channel VARCHAR(32) NOT NULL, 
	paused BOOLEAN NOT NULL, 
	last_error TEXT, 
	updated_at DATETIME, 
	PRIMARY KEY (channel)
);
CREATE TABLE rate_events (
	id INTEGER NOT NULL, 
	bucket VARCHAR(400) NOT NULL, 
	at DATETIME NOT NULL, 
	PRIMARY KEY (id)
);
CREATE INDEX ix_rate_events_bucket ON rate_events (bucket, at);
CREATE TABLE items (
	id INTEGER NOT NULL, 
	source_id INTEGER NOT NULL, 
	"key" TEXT NOT NULL, 
	title TEXT NOT NULL, 
	headline TEXT NOT NULL, 
	label VARCHAR(100), 
	link TEXT, 
	summary_html TEXT, 
	content_html TEXT, 
	categories JSON NOT NULL, 
	author TEXT, 
	language VARCHAR(16), 
	published_at DATETIME, 
	updated_at DATETIME, 
	content_hash VARCHAR(64) NOT NULL, 
	revision INTEGER NOT NULL, 
	is_flash BOOLEAN NOT NULL, 
	baseline BOOLEAN NOT NULL, 
	alert_state VARCHAR(16) NOT NULL, 
	duplicate_of INTEGER, 
	also_sources JSON NOT NULL, 
	norm_title TEXT NOT NULL, 
	detected_at DATETIME, 
	first_telegram_at DATETIME, 
	first_email_at DATETIME, 
	last_email_at DATETIME, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_items_source_key UNIQUE (source_id, "key"), 
	FOREIGN KEY(source_id) REFERENCES sources (id) ON DELETE CASCADE, 
	FOREIGN KEY(duplicate_of) REFERENCES items (id) ON DELETE SET NULL
);
CREATE INDEX ix_items_norm_title ON items (norm_title);
CREATE INDEX ix_items_detected ON items (detected_at);
CREATE TABLE deliveries (
	id INTEGER NOT NULL, 
	item_id INTEGER, 
	digest_id INTEGER, 
	channel VARCHAR(32) NOT NULL, 
	recipient VARCHAR(320) NOT NULL, 
	subscriber_id INTEGER, 
	revision INTEGER NOT NULL, 
	kind VARCHAR(16) NOT NULL, 
	state VARCHAR(16) NOT NULL, 
	attempts INTEGER NOT NULL, 
	last_error TEXT, 
	next_attempt_at DATETIME, 
	created_at DATETIME, 
	sent_at DATETIME, 
	external_id TEXT, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_deliveries_item UNIQUE (item_id, channel, recipient, revision), 
	CONSTRAINT uq_deliveries_digest UNIQUE (digest_id, channel, recipient), 
	FOREIGN KEY(item_id) REFERENCES items (id) ON DELETE CASCADE, 
	FOREIGN KEY(digest_id) REFERENCES digests (id) ON DELETE CASCADE, 
	FOREIGN KEY(subscriber_id) REFERENCES subscribers (id) ON DELETE SET NULL
);
CREATE INDEX ix_deliveries_subscriber ON deliveries (subscriber_id);
CREATE INDEX ix_deliveries_due ON deliveries (state, next_attempt_at);
CREATE TABLE digest_items (
	subscriber_id INTEGER NOT NULL, 
	item_id INTEGER NOT NULL, 
	delivery_id INTEGER NOT NULL, 
	CONSTRAINT uq_digest_items UNIQUE (subscriber_id, item_id), 
	FOREIGN KEY(subscriber_id) REFERENCES subscribers (id) ON DELETE CASCADE, 
	FOREIGN KEY(item_id) REFERENCES items (id) ON DELETE CASCADE, 
	FOREIGN KEY(delivery_id) REFERENCES deliveries (id) ON DELETE CASCADE
);
INSERT INTO meta (key, value) VALUES ('schema_version', '1');
