"""The instance lock: one `flashbot run`/`run --once` at a time per database (fcntl.flock on a file)."""
from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
import time
from pathlib import Path


def lock_path(cfg) -> Path:
    """`<database>.lock` next to a SQLite file; for server databases, a per-URL file in the temp dir."""
    url = cfg.database_url
    if url.startswith("sqlite:///") and ":memory:" not in url:
        return Path(url.removeprefix("sqlite:///") + ".lock")
    return Path(tempfile.gettempdir()) / f"flashbot-{hashlib.sha256(url.encode()).hexdigest()[:16]}.lock"


class InstanceLock:
    """An exclusive flock, released on close or when the process dies (even by SIGKILL)."""

    def __init__(self, path: Path):
        self.path = path
        self._fd: int | None = None

    def acquire(self, wait: float = 0.0) -> bool:
        """Take the lock, waiting up to `wait` seconds; False if another instance keeps it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    return False
                time.sleep(0.1)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return True

    def holder(self) -> str:
        """The pid written by the current holder (for messages)."""
        try:
            return self.path.read_text().strip() or "?"
        except OSError:
            return "?"

    def release(self) -> None:
        """Drop the lock."""
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
