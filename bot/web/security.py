"""CSRF tokens (public, admin login, per admin session), the admin session cookie and protective headers."""
from __future__ import annotations

import hashlib
import hmac
import secrets

from itsdangerous import BadSignature, TimestampSigner
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSRF_COOKIE = "fb_csrf"  # public pages (Path=/)
LOGIN_CSRF_COOKIE = "fb_admin_csrf"  # the admin login form (Path=/admin)
CSRF_FIELD = "csrf"
SESSION_COOKIE = "fb_admin"
SESSION_HOURS = 12
PUBLIC_CSRF_HOURS = 24  # a form left open longer asks to be loaded again
# No scripts anywhere; styles only from our own stylesheet; forms post only to us.
CSP = ("default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'")
# The dashboard alone may run a script: the one carrying this response's nonce (our /static/admin.js,
# which refreshes the live fan-out from /admin/live, hence connect-src 'self').
ADMIN_CSP = CSP + "; script-src 'nonce-{nonce}'; connect-src 'self'"


class Csrf:
    """Double-submit CSRF for one scope: a random cookie, and a form field that is that value signed
    with our key, the scope's salt and a timestamp.

    A cross-site page can neither read the cookie nor produce the signed field, SameSite keeps the
    cookie off cross-site posts anyway, a field from another scope (the public pages vs the admin
    login) never validates, and a field older than `max_age` seconds is refused.
    """

    def __init__(self, key: str, secure: bool, scope: str = "public", cookie: str = CSRF_COOKIE, path: str = "/",
                 max_age: int = PUBLIC_CSRF_HOURS * 3600, samesite: str = "lax") -> None:
        self._signer = TimestampSigner(key, salt=f"csrf:{scope}")
        self.secure, self.cookie, self.path, self.max_age, self.samesite = secure, cookie, path, max_age, samesite
        self._state = f"csrf_{scope}"

    def field_for(self, request: Request) -> str:
        """The hidden field value for this visitor (creating the cookie value on first need)."""
        value = getattr(request.state, self._state, None) or request.cookies.get(self.cookie)
        if not value or len(value) > 64:
            value = secrets.token_urlsafe(24)
        setattr(request.state, self._state, value)
        return self._signer.sign(value).decode()

    def set_cookie(self, request: Request, response: Response) -> None:
        """Send the cookie when this response created (or renewed) it."""
        value = getattr(request.state, self._state, None)
        if value and value != request.cookies.get(self.cookie):
            response.set_cookie(self.cookie, value, httponly=True, samesite=self.samesite, secure=self.secure,
                                path=self.path)

    def valid(self, request: Request, field: object) -> bool:
        """True when the posted field is our fresh signature of the visitor's cookie."""
        cookie = request.cookies.get(self.cookie)
        if not cookie or not isinstance(field, str) or len(field) > 200:
            return False
        try:
            value = self._signer.unsign(field, max_age=self.max_age).decode()
        except BadSignature:  # includes SignatureExpired
            return False
        return hmac.compare_digest(value, cookie)


class SessionCsrf:
    """CSRF for a logged-in operator: the field is bound to the session (an HMAC of its id, signed
    with a timestamp), so it is worthless in another session, after logout, or after `max_age`."""

    def __init__(self, key: str, max_age: int = SESSION_HOURS * 3600) -> None:
        self._key = key.encode()
        self._signer = TimestampSigner(key, salt="csrf:admin-session")
        self.max_age = max_age

    def _binding(self, session_id: str) -> str:
        # Never the session id itself: a page's HTML must not be enough to rebuild the cookie.
        return hmac.new(self._key, b"csrf|" + session_id.encode(), hashlib.sha256).hexdigest()[:32]

    def field_for(self, session_id: str) -> str:
        """The hidden field value for this session."""
        return self._signer.sign(self._binding(session_id)).decode()

    def valid(self, session_id: str, field: object) -> bool:
        """True when the field was made for this session and is not too old."""
        if not isinstance(field, str) or len(field) > 200:
            return False
        try:
            value = self._signer.unsign(field, max_age=self.max_age).decode()
        except BadSignature:
            return False
        return hmac.compare_digest(value, self._binding(session_id))


class AdminSession:
    """The admin session cookie: a random session id, signed; the database says whether it is still open.

    Changing the password changes the signing salt, which logs every session out.
    """

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

    def cookie_session(self, request: Request) -> str | None:
        """The session id of a genuine, unexpired cookie (still to be checked against the database)."""
        cookie = request.cookies.get(SESSION_COOKIE)
        if not self.enabled or not cookie or len(cookie) > 200:
            return None
        try:
            return self._signer.unsign(cookie, max_age=SESSION_HOURS * 3600).decode()
        except BadSignature:
            return None

    @staticmethod
    def new_id() -> str:
        """A fresh random session id."""
        return secrets.token_urlsafe(32)

    def start(self, response: Response, session_id: str) -> None:
        """Set the session cookie (HttpOnly, SameSite=Strict, Secure over https)."""
        value = self._signer.sign(session_id).decode()
        response.set_cookie(SESSION_COOKIE, value, max_age=SESSION_HOURS * 3600, httponly=True,
                            samesite="strict", secure=self.secure, path="/admin")

    def end(self, response: Response) -> None:
        """Drop the session cookie."""
        response.delete_cookie(SESSION_COOKIE, path="/admin", httponly=True, samesite="strict", secure=self.secure)


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
