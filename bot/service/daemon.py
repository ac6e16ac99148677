"""`flashbot run`: one asyncio process with the scheduler, the delivery engine, the digest,
housekeeping, WebSub and the web pages (`run --once` is bot.service.once)."""
from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import uvicorn
from starlette.applications import Starlette

from bot import digest, logs, pipeline
from bot.bounces.worker import BounceWorker
from bot.ingest import websub
from bot.web import websub as websub_routes
from bot.service.runtime import Runtime, StartupError, housekeeping, install_signals, open_runtime, remove_signals
from bot.service.scheduler import Jobs, Scheduler
from bot.store import maintenance
from bot.store.lock import InstanceLock, lock_path

__all__ = ["Service", "StartupError", "housekeeping", "open_runtime", "serve"]

log = logging.getLogger(__name__)


class _Uvicorn(uvicorn.Server):
    """uvicorn without its own signal handlers: SIGTERM/SIGINT belong to the service."""

    @contextlib.contextmanager
    def capture_signals(self):
        yield


def build_web(cfg, engine, rt: Runtime, scheduler_alive: Callable[[], bool]) -> Starlette:
    """The web app, WebSub callback routes included (one body cap, one set of security headers)."""
    from bot.web import create_app

    ctx = websub_routes.WebSubContext(engine, cfg, lambda sid, body, headers: pipeline.push(rt.pipe, sid, body, headers))
    app = create_app(cfg, engine, scheduler_alive=scheduler_alive, pipe=rt.pipe, websub=ctx)
    app.state.pages = app  # shutdown lets its confirmation mails in flight finish
    return app


def web_server(app: Starlette) -> "_Uvicorn":
    """The uvicorn server for the web app.

    proxy_headers is off: uvicorn would otherwise believe X-Forwarded-For from 127.0.0.1, letting
    anyone on the host (or a proxy's clients) pick their address. The app reads that header itself,
    from `[web] trusted_proxies` only (bot.web.limits.client_ip)."""
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="off", timeout_graceful_shutdown=5,
                            proxy_headers=False)
    return _Uvicorn(config)


def summary(cfg, engine, rt: Runtime, web_url: str | None) -> list[str]:
    """The startup summary lines: sources, channels on/off, subscribers, web address."""
    c = maintenance.summary_counts(engine)
    lines = [f"sources: {c.get('sources_active', 0)} active, {c.get('sources_paused', 0)} paused"]
    for name in ("email", "telegram"):
        section = getattr(cfg, name)
        if section is None:
            lines.append(f"{name}: off ([{name}] section absent)")
        elif name == "email":
            lines.append(f"email: on ({section.host}:{section.port}, from {section.sender})")
        else:
            chats = [t.chat for t in section.targets()]
            lines.append(f"telegram: on (channel{'s' if len(chats) > 1 else ''} {', '.join(chats)})")
    subs = {k.removeprefix("subscribers_"): v for k, v in c.items() if k.startswith("subscribers_")}
    lines.append("subscribers: " + (", ".join(f"{v} {k}" for k, v in sorted(subs.items())) or "none"))
    lines.append(f"web: {web_url}" if web_url else "web: off ([web] enabled = false)")
    lines.append(f"digest: {cfg.digest.schedule} ({cfg.bot.timezone})" if cfg.digest.enabled else "digest: off")
    return lines + [f"warning: {w}" for w in rt.warnings]


def _listen(cfg):
    """Bind the web socket ourselves so a busy port is a clear StartupError, not uvicorn's exit()."""
    import socket

    family = socket.AF_INET6 if ":" in cfg.web.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((cfg.web.host, cfg.web.port))
    except OSError as exc:
        sock.close()
        raise StartupError(f"web: cannot listen on {cfg.web.host}:{cfg.web.port}: {exc.strerror}") from None
    sock.listen(128)
    sock.setblocking(False)
    port = sock.getsockname()[1]
    host = f"[{cfg.web.host}]" if family == socket.AF_INET6 else cfg.web.host
    return sock, f"http://{host}:{port}"


