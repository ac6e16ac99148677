"""The pages' translation helpers over the gettext catalogs (bot/i18n.py): keys named by variable, code labels.

The strings themselves are in bot/locale/<lang>/LC_MESSAGES/messages.po. A key that reaches a
template through a variable (a page title, a form error, a stored state's label) is listed here
with N_() so `make messages` extracts it like the literal `_()` calls.
"""
from __future__ import annotations

from collections.abc import Callable

from markupsafe import Markup

from bot.i18n import N_, translator as _translator

# Titles, bodies and errors that handlers pass to message.html, signup.html and login.html by name.
PAGE_KEYS = (
    N_("check_title"), N_("check_body"), N_("invalid_email"), N_("invalid_choice"), N_("rate_title"),
    N_("rate_body"), N_("csrf_title"), N_("csrf_body"), N_("mail_off_title"), N_("mail_off_body"),
    N_("bad_link_title"), N_("bad_link_body"), N_("unsubscribed_title"), N_("unsubscribed_body"),
    N_("resubscribe"), N_("delete_title"), N_("delete_need_check"), N_("deleted_title"), N_("deleted_body"),
    N_("not_found_title"), N_("not_found_body"), N_("error_title"), N_("error_body"),
    N_("adm_login_wrong"), N_("adm_login_limited"), N_("adm_reason_operator"), N_("alv_unknown"),
)
# The newsroom desk's and the alert pace's form errors (bot.ingest.desk.problems, bot.web.pace.read) and
# the preview's notice, passed to the templates by name.
DESK_KEYS = (
    N_("desk_err_title"), N_("desk_err_title_long"), N_("desk_err_body_long"), N_("desk_err_link"),
    N_("desk_err_image"), N_("desk_err_language"), N_("desk_err_topics"), N_("desk_err_chat"),
    N_("desk_err_no_channel"), N_("desk_err_editor"), N_("desk_changed"),
    N_("pace_err_cap"), N_("pace_err_quiet"), N_("pace_err_zone"),
)
# Stored codes shown on the dashboard: label group + "_" + value (tests check every state has one).
LABEL_KEYS = (
    N_("state_pending"), N_("state_sending"), N_("state_sent"), N_("state_retry"), N_("state_failed"),
    N_("state_cancelled"), N_("state_folded"),
    N_("alert_none"), N_("alert_held"), N_("alert_detected"), N_("alert_approved"), N_("alert_cancelled"),
    N_("alert_queued"),
    N_("status_pending"), N_("status_active"), N_("status_unsubscribed"), N_("status_suppressed"),
    N_("status_deleted"),
    N_("smode_instant"), N_("smode_digest"), N_("smode_both"),
    N_("outcome_refused"), N_("outcome_bounced"), N_("outcome_soft-bounced"), N_("outcome_complained"),
    N_("kind_alert"), N_("kind_update"), N_("kind_digest"), N_("kind_confirm"), N_("kind_summary"),
    N_("origin_web"), N_("origin_operator"), N_("origin_import"),
    N_("websub_pending"), N_("websub_active"), N_("websub_denied"),
    # Received bounce mails and events (bot.models.BounceKind, InboundState).
    N_("bkind_hard"), N_("bkind_soft"), N_("bkind_complaint"), N_("bkind_autoreply"), N_("bkind_unsubscribe"),
    N_("bkind_other"),
    N_("bstate_new"), N_("bstate_processed"), N_("bstate_unparsed"), N_("bstate_ignored"), N_("bstate_rejected"),
)
_LABELS = frozenset(LABEL_KEYS)


def translator(lang: str) -> Callable[..., str]:
    """A `_(key, **fields)` function for one language (unknown language → the default one)."""
    return _translator(lang).gettext


def markup_translator(lang: str) -> Callable[..., Markup]:
    """`_h(key, **fields)` for the trusted-HTML strings (keys ending in `_h`): every field is escaped."""
    return _translator(lang).markup


def label(lang: str) -> Callable[[str, object], str]:
    """`label(group, code)`: a stored code (state, status, mode…) in words, the code itself if unknown."""
    gettext = _translator(lang).gettext

    def _label(group: str, code: object) -> str:
        key = f"{group}_{code}"
        return gettext(key) if key in _LABELS else str(code)

    return _label
