"""OPML import/export of sources (the format every feed reader speaks)."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import format_datetime

from bot.ingest.parse import UnsafeXML, prolog_complete, screen_entities


class OPMLError(ValueError):
    """The file is not usable OPML; the message says why."""


@dataclass
class OPMLSource:
    """One feed outline: name, URL and the folder it sat in (used as category)."""

    name: str
    url: str
    category: str | None = None


MAX_PROLOG = 4 * 1024 * 1024  # bytes before the first element: a real OPML file has a line or two


def parse_opml(data: bytes) -> list[OPMLSource]:
    """Feeds listed in an OPML document, each URL once (nested outlines give their folder as category)."""
    seen: set[str] = set()
    return [s for s in iter_opml([data]) if not (s.url in seen or seen.add(s.url))]


def iter_opml(chunks: Iterable[bytes]) -> Iterator[OPMLSource]:
    """The feed outlines of an OPML document given in chunks, as they are parsed: memory stays flat
    whatever its size (each element is dropped once read). A URL listed twice comes twice."""
    parser = ET.XMLPullParser(events=("start", "end"))
    stack: list[tuple[ET.Element, str, str | None]] = []  # element, role, folder
    started = body = False
    for chunk in _screened(chunks):
        try:
            parser.feed(chunk)
            events = list(parser.read_events())
        except ET.ParseError as exc:
            raise OPMLError(f"not valid XML: {exc}") from None
        for event, elem in events:
            if event == "start":
                if not started:
                    started = True
                    if elem.tag.lower() != "opml":
                        raise OPMLError(f"not an OPML document (root element is <{elem.tag}>)")
                role, folder = _role(elem, stack)
                body = body or role == "body"
                stack.append((elem, role, folder))
                if role == "feed":
                    label = (elem.get("title") or elem.get("text") or "").strip()
                    url = (elem.get("xmlUrl") or elem.get("xmlurl") or "").strip()
                    yield OPMLSource(" ".join((label or url).split())[:200], url, folder)
            else:
                stack.pop()
                elem.clear()
                if stack and len(stack[-1][0]):
                    del stack[-1][0][-1]  # read: detach it from its parent so nothing accumulates
    try:
        parser.close()
    except ET.ParseError as exc:
        raise OPMLError(f"not valid XML: {exc}") from None
    if not body:
        raise OPMLError("OPML document has no <body>")


def _role(elem: ET.Element, stack: list) -> tuple[str, str | None]:
    """What an element is: the root's body, a folder or a feed outline under it, or something else."""
    parent_role, folder = (stack[-1][1], stack[-1][2]) if stack else ("", None)
    if elem.tag == "body" and len(stack) == 1:
        return "body", None
    if elem.tag != "outline" or parent_role not in ("body", "folder"):
        return "other", None
    if (elem.get("xmlUrl") or elem.get("xmlurl") or "").strip():
        return "feed", folder  # its own children, if any, are not read (as before)
    return "folder", (elem.get("title") or elem.get("text") or "").strip() or folder


def _screened(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The chunks, the prolog (everything before the first element) screened for entities first."""
    head = b""
    for chunk in chunks:
        if head is None:
            yield chunk
            continue
        head += chunk
        if prolog_complete(head) or len(head) > MAX_PROLOG:
            yield _screen(head)
            head = None
    if head is not None:
        yield _screen(head)


def _screen(head: bytes) -> bytes:
    if not prolog_complete(head) and len(head) > MAX_PROLOG:
        raise OPMLError(f"refused: no element in the first {MAX_PROLOG // 1048576} MB")
    try:
        screen_entities(head)
    except UnsafeXML as exc:
        raise OPMLError(str(exc)) from None
    return head


def unique_name(name: str, taken: set[str]) -> str:
    """name, or name (2), name (3)… so imported sources never collide with existing ones."""
    candidate, n = name, 2
    while candidate in taken:
        candidate, n = f"{name} ({n})", n + 1
    taken.add(candidate)
    return candidate


def build_opml(rows, title: str = "Flashbot sources", now: datetime | None = None) -> bytes:
    """An OPML 2.0 document listing the given source rows (name, url, category)."""
    root = ET.Element("opml", version="2.0")
    head = ET.SubElement(root, "head")
    ET.SubElement(head, "title").text = title
    ET.SubElement(head, "dateCreated").text = format_datetime(now or datetime.now(timezone.utc), usegmt=True)
    body = ET.SubElement(root, "body")
    folders: dict[str, ET.Element] = {}
    for row in rows:
        parent = body
        if row["category"]:
            parent = folders.get(row["category"])
            if parent is None:
                parent = folders[row["category"]] = ET.SubElement(body, "outline", text=row["category"], title=row["category"])
        ET.SubElement(parent, "outline", type="rss", text=row["name"], title=row["name"], xmlUrl=row["url"])
    ET.indent(root)
    return ('<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n").encode("utf-8")
