"""The /admin dashboard: login, overview (live fan-out and charts), editorial hold, failures, and the
actions; the subscriber and source lists are bot.web.lists, the live section bot.web.live."""
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
from bot.store import instances as instance_store
from bot.store import dashboard, delivery_log, outbox, ratelimit, sessions, utcnow
from bot.web import charts, live
from bot.web.context import Web, web
from bot.web.public import read_form
from bot.web.security import CSRF_FIELD, SESSION_HOURS

log = logging.getLogger(__name__)
PAGE = 50
TABLES_TTL = 10
LOGIN_LIMIT = 10  # failed logins per client address (IPv6: per /64) per 15 minutes
LOGIN_GLOBAL_LIMIT = 100  # failed logins from everywhere per 15 minutes: a botnet's ceiling
LOGIN_WINDOW = 900
LOGIN_DELAY = 0.5  # seconds before answering the first failure; doubles with each one, up to LOGIN_DELAY_MAX
LOGIN_DELAY_MAX = 8.0
Handler = Callable[[Request], Awaitable[Response]]


def protected(handler: Handler) -> Handler:
    """Disabled page without a password, login redirect without an open session, session CSRF on every POST."""

    async def wrapper(request: Request) -> Response:
        w = web(request)
        if not w.admin.enabled:
            return w.render(request, "admin/disabled.html", status=503)
        sid = await w.session(request)
        if sid is None:
            return RedirectResponse("/admin/login", status_code=303)
        if request.method == "POST":
            request.state.form = form = await read_form(request)
            if not w.session_csrf.valid(sid, form.get(CSRF_FIELD)):
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


def login_delay(failures: int) -> float:
    """Seconds to wait before answering the n-th recent failed login of one address."""
    return min(LOGIN_DELAY_MAX, LOGIN_DELAY * 2 ** max(0, failures - 1))


async def _reserve_attempt(w: Web, client: str) -> tuple[list[int], int] | None:
    """Count this attempt in the per-address and the global bucket, atomically: (event ids, this
    attempt's rank for the address), or None when either bucket is full."""
    mine = await w.take(w.bucket("login-ip", client), LOGIN_LIMIT, LOGIN_WINDOW)
    if mine is None:
        return None
    everyone = await w.take(w.bucket("login-all", "*"), LOGIN_GLOBAL_LIMIT, LOGIN_WINDOW)
    if everyone is None:
        await w.db(ratelimit.give_back, w.engine, [mine[0]])
        log.warning("admin login refused: %d failed logins from all addresses in %d s", LOGIN_GLOBAL_LIMIT,
                    LOGIN_WINDOW)
        return None
    return [mine[0], everyone[0]], mine[1]


async def login(request: Request) -> Response:
    """GET shows the login form; POST checks the password (limited per address and globally, failures slowed)."""
    w = web(request)
    if not w.admin.enabled:
        return w.render(request, "admin/disabled.html", status=503)
    if request.method == "GET":
        return w.render(request, "admin/login.html")
    form = await read_form(request)
    if not w.login_csrf.valid(request, form.get(CSRF_FIELD)):
        return w.message(request, "csrf_title", "csrf_body", status=403)
    client = w.client(request)
    # Every attempt is counted BEFORE the password is looked at, in one atomic step: 100 parallel
    # guesses get exactly LOGIN_LIMIT checks. A right password gives its count back.
    attempt = await _reserve_attempt(w, client)
    if attempt is None:
        return w.render(request, "admin/login.html", {"error": "adm_login_limited"}, status=429)
    events, rank = attempt
    if not w.admin.check_password(str(form.get("password", ""))):
        log.warning("failed admin login from %s (%d in %d s)", client, rank, LOGIN_WINDOW)
        await w.sleep(login_delay(rank))
        return w.render(request, "admin/login.html", {"error": "adm_login_wrong"}, status=401)
    await w.db(ratelimit.give_back, w.engine, events)
    sid = w.admin.new_id()
    await w.db(sessions.create, w.engine, sid, timedelta(hours=SESSION_HOURS))
    response = RedirectResponse("/admin", status_code=303)
    w.admin.start(response, sid)
    return response


@protected
async def logout(request: Request) -> Response:
    """POST /admin/logout (with the session's CSRF token): the session is deleted server-side."""
    w = web(request)
    await w.db(sessions.end, w.engine, request.state.admin_session)
    response = RedirectResponse("/admin/login", status_code=303)
    w.admin.end(response)
    return response


