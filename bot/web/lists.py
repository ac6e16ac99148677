"""/admin/subscribers and /admin/sources: search, filters and keyset paging that hold at a million rows.

Pages are addressed by a cursor (`after=` the last row shown, `before=` the first), never by an
offset: page 5,000 costs what page 1 costs (bench/pages.py measures both at 1,000,000 subscribers).
"""
from __future__ import annotations

from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bot.i18n import N_
from bot.store import listing, polls, utcnow
from bot.store import subscribers as subs
from bot.web import charts
from bot.web.admin import PAGE, protected
from bot.web.context import web

MAX_SEARCH = 320
# The state filter's labels (src_state_<state>), reached through a variable: marked for `make messages`.
STATE_KEYS = (N_("src_state_ok"), N_("src_state_failing"), N_("src_state_paused"), N_("src_state_new"),
              N_("src_state_websub"))
COUNTS_TTL = 30


def _choice(request: Request, name: str, allowed) -> str:
    value = request.query_params.get(name, "")
    return value if value in allowed else ""


def _cursor_id(request: Request, name: str) -> int | None:
    value = request.query_params.get(name, "")
    return int(value) if value.isdigit() and len(value) <= 12 else None


def _cursor_text(request: Request, name: str) -> str | None:
    value = request.query_params.get(name)
    return value[:200] if value else None


def _links(path: str, filters: dict, page: listing.Page) -> dict:
    """First / previous / next page URLs keeping the filters (None where there is no such page)."""
    kept = {k: v for k, v in filters.items() if v}

    def url(**cursor) -> str:
        query = urlencode({**kept, **cursor})
        return f"{path}?{query}" if query else path
    return {"first": url() if page.prev_before is not None else None,
            "prev": url(before=page.prev_before) if page.prev_before is not None else None,
            "next": url(after=page.next_after) if page.next_after is not None else None}


@protected
async def subscribers_page(request: Request) -> Response:
    """Subscribers newest first: search, status / mode / language / origin filters, keyset pages."""
    w = web(request)
    filters = {"q": request.query_params.get("q", "")[:MAX_SEARCH].strip(),
               "status": _choice(request, "status", subs.STATUSES), "mode": _choice(request, "mode", subs.MODES),
               "language": _choice(request, "language", subs.LANGUAGES),
               "origin": _choice(request, "origin", ("web", "operator", "import"))}
    # The status × mode table reads every subscriber's index entry (≈0.1 s at a million): a summary,
    # refreshed every COUNTS_TTL seconds, which also gives the total of a status / mode filter.
    counts = await w.cached("subscriber-counts", COUNTS_TTL, subs.counts, w.engine)
    page = await w.db(listing.subscriber_page, w.engine, filters["status"] or None, filters["mode"] or None,
                      filters["language"] or None, filters["origin"] or None, filters["q"] or None, PAGE,
                      _cursor_id(request, "after"), _cursor_id(request, "before"), 0, counts)
    ctx = {"page": page, "rows": page.rows, **filters, "links": _links("/admin/subscribers", filters, page),
           "statuses": subs.STATUSES, "modes": subs.MODES, "languages": subs.LANGUAGES,
           "origins": ("web", "operator", "import"), "counts": counts}
    return w.render(request, "admin/subscribers.html", ctx)


@protected
async def sources_page(request: Request) -> Response:
    """Sources by name: search, state filter, keyset pages, and each one's last polls."""
    w = web(request)
    filters = {"q": request.query_params.get("q", "")[:MAX_SEARCH].strip(),
               "state": _choice(request, "state", listing.SOURCE_STATES)}
    page = await w.db(listing.source_page, w.engine, filters["q"] or None, filters["state"] or None, PAGE,
                      _cursor_text(request, "after"), _cursor_text(request, "before"))
    history = await w.db(polls.recent, w.engine, [r["id"] for r in page.rows])
    labels = charts.Labels(w.lang(request), w.cfg.bot.timezone)
    strips = {sid: charts.strip(h, labels) for sid, h in history.items()}
    ctx = {"page": page, "sources": page.rows, "strips": strips, **filters, "states": listing.SOURCE_STATES,
           "links": _links("/admin/sources", filters, page), "now": utcnow(), "slots": polls.HISTORY_SLOTS}
    return w.render(request, "admin/sources.html", ctx)


def routes() -> list[Route]:
    """/admin/subscribers and /admin/sources."""
    return [Route("/admin/subscribers", subscribers_page, methods=["GET"]),
            Route("/admin/sources", sources_page, methods=["GET"])]
