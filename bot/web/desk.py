"""The newsroom desk on /admin: write an alert by hand, preview exactly what will leave (the email's
HTML and text, each Telegram post), send it through the one pipeline; list, inspect and correct
hand-written alerts (a correction edits the posts and mails an update to those who got it)."""
from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from urllib.parse import quote, unquote, urlencode

import nh3
from itsdangerous import BadSignature, URLSafeTimedSerializer
from markupsafe import Markup
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from bot import i18n, pipeline
from bot.delivery import preview as previews
from bot.ingest.desk import Draft, from_row, problems, split_words, to_item
from bot.models import EventKind
from bot.render.renderer import Renderer
from bot.store import dashboard, utcnow
from bot.store import desk as desk_store
from bot.text import norm_title
from bot.web.admin import protected
from bot.web.context import Web, web

EDITOR_COOKIE = "fb_editor"
# The desk shows the alert's photo and frames the email preview; everything else stays as strict as elsewhere.
PAGE_CSP = ("default-src 'none'; style-src 'self'; img-src 'self' data: https: http:; frame-src 'self'; "
            "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
# The email preview document: its inline styles and remote photo, no script, no form, sandboxed.
MAIL_CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src https: http: data:; form-action 'none'; "
            "frame-ancestors 'self'; base-uri 'none'; sandbox")
_TG_TAGS = {"b", "i", "u", "s", "a", "code", "pre", "blockquote", "span"}
_FIELDS = ("title", "body", "link", "category", "topics", "language", "image_url", "image_alt")


def _renderer(request: Request) -> Renderer:
    """One renderer per app (Jinja2 environment, CSS inliner), built on first use."""
    state = request.app.state
    if getattr(state, "desk_renderer", None) is None:
        state.desk_renderer = Renderer(web(request).cfg)
    return state.desk_renderer


def _draft(form: FormData) -> tuple[Draft, dict]:
    """The draft in a posted form, and the raw values to show back in the form."""
    values = {k: str(form.get(k, ""))[:4000].strip() for k in _FIELDS}
    values["body"] = str(form.get("body", ""))[:4000]
    chats = [str(c) for c in form.getlist("chat") if c][:50]
    values.update(email=form.get("email") == "1", chats=chats, editor=str(form.get("editor", ""))[:200].strip(),
                  nonce=str(form.get("nonce", ""))[:64], force=form.get("force") == "1")
    draft = Draft(title=values["title"], body=values["body"], link=values["link"] or None,
                  category=values["category"] or None, topics=split_words(values["topics"]),
                  language=values["language"] or None, image_url=values["image_url"] or None,
                  image_alt=values["image_alt"] or None, email=values["email"],
                  telegram=None if "auto" in chats else [c for c in chats if c != "auto"],
                  nonce=values["nonce"] or None, force=values["force"])
    return draft, values


def _fingerprint(w: Web, values: dict) -> str:
    """HMAC of what was previewed: sending requires the very draft the editor saw."""
    keep = {k: values[k] for k in (*_FIELDS, "email", "chats", "nonce")}
    return hmac.new(w.key.encode(), json.dumps(keep, sort_keys=True).encode(), hashlib.sha256).hexdigest()


def _signer(w: Web) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(w.key, salt="desk-mail-preview")


def _page(w: Web, request: Request, name: str, ctx: dict, status: int = 200) -> HTMLResponse:
    base = {"categories": [], "languages": i18n.available(),
            "chats": [(t.chat, t.language or w.cfg.telegram.language or w.cfg.bot.language)
                      for t in w.cfg.telegram.targets()] if w.cfg.telegram else [],
            "email_on": w.cfg.email is not None}
    response = w.render(request, f"admin/{name}", {**base, **ctx}, status=status)
    response.headers["content-security-policy"] = PAGE_CSP
    return response


def _defaults(request: Request, w: Web) -> dict:
    return {**{k: "" for k in _FIELDS}, "body": "", "email": True, "chats": ["auto"], "force": False,
            "editor": unquote(request.cookies.get(EDITOR_COOKIE, "")[:2000])[:200], "language": w.cfg.bot.language,
            "nonce": secrets.token_hex(16)}


