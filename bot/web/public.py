"""Public pages: sign-up with double opt-in, confirmation, one-click unsubscribe, preferences."""
from __future__ import annotations

import json
import logging
from urllib.parse import parse_qs

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from bot import tokens
from bot.addresses import mailbox_key
from bot.store import dashboard, signups
from bot.store import subscribers as subs
from bot.web import pace
from bot.web.context import Web, web
from bot.web.mailer import build_message, send
from bot.web.security import CSRF_FIELD

log = logging.getLogger(__name__)
HONEYPOT = "website"
MAX_TOKEN = 400


async def read_form(request: Request) -> FormData:
    """The posted form; a body without a form content type is read as urlencoded (one-click clients).

    Bodies are capped while they stream in (bot.web.limits.BodyLimit), whatever their type."""
    ctype = request.headers.get("content-type", "")
    if ctype.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        return await request.form()
    body = (await request.body())[:10000].decode("utf-8", "replace")
    return FormData([(k, v) for k, vs in parse_qs(body).items() for v in vs])


def _token(w: Web, purpose: str, token: str, max_age: float | None = None) -> tuple[int, str] | None:
    if len(token) > MAX_TOKEN:
        return None
    try:
        return tokens.read_token(w.key, purpose, token, max_age=max_age)
    except tokens.BadToken:
        return None


def _link(w: Web, purpose: str, row: dict, nonce: str | None = None) -> str:
    token = tokens.make_token(w.key, purpose, row["id"], nonce or row["token_nonce"])
    return tokens.link(w.cfg.bot.public_url, purpose, token)


async def signup_page(request: Request) -> Response:
    """GET /: the sign-up box."""
    w = web(request)
    return await _signup_form(w, request)


async def _signup_form(w: Web, request: Request, values: dict | None = None, error: str | None = None,
                       status: int = 200) -> Response:
    categories = await w.db(dashboard.source_categories, w.engine)
    lang = w.lang(request)
    defaults = {"email": "", "mode": "both", "language": lang, "topics": "", "categories": []}
    return w.render(request, "signup.html", {"values": {**defaults, **(values or {})}, "error": error,
                                             "categories": categories, "modes": subs.MODES,
                                             "languages": subs.LANGUAGES, "mail_off": w.mailer is None},
                    status=status, lang=lang)


def _choices(form: FormData, categories: list[str]) -> dict:
    picked = [c for c in form.getlist("categories") if c in categories]
    return {"email": str(form.get("email", ""))[:320], "mode": form.get("mode", "both"),
            "language": form.get("language", "fr"), "topics": str(form.get("topics", ""))[:2000],
            "categories": picked}


async def subscribe(request: Request) -> Response:
    """POST /subscribe: pending subscriber, mail after the response; the same answer for every address."""
    w = web(request)
    form = await read_form(request)
    if not w.csrf.valid(request, form.get(CSRF_FIELD)):
        return w.message(request, "csrf_title", "csrf_body", status=403)
    if w.mailer is None:
        log.error("sign-up refused: [email] is not configured, no confirmation mail can be sent")
        return w.message(request, "mail_off_title", "mail_off_body", status=503)
    if form.get(HONEYPOT):
        # Bots fill every field: pretend success, do nothing.
        return w.message(request, "check_title", "check_body")
    values = _choices(form, await w.db(dashboard.source_categories, w.engine))
    if values["mode"] not in subs.MODES or values["language"] not in subs.LANGUAGES:
        return await _signup_form(w, request, values, "invalid_choice", status=400)
    try:
        email = subs.normalize_email(values["email"])
    except subs.InvalidAddress:
        return await _signup_form(w, request, values, "invalid_email", status=400)
    if not await w.allow(w.bucket("signup-ip", w.client(request)), w.cfg.web.signup_limit_per_ip, 3600):
        return w.message(request, "rate_title", "rate_body", status=429)
    topics = subs.normalize_topics([values["topics"], *values["categories"]])
    row, outcome = await w.db(subs.signup, w.engine, email, values["mode"], values["language"], topics)
    # The mail goes out after the response, so every address gets the same page in the same time.
    w.mail_jobs.spawn(lambda: _mail_subscriber(w, row, outcome))
    return w.message(request, "check_title", "check_body")


