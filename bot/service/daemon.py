"""`flashbot run`: one asyncio process with the roles it is given (`--role scheduler,worker,web`,
all three by default): the scheduler (polls, WebSub renewals, digest, housekeeping; one active in a
cluster), the delivery worker, the web pages. `run --once` is bot.service.once."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from bot import digest, logs, pipeline
from bot.bounces.worker import BounceWorker
from bot.ingest import poll as ingest
from bot.ingest import websub
from bot.service.cluster import ROLES, Election, Membership
from bot.service.runtime import Runtime, StartupError, housekeeping, install_signals, open_runtime, remove_signals
from bot.service.scheduler import Jobs, Scheduler
from bot.service.webserver import WebServer, build_web, listen
from bot.store import maintenance
from bot.store.db import is_postgres
from bot.store.lock import InstanceLock, lock_path
from bot.store.postgres import listen as listen_outbox

__all__ = ["Service", "StartupError", "housekeeping", "open_runtime", "serve"]

log = logging.getLogger(__name__)


def summary(cfg, engine, rt: Runtime, roles: list[str], web_url: str | None) -> list[str]:
    """The startup summary lines: roles, sources, channels on/off, subscribers, web address."""
    c = maintenance.summary_counts(engine)
    backend = "PostgreSQL (cluster)" if is_postgres(engine) else "SQLite (single instance)"
    lines = [f"roles: {','.join(roles)} (instance {rt.instance_id}; {backend})",
             f"sources: {c.get('sources_active', 0)} active, {c.get('sources_paused', 0)} paused"]
    for name in ("email", "telegram"):
        section = getattr(cfg, name)
        if section is None:
            lines.append(f"{name}: off ([{name}] section absent)")
        elif "worker" not in roles:
            lines.append(f"{name}: on, sent by the worker processes")
        elif name == "email":
            lines.append(f"email: on ({section.host}:{section.port}, from {section.sender})")
        else:
            chats = [t.chat for t in section.targets()]
            lines.append(f"telegram: on (channel{'s' if len(chats) > 1 else ''} {', '.join(chats)})")
    subs = {k.removeprefix("subscribers_"): v for k, v in c.items() if k.startswith("subscribers_")}
    lines.append("subscribers: " + (", ".join(f"{v} {k}" for k, v in sorted(subs.items())) or "none"))
    if "web" not in roles:
        lines.append("web: not in this process's roles")
    else:
        lines.append(f"web: {web_url}" if web_url else "web: off ([web] enabled = false)")
    lines.append(f"digest: {cfg.digest.schedule} ({cfg.bot.timezone})" if cfg.digest.enabled else "digest: off")
    return lines + [f"warning: {w}" for w in rt.warnings]


class Service:
    """The running service: start(), then wait for `stop`, then a clean shutdown."""

    def __init__(self, cfg, engine, stop: asyncio.Event | None = None, roles: list[str] | None = None):
        self.cfg, self.engine = cfg, engine
        self.roles = list(roles or ROLES)
        self.stop = stop or asyncio.Event()
        self.rt: Runtime | None = None
        self.scheduler: Scheduler | None = None
        self.election: Election | None = None
        self.membership: Membership | None = None
        self.web_url: str | None = None
        self._tasks: dict[str, asyncio.Task] = {}
        self._polls: set[asyncio.Task] = set()
        self._parts_stop = asyncio.Event()  # delivery, listener, heartbeat, election
        self._web: WebServer | None = None
        self.bounces: BounceWorker | None = None  # receiving (web role) and processing (active scheduler)
        self.bounce_lines: list[str] = []

    # -- scheduler jobs ------------------------------------------------------------------------------
    async def _poll(self, source_id: int) -> None:
        task = asyncio.current_task()
        self._polls.add(task)
        try:
            if not await self.election.still_leading():
                return  # the lock was lost (database restart): the next scheduler polls it
            report = await pipeline.refresh(self.rt.pipe, source_id)
            if report.result.hub_url and self.cfg.websub.enabled and self.cfg.web.enabled:
                await self._websub()  # a feed declaring a hub: subscribe now, not at the next renewal tick
        except asyncio.CancelledError:
            # Only shutdown cancels polls; ending quietly keeps APScheduler from logging a traceback.
            logs.event(log, "poll_interrupted", source_id=source_id)
        finally:
            self._polls.discard(task)

    async def _digest(self) -> None:
        result = await asyncio.to_thread(digest.send_due, self.engine, self.cfg)
        if result and result.get("queued"):
            self.rt.pipe.wake()  # this process's worker; NOTIFY wakes the others

    async def _housekeeping(self) -> None:
        # Stopping ends a long compaction after its current batch (its thread would hold the exit).
        await housekeeping(self.cfg, self.engine, self.stop.is_set)

    async def _websub(self) -> None:
        await websub.renew_due(self.rt.pipe.client, self.engine, self.cfg)

    async def _elected(self) -> None:
        """Became the active scheduler: sources from the config, owed alerts, jobs, the missed digest."""
        if self.rt.lock is None:  # PostgreSQL: the single-process start did not do these
            await asyncio.to_thread(ingest.sync_sources, self.engine, self.cfg)
            await asyncio.to_thread(pipeline.requeue_owed, self.cfg, self.engine)
        digest.note_first_start(self.engine)
        push = self._websub if self.cfg.web.enabled else None  # the callback is served by the web role
        self.scheduler = Scheduler(self.cfg, self.engine, Jobs(self._poll, self._digest, self._housekeeping, push))
        self.scheduler.start()
        if self.bounces is not None:  # one processor (and IMAP poller) per cluster: the active scheduler
            self.bounce_lines += await self.bounces.start_processing()
        await self._digest()  # a digest missed while no scheduler ran goes out once, now

    async def _deposed(self) -> None:
        if self.scheduler is not None:
            self.scheduler.shutdown()
            self.scheduler = None
        if self.bounces is not None:
            await self.bounces.stop_processing()
        for task in list(self._polls):
            task.cancel()
        await asyncio.gather(*self._polls, return_exceptions=True)

    def _scheduler_alive(self) -> bool:
        """For /healthz: a standby is healthy; the active scheduler is when its jobs run."""
        return not self.election.leading or (self.scheduler is not None and self.scheduler.alive())

    # -- start and stop ------------------------------------------------------------------------------
    async def start(self) -> list[str]:
        """Start this process's roles. Returns the summary lines."""
        worker = "worker" in self.roles
        self.rt = await open_runtime(self.cfg, self.engine, lock_wait=0, worker=worker, exclusive=False)
        if self.rt is None:
            lock = InstanceLock(lock_path(self.cfg))
            raise StartupError(
                f"another flashbot instance is running (pid {lock.holder()}, lock {lock.path}); SQLite allows "
                "one instance per database: to run several processes or machines, use PostgreSQL "
                '([bot] database = "postgresql://user@host/db", see docs/operations.md "Scaling out")')
        try:
            await self._start_parts(worker)
        except BaseException:
            await self.shutdown()
            raise
        lines = summary(self.cfg, self.engine, self.rt, self.roles, self.web_url) + self.bounce_lines
        logs.event(log, "started", summary="; ".join(lines))
        return lines

    async def _start_parts(self, worker: bool) -> None:
        if self.cfg.bounces is not None and ("web" in self.roles or "scheduler" in self.roles):
            self.bounces = BounceWorker(self.cfg, self.engine)
            if "web" in self.roles:  # like the pages and the webhooks: every web replica receives
                try:
                    self.bounce_lines += await self.bounces.start_receiving()
                except OSError as exc:
                    raise StartupError(str(exc)) from None
        delivery = self.rt.delivery
        sent = (lambda: delivery.sent_total) if delivery else (lambda: 0)
        self.election = Election(self.engine, self._elected, self._deposed)
        self.membership = Membership(self.engine, self.rt.instance_id, self.roles, sent, lambda: self.election.leading)
        await asyncio.to_thread(self.membership.register)
        self._tasks["heartbeat"] = asyncio.create_task(self.membership.run(self._parts_stop))
        if worker:
            self._tasks["delivery"] = asyncio.create_task(delivery.run_forever(self._parts_stop))
            if is_postgres(self.engine):  # rows queued by any process wake this worker at once
                self._tasks["listener"] = asyncio.create_task(listen_outbox(self.engine, delivery.wake, self._parts_stop))
        if "scheduler" in self.roles:
            self._tasks["election"] = asyncio.create_task(self.election.run(self._parts_stop))
            if self.rt.lock is not None:  # SQLite: this process is the scheduler; start it before serving
                while not self.election.leading and not self._tasks["election"].done():
                    await asyncio.sleep(0.01)
        if "web" in self.roles and self.cfg.web.enabled:
            sock, self.web_url = listen(self.cfg)
            alive = self._scheduler_alive if "scheduler" in self.roles else None
            self._web = WebServer(build_web(self.cfg, self.engine, self.rt.pipe, alive), sock)
            self._tasks["web"] = await self._web.start()

    async def shutdown(self) -> None:
        """Stop polling, give in-flight sends `[delivery] grace_seconds`, leave the rest pending."""
        logs.event(log, "stopping", grace_seconds=self.cfg.delivery.grace_seconds)
        self._parts_stop.set()
        election = self._tasks.pop("election", None)
        if election is not None:
            await asyncio.gather(election, return_exceptions=True)  # steps down: jobs and polls stop
        await self._deposed()
        if self.bounces is not None:
            await self.bounces.stop()  # the receiver stops taking mail; what it stored waits
        delivery = self._tasks.pop("delivery", None)
        if delivery is not None:
            try:
                await asyncio.wait_for(asyncio.shield(delivery), self.cfg.delivery.grace_seconds + 1)
            except asyncio.TimeoutError:
                delivery.cancel()  # rows still 'sending' come back when their lease expires
                await asyncio.gather(delivery, return_exceptions=True)
            except Exception as exc:  # noqa: BLE001 - shutting down anyway
                logs.event(log, "delivery_crashed", logging.ERROR, error=repr(exc))
        if self._web is not None:
            await self._web.stop()
            self._tasks.pop("web", None)
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        if self.membership is not None:
            await asyncio.to_thread(self.membership.leave)
        if self.rt is not None:
            await self.rt.close()
        logs.event(log, "stopped")

    async def run(self, on_ready: Callable[[list[str]], None] | None = None) -> int:
        """Start, serve until SIGTERM/SIGINT (or `stop`), shut down cleanly; exit status 0."""
        handled = install_signals(self.stop)
        try:
            lines = await self.start()
            if on_ready is not None:
                on_ready(lines)
            watched = [t for name, t in self._tasks.items() if name in ("delivery", "web", "election")]
            waiters = [asyncio.create_task(self.stop.wait()), *watched]
            done, _ = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            waiters[0].cancel()
            for task in done:
                if task is not waiters[0] and task.exception() is not None:
                    logs.event(log, "component_crashed", logging.ERROR, error=repr(task.exception()))
            await self.shutdown()
        finally:
            remove_signals(handled)
        return 0


async def serve(cfg, engine, stop: asyncio.Event | None = None, on_ready=None, roles: list[str] | None = None) -> int:
    """`flashbot run`: this process's roles until SIGTERM/SIGINT; returns the exit status."""
    return await Service(cfg, engine, stop, roles).run(on_ready)
