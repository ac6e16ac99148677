"""The alert pace on the preferences page: a subscriber's own daily cap, quiet hours and time zone
(the rules are bot.delivery.quiet's; the columns bot.store.limits')."""
from __future__ import annotations

from starlette.datastructures import FormData

from bot.delivery import quiet
from bot.store import limits
from bot.web.context import Web


def values(row: dict, cfg) -> dict:
    """The form values of a stored subscriber (empty = none; the zone defaults to [bot] timezone)."""
    return {"max_per_day": row.get("max_per_day") or "", "quiet_start": row.get("quiet_start") or "",
            "quiet_end": row.get("quiet_end") or "", "timezone": row.get("timezone") or cfg.bot.timezone}


def context(row: dict, cfg, posted: dict | None = None) -> dict:
    """What templates/web/_pace.html needs."""
    return {"pace": posted or values(row, cfg), "zones": quiet.zone_names(),
            "site_cap": cfg.delivery.max_alerts_per_day}


def read(form: FormData) -> tuple[dict, tuple | None, str | None]:
    """(raw values, parsed (cap, start, end, zone) or None, error key or None) from a posted form."""
    raw = {k: str(form.get(k, ""))[:64].strip() for k in ("max_per_day", "quiet_start", "quiet_end", "timezone")}
    try:
        cap = quiet.parse_cap(raw["max_per_day"])
    except quiet.LimitError:
        return raw, None, "pace_err_cap"
    try:
        start, end = quiet.parse_quiet(raw["quiet_start"], raw["quiet_end"])
    except quiet.LimitError:
        return raw, None, "pace_err_quiet"
    try:
        zone = quiet.parse_zone(raw["timezone"])
    except quiet.LimitError:
        return raw, None, "pace_err_zone"
    return raw, (cap, start, end, zone), None


async def save(w: Web, subscriber_id: int, parsed: tuple) -> bool:
    """Store checked limits; the [bot] zone is stored as NULL (it follows the config)."""
    cap, start, end, zone = parsed
    return await w.db(limits.set_limits, w.engine, subscriber_id, cap, start, end,
                      None if zone == w.cfg.bot.timezone else zone)
