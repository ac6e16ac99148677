"""Storage: every database side effect of Flashbot lives in this package."""
from bot.store.db import retry_locked, utcnow  # noqa: F401
from bot.store.migrate import open_db  # noqa: F401
from bot.store import schema  # noqa: F401
