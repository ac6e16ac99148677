"""Per-language helpers handed to page templates: Babel dates and numbers, code labels, notices."""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

from babel.dates import format_datetime
from babel.numbers import format_decimal
from starlette.requests import Request

from bot.i18n import Translator, direction, translator
from bot.web.i18n import label

# Pause reasons written by the dashboard and the CLI: stored in English (like errors), shown translated.
OPERATOR_REASONS = {"paused by operator": "adm_reason_operator", "paused by an operator": "adm_reason_operator"}
# ?notice=<name> after an action: the fields each needs (numbers only: the URL cannot inject text).
NOTICES: dict[str, tuple[tuple[str, ...], Callable[..., str]]] = {
    "retried": (("n",), lambda t, n: t.ngettext("notice_retried", "notice_retried_plural", n)),
    "approved": (("item", "n"), lambda t, item, n: t.ngettext("notice_approved", "notice_approved_plural", n,
                                                              item=item)),
    "cancelled": (("item", "n"), lambda t, item, n: t.ngettext("notice_cancelled", "notice_cancelled_plural", n,
                                                               item=item)),
    "not_held": (("item",), lambda t, item: t.gettext("notice_not_held", item=item)),
    "paused": ((), lambda t: t.gettext("notice_paused")),
    "resumed": ((), lambda t: t.gettext("notice_resumed")),
    "unknown_source": ((), lambda t: t.gettext("notice_unknown_source")),
    "channel_resumed": ((), lambda t: t.gettext("notice_channel_resumed")),
    "unknown_channel": ((), lambda t: t.gettext("notice_unknown_channel")),
    "reprocessed": (("n",), lambda t, n: t.ngettext("notice_reprocessed", "notice_reprocessed_plural", n)),
    # The newsroom desk (bot.web.desk): what became of a hand-written alert or its correction.
    "desk_sent": (("item", "n"), lambda t, item, n: t.ngettext("notice_desk_sent", "notice_desk_sent_plural", n,
                                                               item=item)),
    "desk_held": (("item",), lambda t, item: t.gettext("notice_desk_held", item=item)),
    "desk_duplicate": (("item",), lambda t, item: t.gettext("notice_desk_duplicate", item=item)),
    "desk_resent": (("item",), lambda t, item: t.gettext("notice_desk_resent", item=item)),
    "desk_corrected": (("item", "n"), lambda t, item, n: t.ngettext("notice_desk_corrected",
                                                                    "notice_desk_corrected_plural", n, item=item)),
    "desk_unchanged": (("item",), lambda t, item: t.gettext("notice_desk_unchanged", item=item)),
}


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
    """The message named by ?notice= after an action; only known names, only numeric fields, all present."""
    known = NOTICES.get(request.query_params.get("notice", "")[:40])
    if known is None:
        return ""
    names, text = known
    values = [request.query_params.get(name, "") for name in names]
    if not all(v.isdigit() and len(v) <= 12 for v in values):  # a field the message needs is missing or odd
        return ""
    t: Translator = translator(lang)
    return text(t, *map(int, values))


def helpers(lang: str, tz_name: str) -> dict:
    """Template values for one language (`_()`, `_h()` and `ngettext()` come with the environment: bot.i18n.install):
    `dir`, `label`, `reason_label`, `local_time`, `decimal`, `num`, `duration`, `tz_name`."""
    _ = translator(lang).gettext
    return {"dir": direction(lang), "label": label(lang), "tz_name": tz_name,
            "reason_label": lambda reason: _(OPERATOR_REASONS[reason]) if reason in OPERATOR_REASONS else reason,
            "local_time": lambda when: local_time(when, lang, tz_name),
            "decimal": lambda value: decimal(value, lang), "num": lambda value: number(value, lang),
            "duration": lambda seconds: duration(seconds, lang)}
