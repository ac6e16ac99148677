"""What every request handler shares (the `Web` context on app.state.web): config, database, pipeline,
templates, CSRF, admin sessions, mail; route modules receive it and never import the app."""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, select_autoescape
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from bot import i18n, templates_dir
from bot.config import Config
from bot.pipeline import Pipeline
from bot.store import ratelimit, sessions
from bot.web import localize
from bot.web.limits import Network, client_ip, rate_key
from bot.web.mailer import Mailer, MailJobs
from bot.web.security import AdminSession, Csrf, SessionCsrf

log = logging.getLogger(__name__)
LANG_COOKIE = "fb_lang"  # Path=/admin: public pages keep following ?lang= and the subscriber's language
BUNDLED_TEMPLATES = templates_dir()


@dataclass
class Web:
    """Everything a request handler needs, stored on app.state.web."""

    cfg: Config
    engine: Engine
    key: str
    env: Environment
    csrf: Csrf  # public pages
    login_csrf: Csrf  # the admin login form (its own cookie and salt: a public page's pair is refused)
    session_csrf: SessionCsrf  # every form of a logged-in operator
    admin: AdminSession
    mailer: Mailer | None
    mail_jobs: MailJobs
    scheduler_alive: Callable[[], bool] | None
    pipe: Pipeline  # approvals go through the one pipeline (and wake this process's delivery engine)
    trusted: tuple[Network, ...] = ()  # [web] trusted_proxies
    dkim: Any = None  # the delivery DKIM signer (bot.delivery.mime), shared by every mail
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep  # the failed-login delay (tests record it)
    # ratelimit.take is atomic in the database already; one lock on this event loop also keeps the
    # checks of one process from queueing up on the database's write lock.
    limits: asyncio.Lock = field(default_factory=asyncio.Lock)
    # Figures a person reads (summary counts, the live fan-out), reused for a few seconds: one read of a
    # million rows serves every page view and every open tab in that time.
    cache: dict = field(default_factory=dict)

    async def db(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run a blocking store call off the event loop (the scheduler shares this loop)."""
        return await run_in_threadpool(fn, *args, **kwargs)

    async def cached(self, key: str, ttl: float, fn: Callable[..., Any], *args: Any) -> Any:
        """db(fn, *args), reused for `ttl` seconds under `key` (never for a decision, only for display)."""
        now = time.monotonic()
        hit = self.cache.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        value = await self.db(fn, *args)
        self.cache[key] = (now + ttl, value)
        return value

    def client(self, request: Request) -> str:
        """The client address (through `[web] trusted_proxies` only), as a rate-limit key (IPv6: its /64)."""
        return rate_key(client_ip(request, self.trusted))

    def bucket(self, kind: str, value: str) -> str:
        """A rate-limit bucket name, the value keyed with the secret key."""
        return ratelimit.bucket(kind, value, self.key)

    async def allow(self, bucket: str, limit: int, window_seconds: float) -> bool:
        """Count one event in a rate-limit bucket unless it is full (checks never interleave)."""
        async with self.limits:
            return await self.db(ratelimit.allow, self.engine, bucket, limit, window_seconds)

    async def take(self, bucket: str, limit: int, window_seconds: float) -> tuple[int, int] | None:
        """Like allow(), returning (event id, rank in the window) to give it back later, or None when full."""
        async with self.limits:
            return await self.db(ratelimit.take, self.engine, bucket, limit, window_seconds)

    async def session(self, request: Request) -> str | None:
        """The operator's open session id (signed cookie AND a row in admin_sessions), or None."""
        sid = self.admin.cookie_session(request)
        if sid is None or not await self.db(sessions.valid, self.engine, sid):
            return None
        request.state.admin_session = sid
        return sid

    def csrf_field(self, request: Request) -> str:
        """The CSRF field of this page: per session on the dashboard, the login scope before, public elsewhere."""
        if request.url.path.startswith("/admin"):
            sid = getattr(request.state, "admin_session", None)
            return self.session_csrf.field_for(sid) if sid else self.login_csrf.field_for(request)
        return self.csrf.field_for(request)

    def lang(self, request: Request, preferred: str | None = None) -> str:
        """?lang= wins, then the remembered choice (dashboard cookie), the subscriber's language, [bot] language."""
        asked = request.query_params.get("lang")
        for choice in (asked, request.cookies.get(LANG_COOKIE), preferred, self.cfg.bot.language):
            if choice in i18n.available():
                return choice
        return i18n.pick_language(None, self.cfg.bot.language)

    def render(self, request: Request, name: str, ctx: dict | None = None, status: int = 200,
               lang: str | None = None) -> HTMLResponse:
        """Render templates/web/<name> in one language (`_()` reads `lang`), with the CSRF field and common values."""
        lang = lang or self.lang(request)
        full = {"lang": lang, "bot_name": self.cfg.bot.name, "request": request,
                "csrf_field": self.csrf_field(request), "public_url": self.cfg.bot.public_url,
                "notice": localize.notice(request, lang), **localize.helpers(lang, self.cfg.bot.timezone),
                "csp_nonce": getattr(request.state, "csp_nonce", ""),
                **(ctx or {})}
        response = HTMLResponse(self.env.get_template(f"web/{name}").render(full), status_code=status)
        self.csrf.set_cookie(request, response)
        self.login_csrf.set_cookie(request, response)
        if request.url.path.startswith("/admin"):
            self.remember_lang(request, response)
        return response

    def remember_lang(self, request: Request, response: Response) -> None:
        """On the dashboard, ?lang= is kept in a cookie so every later page and redirect follows it."""
        asked = request.query_params.get("lang")
        if asked in i18n.available() and asked != request.cookies.get(LANG_COOKIE):
            response.set_cookie(LANG_COOKIE, asked, max_age=365 * 86400, path="/admin", httponly=True,
                                samesite="lax", secure=self.csrf.secure)

    def message(self, request: Request, title_key: str, body_key: str, status: int = 200,
                lang: str | None = None, **extra: Any) -> HTMLResponse:
        """A simple page with a title and one paragraph (errors, confirmations)."""
        return self.render(request, "message.html", {"title_key": title_key, "body_key": body_key, **extra},
                           status=status, lang=lang)


def web(request: Request) -> Web:
    """The Web context of the running app."""
    return request.app.state.web


def make_env(cfg: Config) -> Environment:
    """Jinja2 environment with the i18n extension: operator overrides first, then the bundled templates; HTML autoescaped."""
    paths = [str(BUNDLED_TEMPLATES)]
    if cfg.bot.templates:
        paths.insert(0, str(cfg.resolve(cfg.bot.templates)))
    return i18n.install(Environment(loader=ChoiceLoader([FileSystemLoader(p) for p in paths]),
                                    autoescape=select_autoescape(enabled_extensions=("html",), default=False),
                                    trim_blocks=True, lstrip_blocks=True))
