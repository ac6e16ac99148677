"""Many sources at once (an OPML import): each batch in one transaction, known URLs skipped, taken names
numbered, with a few indexed queries per batch instead of a set of every name and URL in memory."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine, insert, or_, select

from bot.store.db import utcnow
from bot.store.schema import sources


def add_many(engine: Engine, found: list[tuple[str, str, str | None]], interval: int, origin: str,
             now: datetime | None = None) -> tuple[int, int]:
    """Add a batch of (name, url, category) feeds (each URL once) in one transaction: a URL already present is
    skipped, a taken name gets " (2)", " (3)"…. Returns (added, already present)."""
    urls = sorted({u for _, u, _ in found})
    added = present = 0
    with engine.begin() as conn:
        known: dict[str, int] = {}  # URL → 1
        for i in range(0, len(urls), 400):
            part = urls[i:i + 400]
            for url, config_url in conn.execute(select(sources.c.url, sources.c.config_url)
                                                .where(or_(sources.c.url.in_(part), sources.c.config_url.in_(part)))):
                known.update({u: 1 for u in (url, config_url) if u})
        bases = sorted({n for n, u, _ in found if u not in known})
        taken: set[str] = set()
        suffixes: dict[str, set[int]] = {}
        for i in range(0, len(bases), 400):
            taken.update(conn.execute(select(sources.c.name).where(sources.c.name.in_(bases[i:i + 400]))).scalars())
        rows = []
        for name, url, category in found:
            if url in known:
                present += 1
                continue
            rows.append({"name": _free_name(conn, name, taken, suffixes), "url": url, "interval": interval, "origin": origin,
                         "category": category, "created_at": now or utcnow()})
        if rows:
            conn.execute(insert(sources), rows)
            added = len(rows)
    return added, present


def _free_name(conn, name: str, taken: set[str], suffixes: dict[str, set[int]]) -> str:
    """name, or name (2), name (3)… (the smallest free) not used by another source nor earlier in this batch."""
    if name not in taken:
        taken.add(name)
        return name
    used = suffixes.get(name)
    if used is None:  # one range query per colliding name: every "name (k)" there is
        used = suffixes[name] = set()
        for other in conn.execute(select(sources.c.name).where(sources.c.name >= f"{name} (", sources.c.name < f"{name} )")).scalars():
            k = other[len(name) + 2:-1]
            if other.endswith(")") and k.isdigit():
                used.add(int(k))
    n = 2
    while n in used or f"{name} ({n})" in taken:
        n += 1
    used.add(n)
    taken.add(f"{name} ({n})")
    return f"{name} ({n})"
