"""Hostile-input suite: the corpus loader, how each case is served, the markup scanners and the figures log.

Every test here goes through real parts on 127.0.0.1 (feed server, aiosmtpd, Bot API stand-in) and
records what it tried in `.pytest_cache/hostile/<part>.json`; `tests/hostile/report.py` turns those
files into the figures of TESTING.md.
"""
from __future__ import annotations

import json
import os
import struct
import threading
import zlib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import pytest

from bot.demo.feedserver import FeedServer

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "hostile_corpus"
RESULTS = ROOT / ".pytest_cache" / "hostile"
SOAK = os.environ.get("FLASHBOT_SOAK") == "1"
SECRET_MARKERS = ("root:x:0:0", "daemon:x:1:1", "/usr/sbin/nologin")  # lines of /etc/passwd that must never leak


@dataclass
class Case:
    """One hand-made hostile feed of tests/hostile_corpus (manifest entry + body without its comment line)."""

    file: str
    category: str
    tests: str
    body: bytes
    expect: str = "any"  # ok | error | any
    error: str = ""  # substring of the per-source error when expect == "error"
    serve: dict = field(default_factory=dict)
    items: int | None = None
    stored: int | None = None
    title: str | None = None
    all_flash: bool = True
    telegram: bool = True
    retry_after: bool = False

    @property
    def slug(self) -> str:
        """A route- and name-safe identifier."""
        return self.file.rsplit(".", 1)[0]


def load_cases() -> list[Case]:
    """Every case of the manifest, bodies read from their files (first comment line removed, repeats expanded)."""
    manifest = json.loads((CORPUS / "manifest.json").read_text(encoding="utf-8"))
    out = []
    for entry in manifest["cases"]:
        raw = (CORPUS / entry["file"]).read_bytes()
        first, _, body = raw.partition(b"\n")
        assert first.startswith(b"<!-- HOSTILE: "), entry["file"]
        rep = entry.pop("repeat", None)
        if rep:
            many = "".join(rep["template"].replace("{i}", str(i)) for i in range(rep["count"]))
            body = body.replace(b"@@REPEAT@@", many.encode())
        out.append(Case(body=body, **entry))
    return out


@lru_cache(maxsize=4)
def gzip_bomb(megabytes: int) -> bytes:
    """A valid gzip member inflating to `megabytes` MB of zeros, about 1/1000 of that on the wire.

    Built from one 16 MB full-flush segment repeated, so nothing near the inflated size is ever in memory.
    """
    chunk = b"\0" * (1 << 24)
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    segment = comp.compress(chunk) + comp.flush(zlib.Z_FULL_FLUSH)
    tail = comp.flush()
    reps = max(1, megabytes // 16)
    crc = 0
    for _ in range(reps):
        crc = zlib.crc32(chunk, crc)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    return header + segment * reps + tail + struct.pack("<II", crc, (reps << 24) & 0xFFFFFFFF)


def serve_case(server: FeedServer, case: Case, prefix: str = "") -> str:
    """Set the routes a case needs on the feed server; return the URL a source should poll."""
    path = f"{prefix}/{case.slug}"
    s = dict(case.serve)
    kw = {k: s[k] for k in ("status", "headers", "byte_interval", "delay", "huge", "send_length") if k in s}
    if "content_type" in s:
        kw["content_type"] = s["content_type"]
    if "gzip_bomb" in s:
        server.set(path, gzip_bomb(s["gzip_bomb"]), headers={"Content-Encoding": "gzip"})
    elif "redirect" in s:
        server.set(path + "/target", case.body)
        server.redirect(path, path + "/target", s["redirect"])
    elif s.get("redirect_loop"):
        server.redirect(path, path + "/b", 302)
        server.redirect(path + "/b", path, 302)
    elif "redirect_chain" in s:
        for i in range(s["redirect_chain"]):
            server.redirect(path if i == 0 else f"{path}/{i}", f"{path}/{i + 1}", 301)
        server.set(f"{path}/{s['redirect_chain']}", case.body)
    elif "redirect_to" in s:
        server.redirect(path, s["redirect_to"], 302)
    else:
        server.set(path, case.body, **kw)
    return server.url(path)


class Figures:
    """Collects per-category counts for TESTING.md; written to .pytest_cache/hostile/<part>.json."""

    _lock = threading.Lock()

    def __init__(self, part: str):
        self.part = part
        self.rows: dict[str, dict] = {}

    def add(self, category: str, tried: int = 1, passed: int = 0, lost: int = 0, duplicates: int = 0, **extra) -> None:
        """Add counts to a category (extra numbers are summed, extra strings kept as the last value)."""
        with self._lock:
            row = self.rows.setdefault(category, {"tried": 0, "passed": 0, "lost": 0, "duplicates": 0})
            row["tried"] += tried
            row["passed"] += passed
            row["lost"] += lost
            row["duplicates"] += duplicates
            for k, v in extra.items():
                row[k] = row.get(k, 0) + v if isinstance(v, (int, float)) and not isinstance(v, bool) else v

    def write(self) -> None:
        """Persist (merging with what this part wrote earlier in the same session)."""
        RESULTS.mkdir(parents=True, exist_ok=True)
        name = f"{self.part}-soak" if SOAK else self.part  # make soak figures sit next to make test ones
        (RESULTS / f"{name}.json").write_text(json.dumps({"part": self.part, "soak": SOAK, "rows": self.rows},
                                                              indent=1, ensure_ascii=False), encoding="utf-8")


@pytest.fixture(scope="module")
def figures(request):
    """A Figures log named after the test module, written when the module ends."""
    fig = Figures(Path(request.module.__file__).stem.removeprefix("test_"))
    yield fig
    fig.write()


@pytest.fixture(scope="module")
def hostile_server():
    """One feed server shared by every case of a module (routes are distinct per case)."""
    with FeedServer() as server:
        yield server
