"""The instances table: each `flashbot run` process registers, beats every few seconds, and is
listed with its roles while its heartbeat is fresh (`flashbot stats`, the dashboard)."""
from __future__ import annotations

import os
import secrets
import socket
from datetime import datetime, timedelta

from sqlalchemy import Engine, delete, insert, select, update

from bot.store.db import utcnow
from bot.store.schema_cluster import instances

I = instances.c
STALE_AFTER = timedelta(seconds=30)  # no heartbeat for this long: the process is gone
FORGET_AFTER = timedelta(days=1)  # dead instances stay listed this long (for the post-mortem)


def new_id() -> str:
    """host:pid:random, unique for the life of one process."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(4)}"


def register(engine: Engine, instance_id: str, roles: list[str], version: str, now: datetime | None = None) -> None:
    """Add this process to the table."""
    now = now or utcnow()
    with engine.begin() as conn:
        conn.execute(insert(instances).values(
            id=instance_id, host=socket.gethostname()[:255], pid=os.getpid(), roles=",".join(roles),
            version=version[:32], leader=False, sent=0, started_at=now, heartbeat_at=now))


def beat(engine: Engine, instance_id: str, leader: bool, sent: int, now: datetime | None = None) -> bool:
    """Refresh the heartbeat (and whether it leads, how much it sent); False if the row was pruned."""
    with engine.begin() as conn:
        return conn.execute(update(instances).where(I.id == instance_id)
                            .values(heartbeat_at=now or utcnow(), leader=leader, sent=sent)).rowcount == 1


def unregister(engine: Engine, instance_id: str) -> None:
    """A clean stop: the process leaves the list at once."""
    with engine.begin() as conn:
        conn.execute(delete(instances).where(I.id == instance_id))


def live(engine: Engine, now: datetime | None = None) -> list[dict]:
    """Instances with a fresh heartbeat, the leader first, then by start time."""
    since = (now or utcnow()) - STALE_AFTER
    q = select(instances).where(I.heartbeat_at >= since).order_by(I.leader.desc(), I.started_at, I.id)
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(q).mappings()]


def scheduler_alive(engine: Engine, now: datetime | None = None) -> bool:
    """Whether a live instance is the active scheduler (any replica's /healthz asks this)."""
    since = (now or utcnow()) - STALE_AFTER
    with engine.connect() as conn:
        return conn.execute(select(I.id).where(I.leader.is_(True), I.heartbeat_at >= since).limit(1)).first() is not None


def prune(engine: Engine, now: datetime | None = None) -> int:
    """Forget instances silent for FORGET_AFTER (housekeeping)."""
    with engine.begin() as conn:
        return conn.execute(delete(instances).where(I.heartbeat_at < (now or utcnow()) - FORGET_AFTER)).rowcount or 0
