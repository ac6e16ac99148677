"""OPML import/export of sources (the format every feed reader speaks)."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import format_datetime

from bot.ingest.parse import UnsafeXML, screen_entities


class OPMLError(ValueError):
    """The file is not usable OPML; the message says why."""


@dataclass
class OPMLSource:
    """One feed outline: name, URL and the folder it sat in (used as category)."""

    name: str
    url: str
    category: str | None = None


def parse_opml(data: bytes) -> list[OPMLSource]:
    """Feeds listed in an OPML document (nested outlines give their folder as category)."""
    try:
        screen_entities(data)
        root = ET.fromstring(data)
    except UnsafeXML as exc:
        raise OPMLError(str(exc)) from None
    except ET.ParseError as exc:
        raise OPMLError(f"not valid XML: {exc}") from None
    if root.tag.lower() != "opml":
        raise OPMLError(f"not an OPML document (root element is <{root.tag}>)")
    body = root.find("body")
    if body is None:
        raise OPMLError("OPML document has no <body>")
    found: list[OPMLSource] = []
    seen: set[str] = set()

    def walk(node: ET.Element, folder: str | None) -> None:
        for outline in node.findall("outline"):
            url = (outline.get("xmlUrl") or outline.get("xmlurl") or "").strip()
            label = (outline.get("title") or outline.get("text") or "").strip()
            if url:
                if url not in seen:
                    seen.add(url)
                    found.append(OPMLSource(" ".join((label or url).split())[:200], url, folder))
            else:
                walk(outline, label or folder)
    walk(body, None)
    return found


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
