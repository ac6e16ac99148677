"""The outbox engine: claim due rows, send them concurrently per channel, record outcomes in batches.

Life of a row: pending → (claimed in a short transaction) sending → sent | retry | failed | cancelled.
A row is marked `sending` BEFORE it leaves, so after a crash `recover()` knows exactly which messages
may have gone out twice: only those. Outcomes are written in batches of `delivery.batch_size`.
Claims carry this engine's `owner` and a lease it renews (bot.delivery.leases): any number of
engines, in any number of processes, share one PostgreSQL outbox.
"""
from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from sqlalchemy import Engine

from bot import tokens
from bot.config import Config
from bot.delivery import leases, policy
from bot.delivery.channels.base import ChannelPaused, DeliveryError, PermanentError, TemporaryError
from bot.delivery.compose import Composer
from bot.models import FINAL_STATES, NO_PROGRESS, AlertState, ClaimedRow, DeliveryState, Outcome, Progress
from bot.store import channels as channel_store
from bot.store import outbox, reports, retry_locked
from bot.store.db import is_postgres, utcnow
from bot.store.instances import new_id

log = logging.getLogger(__name__)
FLUSH_SECONDS = 0.2  # outcomes wait at most about this long before being written, even while sends stall
# Rows queued by another process (`flashbot poll`, an approval from the CLI, a web replica) cannot
# wake this one: an idle engine looks for due rows this often (one indexed MIN() query).
IDLE_SECONDS = 1.0
_DB_THREAD: ThreadPoolExecutor | None = None


async def _db(fn, *args):
    """Run a database call on the one outbox thread: claims and records never fight over SQLite's
    write lock (a busy wait there sleeps in coarse steps and left the process idle)."""
    global _DB_THREAD
    if _DB_THREAD is None:
        _DB_THREAD = ThreadPoolExecutor(1, thread_name_prefix="flashbot-outbox")
    return await asyncio.get_running_loop().run_in_executor(_DB_THREAD, functools.partial(fn, *args))