async def _form(w: Web, request: Request, values: dict, errors: list[str], item: dict | None = None,
                status: int = 200) -> HTMLResponse:
    categories = await w.db(dashboard.source_categories, w.engine)
    return _page(w, request, "desk_form.html", {"values": values, "errors": errors, "item": item,
                                                "categories": categories}, status)


def telegram_html(post: str) -> Markup:
    """A Telegram post shown on the page: only Telegram's formatting tags, http(s)/tg links, line breaks kept."""
    clean = nh3.clean(post, tags=_TG_TAGS, attributes={"a": {"href"}}, url_schemes={"http", "https", "tg", "mailto"},
                      link_rel="noopener noreferrer")
    return Markup(clean.replace("\n", "<br>\n"))


async def _preview_page(w: Web, request: Request, values: dict, draft: Draft, item: dict | None = None,
                        notice_key: str | None = None) -> HTMLResponse:
    """The preview of a new alert (item None) or of a correction of `item`."""
    now = utcnow()
    built = to_item(draft, w.cfg, now, published=item["published_at"] if item else None)
    update = bool(item and item["alert_state"] in ("queued", "detected", "approved"))
    chats = sorted({d["chat"] for d in item["deliveries"] if d["chat"]}) if update else None
    row = previews.as_row(built, item["id"] if item else 0, (item["revision"] + 1) if update else 0)
    shown = previews.build(w.cfg, _renderer(request), row, draft.targets(), update=update, chats=chats)
    similar = None if item else await w.db(desk_store.similar, w.engine, w.cfg, norm_title(built.headline), built.link, now)
    token = _signer(w).dumps({"v": {k: values[k] for k in _FIELDS}, "i": item["id"] if item else None, "u": update})
    ctx = {"values": values, "shown": shown, "similar": similar, "item": item, "update": update,
           "fingerprint": _fingerprint(w, values), "mail_src": "/admin/desk/mail?" + urlencode({"d": token}),
           "posts": [(p, telegram_html(p.post.text)) for p in shown.posts], "changed": notice_key}
    return _page(w, request, "desk_preview.html", ctx)


@protected
async def desk_list(request: Request) -> Response:
    """GET /admin/desk: the hand-written alerts, newest first."""
    w = web(request)
    return _page(w, request, "desk.html", {"rows": await w.db(desk_store.recent, w.engine, 50)})


@protected
async def new_alert(request: Request) -> Response:
    """GET /admin/desk/new: the empty form."""
    w = web(request)
    return await _form(w, request, _defaults(request, w), [])


async def _checked(w: Web, request: Request, item: dict | None = None) -> tuple[Draft, dict, Response | None]:
    draft, values = _draft(request.state.form)
    if item is not None:  # a correction keeps the channels of the alert
        draft.email, draft.telegram = from_row(item).email, from_row(item).telegram
    errors = problems(draft, w.cfg) + ([] if values["editor"] else ["desk_err_editor"])
    if errors:
        return draft, values, await _form(w, request, values, errors, item, status=400)
    return draft, values, None


@protected
async def preview(request: Request) -> Response:
    """POST /admin/desk/preview: what will leave, with a send button carrying the same draft."""
    w = web(request)
    draft, values, bad = await _checked(w, request)
    return bad or await _preview_page(w, request, values, draft)


@protected
async def send(request: Request) -> Response:
    """POST /admin/desk/send: the previewed draft goes through the pipeline (approval, dedupe, outbox)."""
    w = web(request)
    draft, values, bad = await _checked(w, request)
    if bad:
        return bad
    if not hmac.compare_digest(str(request.state.form.get("fingerprint", "")), _fingerprint(w, values)):
        return await _preview_page(w, request, values, draft, notice_key="desk_changed")
    event, item_id, queued = await pipeline.hand_written(w.pipe, draft, values["editor"], "web")
    notice = ("desk_resent" if event is None else "desk_duplicate" if event.kind == EventKind.DUPLICATE
              else "desk_held" if event.kind == EventKind.HELD else "desk_sent")
    return _remember_editor(_back(item_id, notice, n=queued), w, values["editor"])


def _back(item_id: int, notice: str, **numbers: int) -> RedirectResponse:
    query = urlencode({"notice": notice, "item": item_id, **numbers})
    return RedirectResponse(f"/admin/desk/{item_id}?{query}", status_code=303)


