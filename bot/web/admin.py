"""The /admin dashboard: login, overview, editorial hold, sources, subscribers and failures."""
from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from urllib.parse import urlencode

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from bot import pipeline
from bot.models import DeliveryState
from bot.store import channels as channel_store
from bot.store import dashboard, delivery_log, outbox, ratelimit, utcnow
from bot.store import subscribers as subs
from bot.web.context import web
from bot.web.public import read_form
from bot.web.security import CSRF_FIELD, client_ip

log = logging.getLogger(__name__)
PAGE = 50
LOGIN_LIMIT = 10  # failed logins per IP per 15 minutes
LOGIN_WINDOW = 900
Handler = Callable[[Request], Awaitable[Response]]


def protected(handler: Handler) -> Handler:
    """Disabled page without a password, login redirect without a session, CSRF on every POST."""

    async def wrapper(request: Request) -> Response:
        w = web(request)
        if not w.admin.enabled:
            return w.render(request, "admin/disabled.html", status=503)
        if not w.admin.logged_in(request):
            return RedirectResponse("/admin/login", status_code=303)
        if request.method == "POST":
            request.state.form = form = await read_form(request)
            if not w.csrf.valid(request, form.get(CSRF_FIELD)):
                return w.message(request, "csrf_title", "csrf_body", status=403)
        return await handler(request)

    wrapper.__name__ = handler.__name__
    wrapper.__doc__ = handler.__doc__
    return wrapper


def _page(request: Request) -> int:
    try:
        return max(1, min(int(request.query_params.get("page", "1")), 100000))
    except ValueError:
        return 1


async def login(request: Request) -> Response:
    """GET shows the login form; POST checks the password (rate-limited per IP)."""
    w = web(request)
    if not w.admin.enabled:
        return w.render(request, "admin/disabled.html", status=503)
    if request.method == "GET":
        return w.render(request, "admin/login.html")
    form = await read_form(request)
    if not w.csrf.valid(request, form.get(CSRF_FIELD)):
        return w.message(request, "csrf_title", "csrf_body", status=403)
    bucket = ratelimit.bucket("login-ip", client_ip(request))
    if await w.db(ratelimit.count, w.engine, bucket, LOGIN_WINDOW) >= LOGIN_LIMIT:
        return w.render(request, "admin/login.html", {"error": "adm_login_limited"},
                        status=429)
    if not w.admin.check_password(str(form.get("password", ""))):
        await w.db(ratelimit.hit, w.engine, bucket)
        log.warning("failed admin login from %s", client_ip(request))
        return w.render(request, "admin/login.html", {"error": "adm_login_wrong"}, status=401)
    response = RedirectResponse("/admin", status_code=303)
    w.admin.start(response)
    return response


async def logout(request: Request) -> Response:
    """POST /admin/logout."""
    response = RedirectResponse("/admin/login", status_code=303)
    web(request).admin.end(response)
    return response


@protected
async def overview(request: Request) -> Response:
    """Held alerts, recent items with delivery counts, channel states and latency."""
    w = web(request)
    day_ago = utcnow() - timedelta(days=1)
    ctx = {
        "held": await w.db(dashboard.held_items, w.engine),
        "items": await w.db(dashboard.recent_items, w.engine, 50),
        "counts": await w.db(dashboard.delivery_counts, w.engine, day_ago),
        "counts_all": await w.db(dashboard.delivery_counts, w.engine),
        "latency": await w.db(dashboard.latency, w.engine, day_ago),
        "channels": await w.db(channel_store.channel_states, w.engine),
        "require_approval": w.cfg.flash.require_approval,
    }
    return w.render(request, "admin/overview.html", ctx)


@protected
async def sources_page(request: Request) -> Response:
    """Every source: status, last error, next poll, pause/resume."""
    w = web(request)
    return w.render(request, "admin/sources.html", {"sources": await w.db(dashboard.source_list, w.engine),
                                                    "now": utcnow()})


