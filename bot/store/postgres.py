"""PostgreSQL-only coordination: the scheduler's advisory lock (the election) and the LISTEN
connection that wakes workers. Both use their own psycopg connection, outside the pool, because a
session advisory lock and a LISTEN belong to one server session for as long as it lives."""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import psycopg
from sqlalchemy import Engine

from bot.store.claims import CHANNEL
from bot.store.db import PG_KEEPALIVE, PG_SERVER_KEEPALIVE, libpq_url

log = logging.getLogger(__name__)
SCHEDULER_LOCK = 0x466C6173680002  # pg_advisory_lock key of the active scheduler ("Flash" + 2)
NOTIFY_POLL = 1.0  # the listener's loop turns this often (stop, liveness); notifications come at once


def _connect(engine: Engine) -> psycopg.Connection:
    return psycopg.connect(libpq_url(engine), autocommit=True, connect_timeout=10,
                           options=PG_SERVER_KEEPALIVE, **PG_KEEPALIVE)


class LeaderLock:
    """The scheduler's session advisory lock on a dedicated connection. The server frees it the
    moment that session ends: the process died, or its machine vanished (TCP keepalives)."""

    def __init__(self, engine: Engine, key: int = SCHEDULER_LOCK):
        self.engine, self.key = engine, key
        self._conn: psycopg.Connection | None = None

    @property
    def held(self) -> bool:
        """Whether this process believes it holds the lock (check() verifies it)."""
        return self._conn is not None

    def try_acquire(self) -> bool:
        """Take the lock if it is free; False if another session holds it or the server is unreachable."""
        if self._conn is not None:
            return self.check()
        try:
            conn = _connect(self.engine)
        except psycopg.Error as exc:
            log.warning("scheduler election: cannot reach the database (%s)", type(exc).__name__)
            return False
        try:
            got = conn.execute("SELECT pg_try_advisory_lock(%s)", (self.key,)).fetchone()[0]
        except psycopg.Error:
            got = False
        if not got:
            conn.close()
            return False
        self._conn = conn
        return True

    def acquire(self, wait: float) -> bool:
        """try_acquire, retrying for up to `wait` seconds."""
        deadline = time.monotonic() + wait
        while not self.try_acquire():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.2)
        return True

    def check(self) -> bool:
        """Whether the lock is still ours: its session answers (a server restart ends the session)."""
        if self._conn is None:
            return False
        try:
            self._conn.execute("SELECT 1")
            return True
        except psycopg.Error:
            self.release()
            return False

    def release(self) -> None:
        """Give the lock up (closing the session frees it)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except psycopg.Error:
                pass


async def listen(engine: Engine, wake: Callable[[], None], stop: asyncio.Event, retry: float = 1.0) -> None:
    """LISTEN for queued rows and call `wake` on each notification until `stop`; reconnects after a
    server restart (and wakes once then: rows may have been queued while it was away)."""
    while not stop.is_set():
        try:
            conn = await psycopg.AsyncConnection.connect(libpq_url(engine), autocommit=True, connect_timeout=10,
                                                         options=PG_SERVER_KEEPALIVE, **PG_KEEPALIVE)
        except psycopg.Error as exc:
            log.warning("outbox listener: cannot connect (%s); retrying", type(exc).__name__)
            await _sleep(stop, retry)
            continue
        try:
            async with conn:
                await conn.execute(f"LISTEN {CHANNEL}")
                wake()
                while not stop.is_set():
                    # Each notification wakes delivery at once; the timeout only lets `stop` be seen.
                    async for _ in conn.notifies(timeout=NOTIFY_POLL):
                        wake()
                    await conn.execute("SELECT 1")  # a silent dead server shows up here, not never
        except (psycopg.Error, OSError) as exc:
            log.warning("outbox listener: connection lost (%s); reconnecting", type(exc).__name__)
            await _sleep(stop, retry)


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except asyncio.TimeoutError:
        pass