class DeliveryEngine:
    """Sends everything due through `channels`, recording each row's fate (see the module docstring)."""

    def __init__(self, engine: Engine, cfg: Config, channels: dict, renderer, owner: str | None = None):
        self.db, self.cfg, self.channels, self.renderer = engine, cfg, channels, renderer
        self.owner = owner or new_id()  # claimed_by of the rows it sends (the instances.id in a service)
        self.lease = cfg.delivery.lease_seconds
        self.sent_total = 0  # every row this engine recorded as sent (the instance heartbeat reports it)
        self._keeping = False
        self.composer: Composer | None = None
        self._results: list[Outcome] = []
        self._flushing: asyncio.Task | None = None
        self._last_flush = 0.0
        self._late: asyncio.TimerHandle | None = None  # a flush scheduled for outcomes no later one will carry
        self._paused: set[str] = set()
        self._down: dict[str, float] = {}  # channel → loop time until which it is not tried
        self._suppressed: set[int] = set()
        self._wake: asyncio.Event | None = None
        self._stop: asyncio.Event | None = None
        self._stats: Counter = Counter()
        self._progress: Progress = NO_PROGRESS
        # (item, channel) → lowest item revision any original alert was rendered at by this engine: a
        # correction for a revision every original already showed is pointless.
        self._rendered_rev: dict[tuple[int, str], int] = {}

    # -- public ------------------------------------------------------------------------------------
    def recover(self) -> int:
        """Make rows a killed process left in `sending` due again; call once at start. The single SQLite
        instance (it holds the instance lock) takes back every such row; on PostgreSQL, where other
        workers may be sending theirs, only rows whose lease expired."""
        n = outbox.recover(self.db, expired_only=is_postgres(self.db))
        if n:
            log.warning("recovered %s deliveries interrupted while sending; they are sent again", n)
        return n

    def wake(self) -> None:
        """New rows were queued: start delivering now instead of at the next tick."""
        if self._wake is not None:
            self._wake.set()

    async def run_due(self, horizon: float = 0.0, stop: asyncio.Event | None = None,
                      progress: Progress = NO_PROGRESS) -> dict:
        """Send everything due now; with horizon > 0 also wait for retries falling due within that many seconds.

        Setting `stop` ends the pass like a shutdown: nothing more is claimed, in-flight sends get
        `delivery.grace_seconds`, and claimed rows not yet attempted go back to the queue. `progress`
        counts the rows that reach a final state (the CLI's bar)."""
        if stop is not None:
            self._stop = stop
        self._progress = progress
        if progress is not NO_PROGRESS:
            progress.start("sending", await _db(reports.count_due, self.db, self._active(include_down=True)))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + horizon
        self._stats = stats = Counter()
        async with self._leases():
            while True:
                await self._drain()
                if horizon <= 0 or self._stopping():
                    break
                nxt = await _db(outbox.next_due, self.db, self._active(include_down=True))
                if nxt is None:
                    break
                wait = max((nxt - utcnow()).total_seconds(), 0.0)
                if loop.time() + wait > deadline:
                    break
                await self._pause_for(max(wait, 0.02))
        return dict(stats)

    async def run_forever(self, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set: after every pass sleep until woken, the next due row, or IDLE_SECONDS."""
        self._stop, self._wake = stop, asyncio.Event()
        async with self._leases():
            while not stop.is_set():
                self._wake.clear()
                try:
                    await self.run_due()
                    nxt = await _db(outbox.next_due, self.db, self._active(include_down=True))
                except Exception:  # noqa: BLE001 - a failed pass (database locked or restarting…) is retried
                    log.exception("delivery pass failed; retrying in 5 s")
                    await self._pause_for(5, wake=True)
                    continue
                timeout = IDLE_SECONDS if nxt is None else min(max((nxt - utcnow()).total_seconds(), 0.05), IDLE_SECONDS)
                await self._pause_for(timeout, wake=True)

    @contextlib.asynccontextmanager
    async def _leases(self):
        """Renew this engine's leases (and recover expired ones) while the outermost pass runs."""
        if self._keeping:
            yield
            return
        self._keeping = True
        try:
            async with leases.kept(self.db, self.owner, self.lease, self.wake):
                yield
        finally:
            self._keeping = False

    # -- one pass ------------------------------------------------------------------------------------
    async def _drain(self) -> None:
        if self.composer is None:
            key = await _db(tokens.secret_key, self.db, self.cfg.web.secret_key)
            self.composer = Composer(self.cfg, self.renderer, key)
        self._paused = await _db(channel_store.paused_channels, self.db)
        batch = self.cfg.delivery.batch_size
        queues = {name: asyncio.Queue(maxsize=2 * batch) for name in self.channels}
        workers = [asyncio.create_task(self._worker(name, q)) for name, q in queues.items()
                   for _ in range(self.channels[name].concurrency)]
        try:
            while not self._stopping():
                rows = await _db(outbox.claim, self.db, batch, None, self._active(), self.owner, self.lease)
                if not rows:
                    break
                self._stats["claimed"] += len(rows)
                await self._dispatch(rows, queues)
            await self._join(queues)
        finally:
            for w in workers:
                w.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            for q in queues.values():  # claimed but never attempted (shutdown): back in the queue
                while not q.empty():
                    self._release(q.get_nowait()[0])
            await self._flush(wait=True)

    async def _join(self, queues: dict) -> None:
        join = asyncio.ensure_future(asyncio.gather(*(q.join() for q in queues.values())))
        stop = asyncio.ensure_future(self._stop.wait()) if self._stop else None
        await asyncio.wait({join, stop} - {None}, return_when=asyncio.FIRST_COMPLETED)
        if stop:
            stop.cancel()
        if not join.done():  # stopping: in-flight sends get delivery.grace_seconds to finish
            try:
                await asyncio.wait_for(join, self.cfg.delivery.grace_seconds)
            except asyncio.TimeoutError:
                log.warning("shutdown: some sends did not finish within %ss; they will be sent again", self.cfg.delivery.grace_seconds)

    async def _dispatch(self, rows: list[ClaimedRow], queues: dict) -> None:
        ctx = await _db(outbox.batch_context, self.db, rows)
        for row in rows:
            msg = self._compose(row, ctx)
            if msg is not None:
                await queues[row["channel"]].put((row, msg))

    def _compose(self, row: ClaimedRow, ctx: dict):
        """The Outgoing for a row, or None after recording why it is not sent (cancelled, deferred, failed)."""
        channel = self.channels[row["channel"]]
        item = ctx["items"].get(row["item_id"]) if row["item_id"] is not None else None
        refused = policy.refusal(row, item, channel.per_subscriber)
        if refused:
            return self._add(row, DeliveryState.CANCELLED, error=refused)
        try:
            if row["kind"] == "digest":
                return self.composer.digest(row, ctx["digests"].get(row["id"], []))
            if row["kind"] == "summary":  # alerts a cap or quiet hours held back, minus cancelled ones
                kept = [i for i in ctx["digests"].get(row["id"], []) if i["alert_state"] != AlertState.CANCELLED]
                return self.composer.summary(row, kept) if kept else self._add(row, DeliveryState.CANCELLED,
                                                                                  error="every alert was cancelled")
            original = None
            if row["kind"] == "update":
                state, original = ctx["originals"].get((row["item_id"], row["channel"], row["recipient"]), (None, None))
                verdict = policy.correction(state, self._rendered_rev.get((row["item_id"], row["channel"]), -1),
                                            row["revision"])
                if verdict is not None and verdict.state == DeliveryState.CANCELLED:
                    return self._add(row, verdict.state, error=verdict.error)
                if verdict is not None:
                    return self._release(row, delay=verdict.delay)
            msg = channel.compose(self.composer, row, item, original)
            if row["kind"] == "alert":
                key = (row["item_id"], row["channel"])
                self._rendered_rev[key] = min(self._rendered_rev.get(key, item["revision"]), item["revision"])
            return msg
        except ValueError as exc:  # a bad address or a bad link: this message can never be built
            return self._failure(row, PermanentError(str(exc)))
        except Exception as exc:  # noqa: BLE001 - a rendering bug must not stop the other rows
            log.exception("cannot build delivery %s", row["id"])
            return self._failure(row, TemporaryError(f"cannot build the message: {exc!r}"))

    async def _worker(self, name: str, q: asyncio.Queue) -> None:
        channel = self.channels[name]
        while True:
            row, msg = await q.get()
            try:
                await self._send(name, channel, row, msg)
            finally:
                q.task_done()

    async def _send(self, name: str, channel, row: ClaimedRow, msg) -> None:
        if self._stopping() or name in self._paused:
            return self._release(row)
        if self._is_down(name):
            return self._release(row, until=self._down[name])
        if row["subscriber_id"] in self._suppressed:
            return self._add(row, DeliveryState.CANCELLED, error="subscriber suppressed after hard bounces")
        try:
            sent = await channel.send(msg)
        except asyncio.CancelledError:
            self._add(row, DeliveryState.RETRY, inc=1, error="interrupted by shutdown; sent again", next=utcnow())
            raise
        except ChannelPaused as exc:
            await self._pause_channel(name, str(exc))
            return self._release(row)
        except DeliveryError as exc:
            return self._failure(row, exc)
        except Exception as exc:  # noqa: BLE001 - a channel bug is a temporary failure of this row
            log.exception("%s channel raised on delivery %s", name, row["id"])
            return self._failure(row, TemporaryError(f"unexpected error: {exc!r}"))
        self._stats["sent"] += 1
        self.sent_total += 1
        self._add(row, DeliveryState.SENT, sent=utcnow(), ext=sent.external_id)

    # -- outcomes ------------------------------------------------------------------------------------
    def _failure(self, row: ClaimedRow, err: DeliveryError) -> None:
        d = self.cfg.delivery
        v = policy.after_failure(err, row["attempts"] + 1, d.max_attempts, d.retry_delays)
        if v.state == DeliveryState.FAILED:
            bounce = row["subscriber_id"] if v.bounce else None
            return self._add(row, v.state, inc=1, error=v.error, bounce_subscriber=bounce)
        if v.channel_down:
            # The server itself is unreachable: hold every row of the channel, not just this one.
            self._down[row["channel"]] = asyncio.get_running_loop().time() + v.delay
            log.warning("%s channel unavailable for %ss: %s", row["channel"], v.delay, v.error)
        self._add(row, v.state, inc=1, error=v.error, next=utcnow() + timedelta(seconds=v.delay))

    def _release(self, row: ClaimedRow, delay: float = 0.0, until: float | None = None) -> None:
        """Back to the queue without counting an attempt (shutdown, paused or unavailable channel)."""
        if until is not None:
            delay = max(until - asyncio.get_running_loop().time(), 0.0)
        self._add(row, DeliveryState.RETRY if row["attempts"] else DeliveryState.PENDING, next=utcnow() + timedelta(seconds=delay))

    def _add(self, row: ClaimedRow, state: str, **kw) -> None:
        self._stats[state] += state != DeliveryState.SENT  # "sent" is counted by _send
        if state in FINAL_STATES:
            self._progress.advance()
        self._results.append({"id": row["id"], "state": state, "item_id": row["item_id"], "digest_id": row["digest_id"],
                              "channel": row["channel"], "revision": row["revision"], **kw})
        if (self._flushing is None or self._flushing.done()) and self._flush_due():
            self._flushing = asyncio.ensure_future(self._flush())
        elif self._late is None:
            # If sends now stall (a slow or held server), no later outcome would trigger the write: what
            # is already known still reaches the database (and the live dashboard) within FLUSH_SECONDS.
            self._late = asyncio.get_running_loop().call_later(FLUSH_SECONDS, self._late_flush)
        return None

    def _flush_due(self) -> bool:
        """A full batch is waiting, or FLUSH_SECONDS have passed since the last write began."""
        if len(self._results) >= self.cfg.delivery.batch_size:
            return True
        return bool(self._results) and asyncio.get_running_loop().time() - self._last_flush >= FLUSH_SECONDS

    def _late_flush(self) -> None:
        self._late = None
        if self._results and (self._flushing is None or self._flushing.done()):
            self._flushing = asyncio.ensure_future(self._flush(force=True))

    async def _flush(self, wait: bool = False, force: bool = False) -> None:
        """Write buffered outcomes, a batch per transaction; wait=True (end of a pass) writes them all,
        also waits for a background flush, and raises; force=True writes at least one batch now."""
        if wait and self._flushing is not None and not self._flushing.done():
            await asyncio.wait({self._flushing})
        while self._results and (wait or force or self._flush_due()):
            force = False
            batch, self._results = self._results, []
            self._last_flush = asyncio.get_running_loop().time()
            limit = self.cfg.delivery.bounce_limit
            try:
                suppressed = await _db(retry_locked, lambda: outbox.record(self.db, batch, limit))
            except Exception:
                # Unwritten rows stay `sending` in the database: a later pass or recover() resends them.
                self._results[:0] = batch
                if wait:
                    raise
                log.exception("could not record %s delivery outcomes; will retry", len(batch))
                return
            if suppressed:
                self._suppressed.update(suppressed)
                log.warning("suppressed subscribers after hard bounces: %s", suppressed)

    # -- channels ------------------------------------------------------------------------------------
    async def _pause_channel(self, name: str, error: str) -> None:
        if name not in self._paused:
            self._paused.add(name)
            log.error("%s channel paused until an operator resumes it: %s", name, error)
            await _db(channel_store.pause_channel, self.db, name, error)

    def _is_down(self, name: str) -> bool:
        until = self._down.get(name)
        return until is not None and asyncio.get_running_loop().time() < until

    def _active(self, include_down: bool = False) -> list[str]:
        """Channels to claim rows for: configured here, not paused, and (unless include_down) reachable."""
        return sorted(n for n in self.channels if n not in self._paused and (include_down or not self._is_down(n)))

    def _stopping(self) -> bool:
        return self._stop is not None and self._stop.is_set()

    async def _pause_for(self, seconds: float, wake: bool = False) -> None:
        events = [e for e in (self._stop, self._wake if wake else None) if e is not None]
        if not events:
            await asyncio.sleep(seconds)
            return
        waiters = [asyncio.ensure_future(e.wait()) for e in events]
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()