class Service:
    """The running service: start(), then wait for `stop`, then a clean shutdown."""

    def __init__(self, cfg, engine, stop: asyncio.Event | None = None):
        self.cfg, self.engine = cfg, engine
        self.stop = stop or asyncio.Event()
        self.rt: Runtime | None = None
        self.scheduler: Scheduler | None = None
        self.web_url: str | None = None
        self._tasks: dict[str, asyncio.Task] = {}
        self._polls: set[asyncio.Task] = set()
        self._delivery_stop = asyncio.Event()
        self._server: _Uvicorn | None = None
        self.bounces: BounceWorker | None = None

    async def _poll(self, source_id: int) -> None:
        task = asyncio.current_task()
        self._polls.add(task)
        try:
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
            self.rt.delivery.wake()

    async def _housekeeping(self) -> None:
        # Stopping ends a long compaction after its current batch (its thread would hold the exit).
        await housekeeping(self.cfg, self.engine, self.stop.is_set)

    async def _websub(self) -> None:
        await websub.renew_due(self.rt.pipe.client, self.engine, self.cfg)

    async def start(self) -> list[str]:
        """Everything up: lock, channels checked, delivery, scheduler, catch-up digest, web. Returns the summary."""
        self.rt = await open_runtime(self.cfg, self.engine, lock_wait=0)
        if self.rt is None:
            lock = InstanceLock(lock_path(self.cfg))
            raise StartupError(f"another flashbot instance is running (pid {lock.holder()}, lock {lock.path})")
        try:
            digest.note_first_start(self.engine)
            self._tasks["delivery"] = asyncio.create_task(self.rt.delivery.run_forever(self._delivery_stop))
            bounce_lines = await self._start_bounces()
            # WebSub needs the callback routes, which live in the web server.
            push = self._websub if self.cfg.web.enabled else None
            jobs = Jobs(self._poll, self._digest, self._housekeeping, push)
            self.scheduler = Scheduler(self.cfg, self.engine, jobs)
            self.scheduler.start()
            await self._digest()  # a digest missed while the bot was down goes out once, now
            if self.cfg.web.enabled:
                sock, self.web_url = _listen(self.cfg)
                app = build_web(self.cfg, self.engine, self.rt, self.scheduler.alive)
                self._server = web_server(app)
                self._tasks["web"] = asyncio.create_task(self._server.serve(sockets=[sock]))
                while not self._server.started and not self._tasks["web"].done():
                    await asyncio.sleep(0.01)
        except BaseException:
            await self.shutdown()
            raise
        lines = summary(self.cfg, self.engine, self.rt, self.web_url) + bounce_lines
        logs.event(log, "started", summary="; ".join(lines))
        return lines

    async def _start_bounces(self) -> list[str]:
        """The bounce receiver, IMAP polling and processing, with `[bounces]` (none without)."""
        if self.cfg.bounces is None:
            return []
        self.bounces = BounceWorker(self.cfg, self.engine)
        try:
            return await self.bounces.start()
        except OSError as exc:
            raise StartupError(str(exc)) from None

    async def shutdown(self) -> None:
        """Stop polling, give in-flight sends `[delivery] grace_seconds`, leave the rest pending."""
        logs.event(log, "stopping", grace_seconds=self.cfg.delivery.grace_seconds)
        if self.scheduler is not None:
            self.scheduler.shutdown()
        if self.bounces is not None:
            await self.bounces.stop()
        for task in list(self._polls):
            task.cancel()
        await asyncio.gather(*self._polls, return_exceptions=True)
        self._delivery_stop.set()
        delivery = self._tasks.get("delivery")
        if delivery is not None:
            try:
                await asyncio.wait_for(asyncio.shield(delivery), self.cfg.delivery.grace_seconds + 1)
            except asyncio.TimeoutError:
                delivery.cancel()  # rows still 'sending' are retried by recover() at the next start
                await asyncio.gather(delivery, return_exceptions=True)
            except Exception as exc:  # noqa: BLE001 - shutting down anyway
                logs.event(log, "delivery_crashed", logging.ERROR, error=repr(exc))
        if self._server is not None:
            from bot.web import drain_mail

            await drain_mail(self._server.config.app.state.pages, timeout=5)
            self._server.should_exit = True
            await asyncio.gather(self._tasks["web"], return_exceptions=True)
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
            waiters = [asyncio.create_task(self.stop.wait()), *self._tasks.values()]
            done, _ = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            waiters[0].cancel()
            for task in done:
                if task is not waiters[0] and task.exception() is not None:
                    logs.event(log, "component_crashed", logging.ERROR, error=repr(task.exception()))
            await self.shutdown()
        finally:
            remove_signals(handled)
        return 0


async def serve(cfg, engine, stop: asyncio.Event | None = None, on_ready=None) -> int:
    """`flashbot run`: the whole service in this process until SIGTERM/SIGINT; returns the exit status."""
    return await Service(cfg, engine, stop).run(on_ready)
