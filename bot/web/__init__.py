"""Web pages (Starlette): sign-up, confirmation, unsubscribe, preferences, /admin, /healthz, /metrics."""
from bot.web.app import create_app, drain_mail  # noqa: F401
