"""Per-language helpers handed to page templates: Babel dates and numbers, code labels, notices."""
from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

from babel.dates import format_datetime
from babel.numbers import format_decimal
from starlette.requests import Request

from bot.web.i18n import CATALOGS, FR, label, markup_translator, translator

NOTICE_FIELDS = ("n", "item")
# Pause reasons written by the dashboard and the CLI: stored in English (like errors), shown translated.
OPERATOR_REASONS = {"paused by operator": "adm_reason_operator", "paused by an operator": "adm_reason_operator"}


@lru_cache(maxsize=16)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def local_time(when: datetime, lang: str, tz_name: str) -> str:
    """"29 nov. 2026, 07:10:05" / "Nov 29, 2026, 7:10:05 AM" in the configured zone (Babel medium)."""
    tz = _zone(tz_name)
    return format_datetime(when.astimezone(tz), "medium", tzinfo=tz, locale=lang)


def decimal(value: float, lang: str) -> str:
    """One decimal with the language's separator ("35,0" / "35.0")."""
    return format_decimal(value, "0.0", locale=lang)


def number(value: float, lang: str) -> str:
    """A whole number with the language's grouping ("1 234" / "1,234")."""
    return format_decimal(value, "#,##0", locale=lang)


def duration(seconds: float, lang: str) -> str:
    """"0,4 s" / "35 s" / "12 min" / "3,5 h" (one decimal where it helps)."""
    if seconds < 10:
        return f"{format_decimal(seconds, '0.#', locale=lang)} s"
    if seconds < 120:
        return f"{format_decimal(seconds, '0', locale=lang)} s"
    if seconds < 7200:
        return f"{format_decimal(seconds / 60, '0.#', locale=lang)} min"
    return f"{format_decimal(seconds / 3600, '0.#', locale=lang)} h"


def notice(request: Request, lang: str) -> str:
    """The message named by ?notice= after an action; only known names, only numeric fields."""
    key = "notice_" + request.query_params.get("notice", "")[:40]
    if key not in FR:
        return ""
    fields = {f: int(v) for f in NOTICE_FIELDS if (v := request.query_params.get(f, ""))[:12].isdigit() and len(v) <= 12}
    try:
        return CATALOGS.get(lang, FR)[key].format(**fields)
    except (KeyError, IndexError):  # a field the message needs is missing from the URL
        return ""


def helpers(lang: str, tz_name: str) -> dict:
    """Template values for one language: `_h`, `label`, `reason_label`, `local_time`, `decimal`, `num`, `duration`, `tz_name`."""
    lang = lang if lang in CATALOGS else "fr"
    _ = translator(lang)
    return {"_h": markup_translator(lang), "label": label(lang), "tz_name": tz_name,
            "reason_label": lambda reason: _(OPERATOR_REASONS[reason]) if reason in OPERATOR_REASONS else reason,
            "local_time": lambda when: local_time(when, lang, tz_name),
            "decimal": lambda value: decimal(value, lang), "num": lambda value: number(value, lang),
            "duration": lambda seconds: duration(seconds, lang)}