async def _mail_subscriber(w: Web, row: dict, outcome: str) -> None:
    """Send the confirmation (or 'already subscribed') mail unless limits say no (background job)."""
    if outcome in ("new", "pending", "unsubscribed"):
        # The link names this sign-up's own request: it confirms these choices and no later ones.
        kind, link = "confirm", _link(w, tokens.CONFIRM, row, row["confirm_nonce"])
    elif outcome == "active":
        kind, link = "already", _link(w, tokens.PREFERENCES, row)
    else:
        return  # suppressed (hard bounces): mailing it again would only bounce
    # Counted per mailbox (IDNA domain, no +tag, no dots where the provider ignores them), so
    # aliases of one person share the limit; the mail still goes to the address as typed.
    addr_bucket = w.bucket("signup-addr", mailbox_key(row["email"]))
    if not await w.allow(addr_bucket, w.cfg.web.signup_limit_per_address, 86400):
        log.info("sign-up mail skipped: per-address daily limit reached")
        return
    language = row.get("confirm_language") or row["language"]
    await send(w.mailer, build_message(w.cfg, w.env, row["email"], language, kind, link, w.dkim))


async def confirm(request: Request) -> Response:
    """GET shows a confirm button (mail scanners follow links); POST activates the subscription."""
    w = web(request)
    data = _token(w, tokens.CONFIRM, request.path_params["token"], max_age=w.cfg.web.confirm_hours * 3600)
    row = await w.db(subs.get, w.engine, data[0]) if data else None
    chosen = await w.db(signups.pending_choices, w.engine, data[0], data[1]) if row else None
    # A link names its sign-up request (or, mailed before requests existed, the subscriber's nonce).
    if row is None or (chosen is None and row["token_nonce"] != data[1]) or row["status"] in ("deleted", "suppressed"):
        return w.message(request, "bad_link_title", "bad_link_body", status=400)
    lang = w.lang(request, (chosen or row)["language"])
    if request.method == "GET":
        if row["status"] == "active":
            return w.render(request, "confirmed.html", {"already": True, "prefs": _link(w, tokens.PREFERENCES, row)},
                            lang=lang)
        return w.render(request, "confirm.html", {"email": row["email"]}, lang=lang)
    form = await read_form(request)
    if not w.csrf.valid(request, form.get(CSRF_FIELD)):
        return w.message(request, "csrf_title", "csrf_body", status=403, lang=lang)
    result = await w.db(subs.confirm, w.engine, data[0], data[1])
    if result is None:
        return w.message(request, "bad_link_title", "bad_link_body", status=400, lang=lang)
    return w.render(request, "confirmed.html", {"already": result == "already",
                                                "prefs": _link(w, tokens.PREFERENCES, row)}, lang=lang)


async def unsubscribe(request: Request) -> Response:
    """RFC 8058 one-click POST unsubscribes at once; GET only shows a button (which POSTs with CSRF)."""
    w = web(request)
    data = _token(w, tokens.UNSUBSCRIBE, request.path_params["token"])
    if request.method == "POST":
        form = await read_form(request)
        one_click = form.get("List-Unsubscribe") == "One-Click"
        if not one_click and not w.csrf.valid(request, form.get(CSRF_FIELD)):
            return w.message(request, "csrf_title", "csrf_body", status=403)
        result = await w.db(subs.unsubscribe, w.engine, data[0], data[1]) if data else None
        if one_click:
            return PlainTextResponse("unsubscribed\n" if result else "invalid link\n", status_code=200 if result else 400)
        if result is None:
            return w.message(request, "bad_link_title", "bad_link_body", status=400)
        row = await w.db(subs.get, w.engine, data[0])
        return w.message(request, "unsubscribed_title", "unsubscribed_body", extra_key="resubscribe",
                         lang=w.lang(request, row["language"] if row else None))
    row = await w.db(subs.get, w.engine, data[0]) if data else None
    if row is None or row["status"] == "deleted":
        return w.message(request, "bad_link_title", "bad_link_body", status=400)
    lang = w.lang(request, row["language"])
    if row["status"] == "unsubscribed":
        return w.message(request, "unsubscribed_title", "unsubscribed_body", lang=lang, extra_key="resubscribe")
    if row["token_nonce"] != data[1]:
        return w.message(request, "bad_link_title", "bad_link_body", status=400, lang=lang)
    return w.render(request, "unsubscribe.html", {"email": row["email"]}, lang=lang)


