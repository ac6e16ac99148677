"""Storage: every database side effect of Flashbot lives in this package."""
from .db import migrate, open_db, retry_locked, utcnow  # noqa: F401
from . import schema  # noqa: F401
