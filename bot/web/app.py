"""The Starlette application factory: routes, error pages, security headers (the shared context is bot.web.context)."""
from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bot.config import Config
from bot.delivery import mime
from bot.pipeline import Pipeline
from bot.tokens import secret_key
from bot.web import admin, bounces, desk, lists, live, metrics, public, webhooks
from bot.web import websub as websub_routes
from bot.web.context import BUNDLED_TEMPLATES, Web, make_env, web
from bot.web.limits import BodyLimit, parse_networks
from bot.web.mailer import Mailer, MailJobs, SMTPMailer
from bot.web.security import LOGIN_CSRF_COOKIE, SESSION_HOURS, AdminSession, Csrf, SecurityHeaders, SessionCsrf

log = logging.getLogger(__name__)


async def _http_error(request: Request, exc: Exception) -> Response:
    w = web(request)
    status = getattr(exc, "status_code", 500)
    if status == 404:
        return w.message(request, "not_found_title", "not_found_body", status=404)
    if status == 405:
        return Response("Method Not Allowed", status_code=405, headers=getattr(exc, "headers", None))
    return w.message(request, "error_title", "error_body", status=status)


async def _crash(request: Request, exc: Exception) -> Response:
    # The traceback goes to the log only: error pages never show internals or secrets.
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return web(request).message(request, "error_title", "error_body", status=500)


async def _stylesheet(request: Request) -> Response:
    css = (BUNDLED_TEMPLATES / "web" / "style.css").read_text(encoding="utf-8")
    return Response(css, media_type="text/css", headers={"cache-control": "public, max-age=3600"})


@asynccontextmanager
async def _lifespan(app: Starlette) -> AsyncIterator[None]:
    yield
    # Served with lifespan on: confirmation mails still in flight get a few seconds to go out.
    await drain_mail(app)


async def drain_mail(app: Starlette, timeout: float = 5) -> int:
    """Let the confirmation mails in flight finish (cancel after `timeout`); return how many were cut."""
    left = await app.state.web.mail_jobs.drain(timeout)
    if left:
        log.warning("%d confirmation mails not sent: still waiting for SMTP at shutdown", left)
    return left


def create_app(cfg: Config, engine: Engine, *, scheduler_alive: Callable[[], bool] | None = None,
               mailer: Mailer | None = None, pipe: Pipeline | None = None,
               websub: websub_routes.WebSubContext | None = None) -> Starlette:
    """The web app: sign-up, confirm, unsubscribe, preferences, /admin, /healthz, /metrics and, given
    `websub`, the WebSub callbacks (behind the same body cap and security headers).

    `pipe` is the process's pipeline (the service passes its own, whose wake() reaches its delivery
    engine); a web-only app gets one whose rows a delivery engine elsewhere picks up."""
    key = secret_key(engine, cfg.web.secret_key)
    secure = cfg.bot.public_url.startswith("https://")
    if mailer is None and cfg.email is not None:
        mailer = SMTPMailer(cfg.email)
    if cfg.email is None:
        log.warning("[email] is off: the sign-up page cannot send confirmation mails")
    if not cfg.web.metrics_token:
        log.info("/metrics is off: set [web] metrics_token (or FLASHBOT_METRICS_TOKEN) to scrape it")
    login_csrf = Csrf(key, secure, scope="admin-login", cookie=LOGIN_CSRF_COOKIE, path="/admin",
                      max_age=SESSION_HOURS * 3600, samesite="strict")
    state = Web(cfg=cfg, engine=engine, key=key, env=make_env(cfg), csrf=Csrf(key, secure), login_csrf=login_csrf,
                session_csrf=SessionCsrf(key), admin=AdminSession(key, cfg.web.admin_password, secure),
                mailer=mailer, mail_jobs=MailJobs(), scheduler_alive=scheduler_alive,
                pipe=pipe or Pipeline(cfg, engine), trusted=parse_networks(cfg.web.trusted_proxies),
                dkim=mime.signer_for(cfg))
    hooks = webhooks.Webhooks(state)
    routes = [Route("/static/style.css", _stylesheet), *public.routes(), *admin.routes(), *desk.routes(),
              *lists.routes(), *live.routes(), *bounces.routes(), *metrics.routes(state), *hooks.routes()]
    if websub is not None:
        routes += websub_routes.routes(websub)
    app = Starlette(routes=routes, exception_handlers={HTTPException: _http_error, Exception: _crash},
                    lifespan=_lifespan)
    app.state.web = state
    app.state.websub = websub
    app.state.bounce_hooks = hooks  # tests point its SNS certificate fetch at a local server
    # Outermost first: every answer (413s included) gets the headers; every body is capped while it streams.
    app.add_middleware(BodyLimit, caps={"/websub/": cfg.fetch.max_bytes, "/webhooks/": webhooks.MAX_BODY})
    app.add_middleware(SecurityHeaders)
    return app