async def _prefs_subscriber(w: Web, token: str) -> dict | None:
    data = _token(w, tokens.PREFERENCES, token)
    row = await w.db(subs.get, w.engine, data[0]) if data else None
    if row is None or row["token_nonce"] != data[1] or row["status"] in ("deleted", "unsubscribed"):
        return None
    return row


async def preferences(request: Request) -> Response:
    """GET/POST /preferences/{token}: mode, language, topics and the alert pace (cap, quiet hours, zone)."""
    w = web(request)
    row = await _prefs_subscriber(w, request.path_params["token"])
    if row is None:
        return w.message(request, "bad_link_title", "bad_link_body", status=400)
    categories = await w.db(dashboard.source_categories, w.engine)
    saved, error, status, posted = False, None, 200, None
    if request.method == "POST":
        form = await read_form(request)
        if not w.csrf.valid(request, form.get(CSRF_FIELD)):
            return w.message(request, "csrf_title", "csrf_body", status=403, lang=row["language"])
        values = _choices(form, categories)
        posted, chosen_pace, error = pace.read(form)
        if error:
            status = 400
        elif values["mode"] in subs.MODES and values["language"] in subs.LANGUAGES:
            await pace.save(w, row["id"], chosen_pace)
            posted = None
            topics = subs.normalize_topics([values["topics"], *values["categories"]])
            await w.db(subs.update_preferences, w.engine, row["id"], values["mode"], values["language"], topics)
            row = await w.db(subs.get, w.engine, row["id"])
            saved = True
        else:
            error, status = "invalid_choice", 400
    chosen = [t for t in row["topics"] if t in categories]
    free = ", ".join(t for t in row["topics"] if t not in categories)
    values = {"mode": row["mode"], "language": row["language"], "topics": free, "categories": chosen}
    return w.render(request, "preferences.html",
                    {"row": row, "values": values, "categories": categories, "modes": subs.MODES,
                     "languages": subs.LANGUAGES, "saved": saved, "error": error,
                     "token": request.path_params["token"], "unsubscribe": _link(w, tokens.UNSUBSCRIBE, row),
                     **pace.context(row, w.cfg, posted)},
                    status=status, lang=w.lang(request, row["language"]))


async def export(request: Request) -> Response:
    """GET /preferences/{token}/export: everything stored about the subscriber, as JSON."""
    w = web(request)
    row = await _prefs_subscriber(w, request.path_params["token"])
    if row is None:
        return w.message(request, "bad_link_title", "bad_link_body", status=400)
    data = await w.db(subs.export_data, w.engine, row["id"])
    body = json.dumps(data, ensure_ascii=False, indent=2, default=str)
    return Response(body, media_type="application/json",
                    headers={"content-disposition": 'attachment; filename="flashbot-data.json"'})


async def delete(request: Request) -> Response:
    """POST /preferences/{token}/delete: erase the personal data (needs the confirmation box)."""
    w = web(request)
    row = await _prefs_subscriber(w, request.path_params["token"])
    if row is None:
        return w.message(request, "bad_link_title", "bad_link_body", status=400)
    form = await read_form(request)
    if not w.csrf.valid(request, form.get(CSRF_FIELD)):
        return w.message(request, "csrf_title", "csrf_body", status=403, lang=row["language"])
    if form.get("confirm") != "yes":
        return w.message(request, "delete_title", "delete_need_check", status=400, lang=row["language"])
    await w.db(subs.erase, w.engine, row["id"])
    return w.message(request, "deleted_title", "deleted_body", lang=row["language"])


def routes() -> list[Route]:
    """The public routes."""
    return [
        Route("/", signup_page, methods=["GET"]),
        Route("/subscribe", subscribe, methods=["POST"]),
        Route("/confirm/{token}", confirm, methods=["GET", "POST"]),
        Route("/unsubscribe/{token}", unsubscribe, methods=["GET", "POST"]),
        Route("/preferences/{token}", preferences, methods=["GET", "POST"]),
        Route("/preferences/{token}/export", export, methods=["GET"]),
        Route("/preferences/{token}/delete", delete, methods=["POST"]),
    ]
