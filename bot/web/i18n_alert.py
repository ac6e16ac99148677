"""Strings of the per-alert dashboard page (/admin/items/{id}): (French, English) per key."""
from __future__ import annotations

ALERT_VIEW: dict[str, tuple[str, str]] = {
    "alv_title": ("Alerte n° {id}", "Alert #{id}"),
    "alv_unknown": ("Article inconnu.", "Unknown item."),
    "alv_published": ("Publié", "Published"),
    "alv_revision": ("Révision", "Revision"),
    "alv_groups": ("Envois par canal", "Deliveries per channel"),
    "alv_kind_alert": ("alerte", "alert"),
    "alv_kind_update": ("correction {n}", "correction {n}"),
    "alv_queued": ("Mis en file", "Queued"),
    "alv_total": ("Total", "Total"),
    "alv_first_last": ("Premier / dernier envoi", "First / last send"),
    "alv_latency": ("Délai d'envoi p50 / p90 / p99", "Send delay p50 / p90 / p99"),
    "alv_compacted_n": ("{n} de ces envois sont compactés.", "{n} of these deliveries are compacted."),
    "alv_compacted_h": ("Les envois terminés de plus de {days} jours sont résumés : leurs nombres restent, "
                        "le détail par destinataire n'est gardé que pour les échecs et les rebonds.",
                        "Finished deliveries older than {days} days are summarized: their numbers stay, "
                        "per-recipient detail is kept only for failures and bounces."),
    "alv_no_groups": ("Aucun envoi pour cet article.", "No deliveries for this item."),
    "alv_failures": ("Derniers échecs ({n})", "Latest failures ({n})"),
    "alv_details": ("détails", "details"),
}