def _remember_editor(response: Response, w: Web, editor: str) -> Response:
    # Percent-encoded: a header is Latin-1 and a name may hold any character (and ; or ").
    response.set_cookie(EDITOR_COOKIE, quote(editor, safe=""), max_age=365 * 86400, path="/admin", httponly=True, samesite="strict",
                        secure=w.csrf.secure)
    return response


async def _item(w: Web, request: Request) -> dict:
    item = await w.db(desk_store.get, w.engine, request.path_params["id"])
    if item is None:
        raise HTTPException(404)
    return item


@protected
async def show(request: Request) -> Response:
    """GET /admin/desk/{id}: who sent it and when, its history, deliveries per channel, the correction form."""
    w = web(request)
    item = await _item(w, request)
    values = {**_defaults(request, w), **vars(from_row(item)), "topics": ", ".join(item["categories"] or [])}
    values["chats"] = ["auto"] if values["telegram"] is None else values["telegram"]
    values["link"], values["image_url"], values["image_alt"] = (values[k] or "" for k in ("link", "image_url", "image_alt"))
    values["language"] = values["language"] or w.cfg.bot.language
    categories = await w.db(dashboard.source_categories, w.engine)
    return _page(w, request, "desk_item.html", {"item": item, "values": values, "errors": [], "categories": categories})


@protected
async def correct_preview(request: Request) -> Response:
    """POST /admin/desk/{id}/preview: the correction as it will leave (edited posts, the update mail)."""
    w = web(request)
    item = await _item(w, request)
    draft, values, bad = await _checked(w, request, item)
    return bad or await _preview_page(w, request, values, draft, item)


@protected
async def correct(request: Request) -> Response:
    """POST /admin/desk/{id}/send: store the new version; once alerted it is a correction."""
    w = web(request)
    item = await _item(w, request)
    draft, values, bad = await _checked(w, request, item)
    if bad:
        return bad
    if not hmac.compare_digest(str(request.state.form.get("fingerprint", "")), _fingerprint(w, values)):
        return await _preview_page(w, request, values, draft, item, notice_key="desk_changed")
    event, queued = await pipeline.correct_hand_written(w.pipe, item["id"], draft, values["editor"], "web")
    return _remember_editor(_back(item["id"], "desk_corrected" if event else "desk_unchanged", n=queued), w,
                            values["editor"])


@protected
async def mail_preview(request: Request) -> Response:
    """GET /admin/desk/mail?d=…: the email HTML of a preview, for the preview page's frame."""
    w = web(request)
    try:
        data = _signer(w).loads(request.query_params.get("d", "")[:20000], max_age=3600)
    except BadSignature:
        raise HTTPException(404) from None
    form = FormData([(k, v) for k, v in data["v"].items()] + [("email", "1")])
    draft, _ = _draft(form)
    item = await w.db(desk_store.get, w.engine, data["i"]) if data["i"] else None
    built = to_item(draft, w.cfg, utcnow(), published=item["published_at"] if item else None)
    row = previews.as_row(built, data["i"] or 0, (item["revision"] + 1) if item and data["u"] else 0)
    shown = previews.build(w.cfg, _renderer(request), row, {"email": True, "telegram": []}, update=data["u"])
    if shown.email is None:
        raise HTTPException(404)
    return HTMLResponse(shown.email.html, headers={"content-security-policy": MAIL_CSP, "x-frame-options": "SAMEORIGIN"})


def routes() -> list[Route]:
    """The desk's routes (under /admin: the dashboard's login and CSRF protect them)."""
    return [
        Route("/admin/desk", desk_list, methods=["GET"]),
        Route("/admin/desk/new", new_alert, methods=["GET"]),
        Route("/admin/desk/preview", preview, methods=["POST"]),
        Route("/admin/desk/send", send, methods=["POST"]),
        Route("/admin/desk/mail", mail_preview, methods=["GET"]),
        Route("/admin/desk/{id:rowid}", show, methods=["GET"]),
        Route("/admin/desk/{id:rowid}/preview", correct_preview, methods=["POST"]),
        Route("/admin/desk/{id:rowid}/send", correct, methods=["POST"]),
    ]