@protected
async def subscribers_page(request: Request) -> Response:
    """Subscribers by status with search and pagination."""
    w = web(request)
    status = request.query_params.get("status") or None
    mode = request.query_params.get("mode") or None
    status = status if status in subs.STATUSES else None
    mode = mode if mode in subs.MODES else None
    q = request.query_params.get("q", "")[:320]
    page = _page(request)
    rows, total = await w.db(subs.list_page, w.engine, status, mode, q or None, PAGE, (page - 1) * PAGE)
    ctx = {"rows": rows, "total": total, "page": page, "pages": max(1, -(-total // PAGE)), "q": q,
           "status": status or "", "mode": mode or "", "statuses": subs.STATUSES, "modes": subs.MODES,
           "counts": await w.db(subs.counts, w.engine)}
    return w.render(request, "admin/subscribers.html", ctx)


@protected
async def failures_page(request: Request) -> Response:
    """Failed deliveries with their errors and a retry action."""
    w = web(request)
    page = _page(request)
    rows = await w.db(delivery_log.failures, w.engine, PAGE, (page - 1) * PAGE, None, (DeliveryState.FAILED,))
    total = await w.db(delivery_log.live_in_states, w.engine, (DeliveryState.FAILED,))
    return w.render(request, "admin/failures.html", {"rows": rows, "total": total, "page": page,
                                                     "pages": max(1, -(-total // PAGE))})


@protected
async def item_page(request: Request) -> Response:
    """One alert: its deliveries per channel and revision (from the summary), sends, latency, failures."""
    w = web(request)
    item_id = request.path_params["id"]
    view = await w.db(delivery_log.alert, w.engine, item_id)
    if view is None:
        return w.message(request, "adm_item", "alv_unknown", status=404)
    failed = (DeliveryState.FAILED,)
    ctx = {"item": view, "detail_days": w.cfg.delivery.detail_days,
           "failures": await w.db(delivery_log.failures, w.engine, PAGE, 0, item_id, failed),
           "failed": await w.db(delivery_log.live_in_states, w.engine, failed, item_id)}
    return w.render(request, "admin/item.html", ctx)


def _back(path: str, notice: str, **numbers: int) -> RedirectResponse:
    # A message name and numbers, never text: the page words it in the operator's language, and a
    # crafted link cannot make the dashboard display arbitrary sentences.
    query = urlencode({"notice": notice, **{k: int(v) for k, v in numbers.items()}})
    return RedirectResponse(f"{path}?{query}", status_code=303)


@protected
async def retry(request: Request) -> Response:
    """POST: failed deliveries back to pending, due now."""
    w = web(request)
    ids = [int(v) for v in request.state.form.getlist("id") if str(v).isdigit()][:1000]
    n = await w.db(outbox.retry_deliveries, w.engine, ids)
    return _back("/admin/failures", "retried", n=n)


@protected
async def source_action(request: Request) -> Response:
    """POST /admin/sources/{id}/pause|resume (the same store write as `flashbot sources pause|resume`)."""
    from bot.store.sources import set_paused

    w = web(request)
    if request.path_params["action"] not in ("pause", "resume"):
        raise HTTPException(404)
    paused = request.path_params["action"] == "pause"
    ok = await w.db(set_paused, w.engine, request.path_params["id"], paused)
    return _back("/admin/sources", ("paused" if paused else "resumed") if ok else "unknown_source")


@protected
async def item_action(request: Request) -> Response:
    """POST /admin/items/{id}/approve|cancel: editorial control over an alert."""
    w = web(request)
    item_id, action = request.path_params["id"], request.path_params["action"]
    if action not in ("approve", "cancel"):
        raise HTTPException(404)
    if action == "approve":
        queued = await pipeline.approve(w.pipe, item_id)
        if queued is None:
            return _back("/admin", "not_held", item=item_id)
        return _back("/admin", "approved", item=item_id, n=queued)
    n = await w.db(outbox.cancel_item, w.engine, item_id)
    return _back("/admin", "cancelled", item=item_id, n=n)


@protected
async def channel_action(request: Request) -> Response:
    """POST /admin/channels/{name}/resume."""
    w = web(request)
    ok = await w.db(channel_store.resume_channel, w.engine, request.path_params["name"])
    return _back("/admin", "channel_resumed" if ok else "unknown_channel")


def routes() -> list[Route]:
    """The /admin routes."""
    return [
        Route("/admin", overview, methods=["GET"]),
        Route("/admin/login", login, methods=["GET", "POST"]),
        Route("/admin/logout", logout, methods=["POST"]),
        Route("/admin/sources", sources_page, methods=["GET"]),
        Route("/admin/sources/{id:int}/{action:str}", source_action, methods=["POST"]),
        Route("/admin/subscribers", subscribers_page, methods=["GET"]),
        Route("/admin/failures", failures_page, methods=["GET"]),
        Route("/admin/deliveries/retry", retry, methods=["POST"]),
        Route("/admin/items/{id:int}", item_page, methods=["GET"]),
        Route("/admin/items/{id:int}/{action:str}", item_action, methods=["POST"]),
        Route("/admin/channels/{name:str}/resume", channel_action, methods=["POST"]),
    ]
