"""The web role of `flashbot run`: the pages and the WebSub callback served by uvicorn in the
service's event loop (any number of replicas: their state is in the database)."""
from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable

import uvicorn
from starlette.applications import Starlette

from bot import pipeline
from bot.service.runtime import StartupError
from bot.web import websub as websub_routes


class _Uvicorn(uvicorn.Server):
    """uvicorn without its own signal handlers: SIGTERM/SIGINT belong to the service."""

    @contextlib.contextmanager
    def capture_signals(self):
        yield


def build_web(cfg, engine, pipe: pipeline.Pipeline, scheduler_alive: Callable[[], bool] | None) -> Starlette:
    """The web app, WebSub callback routes included (one body cap, one set of security headers);
    pushes and approvals go through `pipe`, the same pipeline as polling."""
    from bot.web import create_app

    ctx = websub_routes.WebSubContext(engine, cfg, lambda sid, body, headers: pipeline.push(pipe, sid, body, headers))
    app = create_app(cfg, engine, scheduler_alive=scheduler_alive, pipe=pipe, websub=ctx)
    app.state.pages = app  # shutdown lets its confirmation mails in flight finish
    return app


def listen(cfg) -> tuple[socket.socket, str]:
    """Bind the web socket ourselves so a busy port is a clear StartupError, not uvicorn's exit()."""
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


def web_server(app: Starlette) -> _Uvicorn:
    """The uvicorn server for the web app.

    proxy_headers is off: uvicorn would otherwise believe X-Forwarded-For from 127.0.0.1, letting
    anyone on the host (or a proxy's clients) pick their address. The app reads that header itself,
    from `[web] trusted_proxies` only (bot.web.limits.client_ip)."""
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="off", timeout_graceful_shutdown=5,
                            proxy_headers=False)
    return _Uvicorn(config)


class WebServer:
    """uvicorn serving `app` on an already-bound socket, started and stopped by the service."""

    def __init__(self, app: Starlette, sock: socket.socket):
        self.server, self.sock, self.task = web_server(app), sock, None

    async def start(self) -> asyncio.Task:
        """Serve in a task; returns it once uvicorn is listening."""
        self.task = asyncio.create_task(self.server.serve(sockets=[self.sock]))
        while not self.server.started and not self.task.done():
            await asyncio.sleep(0.01)
        return self.task

    async def stop(self) -> None:
        """Let confirmation mails in flight finish, then stop serving."""
        from bot.web import drain_mail

        await drain_mail(self.server.config.app.state.pages, timeout=5)
        self.server.should_exit = True
        await asyncio.gather(self.task, return_exceptions=True)
