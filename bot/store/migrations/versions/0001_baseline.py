"""Baseline: the schema of the last release before Alembic (SCHEMA_VERSION 1 in bot/store/schema.py).

A database made by that release carries meta.schema_version = 1 and no alembic_version table; it is
stamped at this revision, then upgraded (bot.store.migrate.upgrade). Never edit this file: a schema
change is a new revision next to it.
"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create every table of schema v1 (UTC timestamps are stored naive: sa.DateTime)."""
    op.create_table('channel_state',
    sa.Column('channel', sa.String(length=32), nullable=False),
    sa.Column('paused', sa.Boolean(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('updated_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('channel')
    )
    op.create_table('digests',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('run_key', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('run_key')
    )
    op.create_table('meta',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('key')
    )
    op.create_table('rate_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('bucket', sa.String(length=400), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_rate_events_bucket', 'rate_events', ['bucket', 'at'], unique=False)
    op.create_table('sources',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('url', sa.Text(), nullable=False),
    sa.Column('config_url', sa.Text(), nullable=True),
    sa.Column('interval', sa.Integer(), nullable=False),
    sa.Column('all_flash', sa.Boolean(), nullable=False),
    sa.Column('respect_ttl', sa.Boolean(), nullable=False),
    sa.Column('alert_on_first_poll', sa.Boolean(), nullable=False),
    sa.Column('category', sa.String(length=200), nullable=True),
    sa.Column('origin', sa.String(length=16), nullable=False),
    sa.Column('paused', sa.Boolean(), nullable=False),
    sa.Column('pause_reason', sa.Text(), nullable=True),
    sa.Column('baselined', sa.Boolean(), nullable=False),
    sa.Column('etag', sa.Text(), nullable=True),
    sa.Column('last_modified', sa.Text(), nullable=True),
    sa.Column('ttl_seconds', sa.Integer(), nullable=True),
    sa.Column('max_age', sa.Integer(), nullable=True),
    sa.Column('last_status', sa.Integer(), nullable=True),
    sa.Column('last_polled_at', sa.DateTime(), nullable=True),
    sa.Column('last_success_at', sa.DateTime(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('consecutive_failures', sa.Integer(), nullable=False),
    sa.Column('next_poll_at', sa.DateTime(), nullable=True),
    sa.Column('retry_after_until', sa.DateTime(), nullable=True),
    sa.Column('hub_url', sa.Text(), nullable=True),
    sa.Column('topic_url', sa.Text(), nullable=True),
    sa.Column('websub_secret', sa.String(length=128), nullable=True),
    sa.Column('websub_state', sa.String(length=16), nullable=True),
    sa.Column('websub_lease_until', sa.DateTime(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_table('subscribers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('mode', sa.String(length=8), nullable=False),
    sa.Column('language', sa.String(length=8), nullable=False),
    sa.Column('topics', sa.JSON(), nullable=False),
    sa.Column('origin', sa.String(length=16), nullable=False),
    sa.Column('bounces', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('token_nonce', sa.String(length=32), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=True),
    sa.Column('confirmed_at', sa.DateTime(), nullable=True),
    sa.Column('unsubscribed_at', sa.DateTime(), nullable=True),
    sa.Column('last_digest_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('email')
    )
    op.create_index('ix_subscribers_status', 'subscribers', ['status'], unique=False)
    op.create_table('items',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('source_id', sa.Integer(), nullable=False),
    sa.Column('key', sa.Text(), nullable=False),
    sa.Column('title', sa.Text(), nullable=False),
    sa.Column('headline', sa.Text(), nullable=False),
    sa.Column('label', sa.String(length=100), nullable=True),
    sa.Column('link', sa.Text(), nullable=True),
    sa.Column('summary_html', sa.Text(), nullable=True),
    sa.Column('content_html', sa.Text(), nullable=True),
    sa.Column('categories', sa.JSON(), nullable=False),
    sa.Column('author', sa.Text(), nullable=True),
    sa.Column('language', sa.String(length=16), nullable=True),
    sa.Column('published_at', sa.DateTime(), nullable=True),
    sa.Column('updated_at', sa.DateTime(), nullable=True),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('is_flash', sa.Boolean(), nullable=False),
    sa.Column('baseline', sa.Boolean(), nullable=False),
    sa.Column('alert_state', sa.String(length=16), nullable=False),
    sa.Column('duplicate_of', sa.Integer(), nullable=True),
    sa.Column('also_sources', sa.JSON(), nullable=False),
    sa.Column('norm_title', sa.Text(), nullable=False),
    sa.Column('detected_at', sa.DateTime(), nullable=True),
    sa.Column('first_telegram_at', sa.DateTime(), nullable=True),
    sa.Column('first_email_at', sa.DateTime(), nullable=True),
    sa.Column('last_email_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['duplicate_of'], ['items.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['source_id'], ['sources.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('source_id', 'key', name='uq_items_source_key')
    )
    op.create_index('ix_items_detected', 'items', ['detected_at'], unique=False)
    op.create_index('ix_items_norm_title', 'items', ['norm_title'], unique=False)
    op.create_table('deliveries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('item_id', sa.Integer(), nullable=True),
    sa.Column('digest_id', sa.Integer(), nullable=True),
    sa.Column('channel', sa.String(length=32), nullable=False),
    sa.Column('recipient', sa.String(length=320), nullable=False),
    sa.Column('subscriber_id', sa.Integer(), nullable=True),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('next_attempt_at', sa.DateTime(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=True),
    sa.Column('sent_at', sa.DateTime(), nullable=True),
    sa.Column('external_id', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['digest_id'], ['digests.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['item_id'], ['items.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['subscriber_id'], ['subscribers.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('digest_id', 'channel', 'recipient', name='uq_deliveries_digest'),
    sa.UniqueConstraint('item_id', 'channel', 'recipient', 'revision', name='uq_deliveries_item')
    )
    op.create_index('ix_deliveries_due', 'deliveries', ['state', 'next_attempt_at'], unique=False)
    op.create_index('ix_deliveries_subscriber', 'deliveries', ['subscriber_id'], unique=False)
    op.create_table('digest_items',
    sa.Column('subscriber_id', sa.Integer(), nullable=False),
    sa.Column('item_id', sa.Integer(), nullable=False),
    sa.Column('delivery_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['delivery_id'], ['deliveries.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['item_id'], ['items.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['subscriber_id'], ['subscribers.id'], ondelete='CASCADE'),
    sa.UniqueConstraint('subscriber_id', 'item_id', name='uq_digest_items')
    )


def downgrade() -> None:
    """Not supported: Flashbot never drops data."""
    raise NotImplementedError("Flashbot migrations only go forward")
