"""What every request handler shares (the `Web` context on app.state.web): config, database, pipeline,
templates, CSRF, admin sessions, mail; route modules receive it and never import the app."""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, select_autoescape
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from bot import templates_dir
from bot.config import Config
from bot.pipeline import Pipeline
from bot.store import ratelimit
from bot.web import localize
from bot.web.i18n import CATALOGS, translator
from bot.web.mailer import Mailer, MailJobs
from bot.web.security import AdminSession, Csrf

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
    csrf: Csrf
    admin: AdminSession
    mailer: Mailer | None
    mail_jobs: MailJobs
    scheduler_alive: Callable[[], bool] | None
    pipe: Pipeline  # approvals go through the one pipeline (and wake this process's delivery engine)
    # ratelimit.allow counts then records in a deferred SQLite transaction: two racing requests could
    # both see "under the limit". One event loop serves the pages, so one lock makes it exact.
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

    async def allow(self, bucket: str, limit: int, window_seconds: float) -> bool:
        """Count one event in a rate-limit bucket unless it is full (checks never interleave)."""
        async with self.limits:
            return await self.db(ratelimit.allow, self.engine, bucket, limit, window_seconds)

    def lang(self, request: Request, preferred: str | None = None) -> str:
        """?lang= wins, then the remembered choice (dashboard cookie), the subscriber's language, [bot] language."""
        asked = request.query_params.get("lang")
        for choice in (asked, request.cookies.get(LANG_COOKIE), preferred, self.cfg.bot.language):
            if choice in CATALOGS:
                return choice
        return "fr"

    def render(self, request: Request, name: str, ctx: dict | None = None, status: int = 200,
               lang: str | None = None) -> HTMLResponse:
        """Render templates/web/<name> with the translator, CSRF field and common values."""
        lang = lang or self.lang(request)
        full = {"_": translator(lang), "lang": lang, "bot_name": self.cfg.bot.name, "request": request,
                "csrf_field": self.csrf.field_for(request), "public_url": self.cfg.bot.public_url,
                "notice": localize.notice(request, lang), **localize.helpers(lang, self.cfg.bot.timezone),
                "csp_nonce": getattr(request.state, "csp_nonce", ""),
                **(ctx or {})}
        response = HTMLResponse(self.env.get_template(f"web/{name}").render(full), status_code=status)
        self.csrf.set_cookie(request, response)
        if request.url.path.startswith("/admin"):
            self.remember_lang(request, response)
        return response

    def remember_lang(self, request: Request, response: Response) -> None:
        """On the dashboard, ?lang= is kept in a cookie so every later page and redirect follows it."""
        asked = request.query_params.get("lang")
        if asked in CATALOGS and asked != request.cookies.get(LANG_COOKIE):
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
    """Jinja2 environment: operator overrides first, then the bundled templates; HTML autoescaped."""
    paths = [str(BUNDLED_TEMPLATES)]
    if cfg.bot.templates:
        paths.insert(0, str(cfg.resolve(cfg.bot.templates)))
    return Environment(loader=ChoiceLoader([FileSystemLoader(p) for p in paths]),
                       autoescape=select_autoescape(enabled_extensions=("html",), default=False),
                       trim_blocks=True, lstrip_blocks=True)