@protected
async def overview(request: Request) -> Response:
    """Held alerts, the live fan-out, charts, recent items with delivery counts, channel states and latency."""
    w = web(request)
    now = utcnow()
    day_ago = now - timedelta(days=1)
    ctx = {
        **await live.fanout_state(request),
        "charts": await w.db(charts.overview, w.engine, w.cfg, w.lang(request), now),
        "held": await w.db(dashboard.held_items, w.engine),
        # Summary tables below the live section: grouped counts over every delivery row, shared for
        # TABLES_TTL seconds (the live section and the charts are the up-to-the-second view).
        "items": await w.cached("recent-items", TABLES_TTL, dashboard.recent_items, w.engine, 50),
        "counts": await w.cached("counts-day", TABLES_TTL, dashboard.delivery_counts, w.engine, day_ago),
        "counts_all": await w.cached("counts-all", TABLES_TTL, dashboard.delivery_counts, w.engine),
        "latency": await w.db(dashboard.latency, w.engine, day_ago),
        "channels": await w.db(channel_store.channel_states, w.engine),
        "per_chat": await w.db(dashboard.broadcast_counts, w.engine),
        "instances": await w.db(instance_store.live, w.engine),
        "require_approval": w.cfg.flash.require_approval,
    }
    return w.render(request, "admin/overview.html", ctx)


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


def back(path: str, notice: str, **numbers: int) -> RedirectResponse:
    # A message name and numbers, never text: the page words it in the operator's language, and a
    # crafted link cannot make the dashboard display arbitrary sentences.
    query = urlencode({"notice": notice, **{k: int(v) for k, v in numbers.items()}})
    return RedirectResponse(f"{path}?{query}", status_code=303)


@protected
async def retry(request: Request) -> Response:
    """POST: failed deliveries back to pending, due now."""
    w = web(request)
    w.cache.clear()  # an action changes what the summaries show: read them afresh
    ids = [int(v) for v in request.state.form.getlist("id") if str(v).isdigit()][:1000]
    n = await w.db(outbox.retry_deliveries, w.engine, ids)
    return back("/admin/failures", "retried", n=n)


@protected
async def source_action(request: Request) -> Response:
    """POST /admin/sources/{id}/pause|resume (the same store write as `flashbot sources pause|resume`)."""
    from bot.store.sources import set_paused

    w = web(request)
    w.cache.clear()  # an action changes what the summaries show: read them afresh
    if request.path_params["action"] not in ("pause", "resume"):
        raise HTTPException(404)
    paused = request.path_params["action"] == "pause"
    ok = await w.db(set_paused, w.engine, request.path_params["id"], paused)
    return back("/admin/sources", ("paused" if paused else "resumed") if ok else "unknown_source")


@protected
async def item_action(request: Request) -> Response:
    """POST /admin/items/{id}/approve|cancel: editorial control over an alert."""
    w = web(request)
    w.cache.clear()  # an action changes what the summaries show: read them afresh
    item_id, action = request.path_params["id"], request.path_params["action"]
    if action not in ("approve", "cancel"):
        raise HTTPException(404)
    if action == "approve":
        queued = await pipeline.approve(w.pipe, item_id)
        if queued is None:
            return back("/admin", "not_held", item=item_id)
        return back("/admin", "approved", item=item_id, n=queued)
    n = await w.db(outbox.cancel_item, w.engine, item_id)
    return back("/admin", "cancelled", item=item_id, n=n)


@protected
async def channel_action(request: Request) -> Response:
    """POST /admin/channels/{name}/resume."""
    w = web(request)
    w.cache.clear()  # an action changes what the summaries show: read them afresh
    ok = await w.db(channel_store.resume_channel, w.engine, request.path_params["name"])
    return back("/admin", "channel_resumed" if ok else "unknown_channel")


def routes() -> list[Route]:
    """The /admin routes."""
    return [
        Route("/admin", overview, methods=["GET"]),
        Route("/admin/login", login, methods=["GET", "POST"]),
        Route("/admin/logout", logout, methods=["POST"]),
        Route("/admin/sources/{id:rowid}/{action:str}", source_action, methods=["POST"]),
        Route("/admin/failures", failures_page, methods=["GET"]),
        Route("/admin/deliveries/retry", retry, methods=["POST"]),
        Route("/admin/items/{id:rowid}", item_page, methods=["GET"]),
        Route("/admin/items/{id:rowid}/{action:str}", item_action, methods=["POST"]),
        Route("/admin/channels/{name:str}/resume", channel_action, methods=["POST"]),
    ]
