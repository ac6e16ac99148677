"""Server-side admin sessions (admin_sessions): created at login, checked on every page, deleted at logout."""
from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from sqlalchemy import Engine, delete, insert, select

from bot.store.db import utcnow
from bot.store.schema import admin_sessions


def session_hash(session_id: str) -> str:
    """What the database keeps of a session id: its SHA-256 (a leaked database opens no session)."""
    return hashlib.sha256(session_id.encode("utf-8", "replace")).hexdigest()


def create(engine: Engine, session_id: str, lifetime: timedelta, now: datetime | None = None) -> None:
    """Record a new session valid for `lifetime`; expired sessions are removed on the way."""
    now = now or utcnow()
    with engine.begin() as conn:
        conn.execute(delete(admin_sessions).where(admin_sessions.c.expires_at <= now))
        conn.execute(insert(admin_sessions).values(id=session_hash(session_id), created_at=now,
                                                   expires_at=now + lifetime))


def valid(engine: Engine, session_id: str, now: datetime | None = None) -> bool:
    """True while the session exists and has not expired."""
    now = now or utcnow()
    with engine.connect() as conn:
        row = conn.execute(select(admin_sessions.c.expires_at)
                           .where(admin_sessions.c.id == session_hash(session_id))).first()
    return row is not None and row.expires_at > now


def end(engine: Engine, session_id: str) -> bool:
    """Delete the session (logout); True when it existed."""
    with engine.begin() as conn:
        res = conn.execute(delete(admin_sessions).where(admin_sessions.c.id == session_hash(session_id)))
    return res.rowcount == 1
