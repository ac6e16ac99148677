"""CSRF tokens, the admin session cookie, client addresses and protective response headers."""
from __future__ import annotations

import hashlib
import hmac
import secrets

from itsdangerous import BadSignature, Signer, TimestampSigner
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSRF_COOKIE = "fb_csrf"
CSRF_FIELD = "csrf"
SESSION_COOKIE = "fb_admin"
SESSION_HOURS = 12
# No scripts anywhere; styles only from our own stylesheet; forms post only to us.
CSP = ("default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'")
# The dashboard alone may run a script: the one carrying this response's nonce (our /static/admin.js,
# which refreshes the live fan-out from /admin/live, hence connect-src 'self').
ADMIN_CSP = CSP + "; script-src 'nonce-{nonce}'; connect-src 'self'"


class Csrf:
    """Double-submit CSRF: a random cookie, and a form field that is that value signed with our key.

    A cross-site page can neither read the cookie nor produce the signed field, and SameSite
    keeps the cookie off cross-site posts anyway.
    """

    def __init__(self, key: str, secure: bool) -> None:
        self._signer = Signer(key, salt="csrf")
        self.secure = secure

    def field_for(self, request: Request) -> str:
        """The hidden field value for this visitor (creating the cookie value on first need)."""
        value = getattr(request.state, "csrf_cookie", None) or request.cookies.get(CSRF_COOKIE)
        if not value or len(value) > 64:
            value = secrets.token_urlsafe(24)
        request.state.csrf_cookie = value
        return self._signer.sign(value).decode()

    def set_cookie(self, request: Request, response: Response) -> None:
        """Send the cookie when this response created (or renewed) it."""
        value = getattr(request.state, "csrf_cookie", None)
        if value and value != request.cookies.get(CSRF_COOKIE):
            response.set_cookie(CSRF_COOKIE, value, httponly=True, samesite="lax", secure=self.secure, path="/")

    def valid(self, request: Request, field: object) -> bool:
        """True when the posted field is our signature of the visitor's cookie."""
        cookie = request.cookies.get(CSRF_COOKIE)
        if not cookie or not isinstance(field, str) or len(field) > 200:
            return False
        try:
            value = self._signer.unsign(field).decode()
        except BadSignature:
            return False
        return hmac.compare_digest(value, cookie)


class AdminSession:
    """A signed, expiring admin session; changing the password logs every session out."""

    def __init__(self, key: str, password: str | None, secure: bool) -> None:
        self.password = password
        self.secure = secure
        fingerprint = hashlib.sha256((password or "").encode()).hexdigest()[:16]
        self._signer = TimestampSigner(key, salt=f"admin-session:{fingerprint}")

    @property
    def enabled(self) -> bool:
        """The dashboard exists only when a password is configured."""
        return bool(self.password)

    def check_password(self, attempt: str) -> bool:
        """Constant-time comparison with the configured password."""
        if not self.password:
            return False
        return hmac.compare_digest(attempt.encode("utf-8", "replace"), self.password.encode("utf-8"))

    def logged_in(self, request: Request) -> bool:
        """True when the request carries a genuine, unexpired session cookie."""
        cookie = request.cookies.get(SESSION_COOKIE)
        if not self.enabled or not cookie:
            return False
        try:
            self._signer.unsign(cookie, max_age=SESSION_HOURS * 3600)
        except BadSignature:
            return False
        return True

    def start(self, response: Response) -> None:
        """Set a fresh session cookie (HttpOnly, SameSite=Strict, Secure over https)."""
        value = self._signer.sign(secrets.token_urlsafe(16)).decode()
        response.set_cookie(SESSION_COOKIE, value, max_age=SESSION_HOURS * 3600, httponly=True,
                            samesite="strict", secure=self.secure, path="/admin")

    def end(self, response: Response) -> None:
        """Drop the session cookie."""
        response.delete_cookie(SESSION_COOKIE, path="/admin", httponly=True, samesite="strict", secure=self.secure)


def client_ip(request: Request) -> str:
    """The client address (uvicorn's --proxy-headers already resolved trusted X-Forwarded-For)."""
    return request.client.host if request.client else "unknown"


class SecurityHeaders:
    """ASGI middleware adding CSP (on /admin with a fresh script nonce, in scope["state"]["csp_nonce"]),
    no-referrer (links carry tokens), nosniff and no framing."""

    HEADERS = [
        (b"referrer-policy", b"no-referrer"),
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
        (b"cache-control", b"no-store"),
    ]

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        csp = CSP
        if scope["path"].startswith("/admin"):
            nonce = secrets.token_urlsafe(16)
            scope.setdefault("state", {})["csp_nonce"] = nonce
            csp = ADMIN_CSP.format(nonce=nonce)
        headers = [(b"content-security-policy", csp.encode()), *self.HEADERS]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in headers if k not in names]
                message["headers"] = list(message.get("headers", [])) + extra
            await send(message)

        await self.app(scope, receive, send_with_headers)
