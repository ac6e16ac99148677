"""The channel_state table: which channels an error paused, and why (until an operator resumes them)."""
from __future__ import annotations

from sqlalchemy import Engine, select, update

from bot.store.db import utcnow
from bot.store.schema import channel_state


def paused_channels(engine: Engine) -> set[str]:
    """Names of channels an error paused (until an operator resumes them)."""
    with engine.connect() as conn:
        return {r[0] for r in conn.execute(select(channel_state.c.channel).where(channel_state.c.paused.is_(True)))}


def pause_channel(engine: Engine, channel: str, error: str) -> None:
    """Pause a channel with the error shown to operators (until one resumes it)."""
    with engine.begin() as conn:
        values = {"paused": True, "last_error": error, "updated_at": utcnow()}
        if conn.execute(update(channel_state).where(channel_state.c.channel == channel).values(**values)).rowcount == 0:
            conn.execute(channel_state.insert().values(channel=channel, **values))


def resume_channel(engine: Engine, channel: str) -> bool:
    """Un-pause a channel (e.g. once the bot is back in the Telegram channel); False if it was never paused."""
    with engine.begin() as conn:
        return conn.execute(update(channel_state).where(channel_state.c.channel == channel)
                            .values(paused=False, last_error=None, updated_at=utcnow())).rowcount == 1


def channel_states(engine: Engine) -> list[dict]:
    """Every channel_state row (paused flag and last error)."""
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(channel_state).order_by(channel_state.c.channel)).mappings()]
