"""The live fan-out of /admin: every alert and newsletter of the last hours with a progress bar per
channel. GET /admin/live answers that section alone; /static/admin.js (the dashboard's only script,
allowed by the page's CSP nonce) fetches it every second while a fan-out runs. Without JavaScript
the overview shows the same section and reloads itself while something is being sent."""
from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bot.store import reports, utcnow
from bot.web.context import web

SCALE = 1000  # the bars' viewBox width
FAST_MS, SLOW_MS = 1000, 10000  # refresh while a fan-out runs / otherwise
SHARED_SECONDS = 1.0  # every tab and operator asking within a second gets the same reading
# Drawn left to right; what is left of the bar's width is still to send.
SEGMENTS = ("sent", "failed", "bounced", "folded", "cancelled")


def segments(group: dict) -> list[dict]:
    """The bar of one channel: a rectangle per outcome (x, width on a 0..SCALE axis), pending last."""
    total = group["total"] or 1
    out, x = [], 0.0
    for part in (*SEGMENTS, "pending"):
        n = group[part]
        if n:
            width = n / total * SCALE
            out.append({"cls": part, "x": round(x, 1), "w": round(width, 1), "n": n})
            x += width
    return out


def view(entries: list[dict]) -> list[dict]:
    """Add each group's bar segments and completion to the store's fan-out figures."""
    for entry in entries:
        for g in entry["groups"]:
            g["segments"] = segments(g)
            g["percent"] = 100 * (g["total"] - g["pending"]) / g["total"] if g["total"] else 100
    return entries


def _read(w) -> list[dict]:
    """The store's fan-out figures, reusing the groups of entries already seen finished (a thread)."""
    entries = reports.fanouts(w.engine, utcnow(), settled=dict(w.cache.get("settled-fanouts", {})))
    w.cache["settled-fanouts"] = {(e["kind"], e["id"]): e["groups"] for e in entries if not e["running"]}
    return entries


async def fanout_state(request: Request) -> dict:
    """Template values of the live section: its entries, whether anything is still running, and how
    soon admin.js should ask again."""
    w = web(request)
    started = time.monotonic()
    entries = view(await w.cached("fanouts", SHARED_SECONDS, _read, w))
    running = any(e["running"] for e in entries)
    # Counting a huge running fan-out every second would compete with sending it: ask again after
    # five times what this answer cost, at least every second, at most every 10 seconds.
    cost = time.monotonic() - started
    refresh = min(max(FAST_MS, round(5000 * cost)), SLOW_MS) if running else SLOW_MS
    return {"live": entries, "live_running": running, "live_hours": reports.LIVE_HOURS, "live_refresh": refresh}


async def live(request: Request) -> Response:
    """GET /admin/live: the live fan-out section alone (what admin.js swaps in); 401 without a session,
    so the script can say the session expired instead of swapping in a login page."""
    w = web(request)
    if not w.admin.enabled or await w.session(request) is None:
        return Response("session expired\n", status_code=401, media_type="text/plain")
    return w.render(request, "admin/live.html", await fanout_state(request))


async def script(request: Request) -> Response:
    """GET /static/admin.js: the dashboard's script (served from our own origin, loaded with the nonce)."""
    from bot.web.context import BUNDLED_TEMPLATES

    js = (BUNDLED_TEMPLATES / "web" / "admin.js").read_text(encoding="utf-8")
    return Response(js, media_type="text/javascript", headers={"cache-control": "public, max-age=3600"})


# The dashboard's icon (a browser asks for one; answering spares its console a 404).
FAVICON = ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="3" '
           'fill="#b3001b"/><path d="M5 3h7v2H7v2h4v2H7v4H5z" fill="#fff"/></svg>')


async def favicon(request: Request) -> Response:
    """GET /static/favicon.svg."""
    return Response(FAVICON, media_type="image/svg+xml", headers={"cache-control": "public, max-age=86400"})


def routes() -> list[Route]:
    """/admin/live, /static/admin.js and /static/favicon.svg."""
    return [Route("/admin/live", live, methods=["GET"]), Route("/static/admin.js", script, methods=["GET"]),
            Route("/static/favicon.svg", favicon, methods=["GET"])]
