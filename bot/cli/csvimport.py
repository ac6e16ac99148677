"""`subscribers import` streamed: a CSV of any size is read in batches with flat memory.

A first pass reads the file through (decoding and CSV syntax: a broken file is refused before anything is
written, as when it was read whole) and counts its rows; the second validates and inserts one batch per
transaction. Addresses already seen in the file live in a temporary SQLite file (not in memory), so a
duplicate is still reported with the line of its first occurrence; rejects are spooled to a temporary
file and reported in line order at the end.
"""
from __future__ import annotations

import csv
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path

from bot.addresses import InvalidAddress, normalize_email, normalize_topics
from bot.delivery import quiet
from bot.store.subscribers import LANGUAGES, MODES

COLUMNS = ("email", "mode", "language", "topics", "max_per_day", "quiet_hours", "timezone")


class BadFile(ValueError):
    """The file cannot be imported at all (encoding, CSV syntax, no email column)."""


def _open(path: Path):
    # newline="" as the csv module wants; utf-8-sig drops a spreadsheet's byte order mark.
    return path.open("r", encoding="utf-8-sig", newline="")


def _columns(header: list[str]) -> dict[str, int]:
    """Where each known column is (case and spaces ignored; the last of duplicates wins, as csv.DictReader)."""
    found = {(name or "").strip().lower(): i for i, name in enumerate(header)}
    if "email" not in found:
        raise BadFile("no 'email' column in the header line")
    return {k: found[k] for k in COLUMNS if k in found}


def check(path: Path) -> int:
    """Read the whole file once (UTF-8 and CSV syntax); return its data rows. BadFile/OSError otherwise."""
    try:
        with _open(path) as handle:
            reader = csv.reader(handle)
            _columns(next(reader, []))
            return sum(1 for row in reader if row)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise BadFile(str(exc)) from None


class Seen:
    """Keys read so far (addresses, feed URLs) with their first line, in a temporary SQLite file (memory stays flat)."""

    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="flashbot-import-")
        self.db = sqlite3.connect(Path(self._dir.name) / "seen.db")
        self.db.executescript("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA cache_size=-8000;"
                              "CREATE TABLE seen (key TEXT PRIMARY KEY, line INTEGER NOT NULL) WITHOUT ROWID;")

    def first_lines(self, keys: list[str]) -> dict[str, int]:
        """{key: line} for the keys already seen."""
        out: dict[str, int] = {}
        for i in range(0, len(keys), 900):
            part = keys[i:i + 900]
            out.update(self.db.execute(f"SELECT key, line FROM seen WHERE key IN ({','.join('?' * len(part))})", part))
        return out

    def add(self, pairs: list[tuple[str, int]]) -> None:
        """Remember these (key, line) pairs."""
        self.db.executemany("INSERT INTO seen VALUES (?, ?)", pairs)

    def close(self) -> None:
        """Delete the temporary file."""
        self.db.close()
        self._dir.cleanup()


class Rejects:
    """(line, reason) pairs spooled to a temporary file, read back in order."""

    def __init__(self) -> None:
        self.file = tempfile.TemporaryFile("w+", encoding="utf-8")
        self.count = 0

    def add(self, line: int, reason: str) -> None:
        """Keep one reject."""
        self.file.write(f"{line}\t{reason.replace(chr(10), ' ')}\n")
        self.count += 1

    def __iter__(self) -> Iterator[tuple[int, str]]:
        self.file.seek(0)
        for text in self.file:
            line, _, reason = text.rstrip("\n").partition("\t")
            yield int(line), reason

    def close(self) -> None:
        """Delete the spool."""
        self.file.close()


_TOPICS: dict[str, list[str]] = {}  # raw topics text → normalized (lists repeat across a file)


def _topics(raw: str) -> list[str]:
    found = _TOPICS.get(raw)
    if found is None:
        found = normalize_topics(raw)
        if len(_TOPICS) < 4096:
            _TOPICS[raw] = found
    return found


def _fields(row: list[str], col: dict[str, int]) -> tuple[str, ...]:
    """The known columns of a row (COLUMNS); the others are dropped at once, so a batch holds only these
    whatever else the file carries."""
    n = len(row)
    return tuple(row[i].strip() if (i := col.get(k)) is not None and i < n else "" for k in COLUMNS)  # type: ignore[return-value]


def _record(fields: tuple[str, ...], default_language: str) -> dict | str:
    """A valid record (its alert-pace cells still to check), or why the row is rejected."""
    email, mode, language, topics, cap, hours, zone = fields
    try:
        address = normalize_email(email)
    except InvalidAddress as exc:
        return f"{email!r}: {exc}"
    mode, language = mode.lower() or "both", language.lower() or default_language
    if mode not in MODES:
        return f"unknown mode {mode!r} (instant, digest or both)"
    if language not in LANGUAGES:
        return f"unknown language {language!r} ({', '.join(LANGUAGES)})"
    return {"email": address, "mode": mode, "language": language, "topics": _topics(topics), "pace": (cap, hours, zone)}


def _pace(cap: str, hours: str, zone: str) -> dict:
    """The alert-pace columns of an imported row (empty cells: no own cap, no quiet hours, [bot] zone)."""
    start, end = quiet.parse_range(hours)
    return {"max_per_day": quiet.parse_cap(cap), "quiet_start": start, "quiet_end": end, "timezone": quiet.parse_zone(zone)}


def batches(path: Path, default_language: str, rejects: Rejects, size: int) -> Iterator[tuple[list[dict], int]]:
    """(valid, new-in-this-file records; rows read) per batch of `size` rows; rejects go to `rejects`."""
    seen = Seen()
    try:
        with _open(path) as handle:
            reader = csv.reader(handle)
            col = _columns(next(reader, []))
            while True:
                rows = []
                for row in reader:
                    if row:  # csv.DictReader skipped blank lines too
                        rows.append((reader.line_num, _fields(row, col)))
                        if len(rows) == size:
                            break
                if not rows:
                    return
                yield _batch(rows, default_language, seen, rejects), len(rows)
    finally:
        seen.close()


def _batch(rows: list[tuple[int, tuple]], default_language: str, seen: Seen, rejects: Rejects) -> list[dict]:
    checked = [(line, _record(fields, default_language)) for line, fields in rows]
    earlier = seen.first_lines([r["email"] for _, r in checked if isinstance(r, dict)])
    records, new = [], []
    for line, r in checked:
        if isinstance(r, str):
            rejects.add(line, r)
        elif r["email"] in earlier:
            rejects.add(line, f"duplicate of line {earlier[r['email']]}")
        else:
            try:  # checked after duplicates, and a row refused here does not count as seen
                r.update(_pace(*r.pop("pace")))
            except quiet.LimitError as exc:
                rejects.add(line, str(exc))
                continue
            earlier[r["email"]] = line
            new.append((r["email"], line))
            records.append(r)
    seen.add(new)
    return records
