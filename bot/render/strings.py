"""User-facing strings of emails and posts, per language (French default, English available)."""
from __future__ import annotations

from datetime import date, datetime, tzinfo

from babel.dates import format_date, format_datetime

STRINGS: dict[str, dict[str, str]] = {
    "fr": {
        "flash": "FLASH INFO",
        "update_prefix": "Mise à jour :",
        "correction": "Correction",
        "update_notice": "Cet article a été mis à jour. Voici la nouvelle version.",
        "published": "Publié le {date}",
        "updated": "Mis à jour le {date}",
        "by": "par {author}",
        "read_article": "Lire l’article",
        "read_more": "Lire la suite sur le site",
        "links": "Liens cités",
        "why_alert": "Vous recevez ce message parce que vous êtes abonné(e) aux alertes Flash Info de {name}.",
        "why_digest": "Vous recevez ce message parce que vous êtes abonné(e) à la lettre quotidienne de {name}.",
        "preferences": "Gérer mes préférences",
        "unsubscribe": "Se désinscrire",
        "digest_subject": "{name} — L’essentiel du {date}",
        "digest_title": "L’essentiel du {date}",
        "digest_intro": "{count} article(s) depuis la dernière lettre.",
        "digest_flash": "Flash Info",
        "digest_empty": "Rien de nouveau depuis la dernière lettre.",
        "other": "Autres",
        "summary_subject": "{name} — vos alertes mises de côté ({count})",
        "summary_title": "Les alertes arrivées pendant votre pause",
        "summary_intro": "Vous avez choisi de ne pas être dérangé(e) à certaines heures ou au-delà d’un "
                         "nombre d’alertes par jour. Voici les {count} alerte(s) gardée(s) pour vous.",
    },
    "en": {
        "flash": "FLASH INFO",
        "update_prefix": "Update:",
        "correction": "Correction",
        "update_notice": "This article has been updated. Here is the new version.",
        "published": "Published {date}",
        "updated": "Updated {date}",
        "by": "by {author}",
        "read_article": "Read the article",
        "read_more": "Read the rest on the site",
        "links": "Links",
        "why_alert": "You are receiving this email because you subscribed to {name} breaking-news alerts.",
        "why_digest": "You are receiving this email because you subscribed to the {name} daily digest.",
        "preferences": "Manage my preferences",
        "unsubscribe": "Unsubscribe",
        "digest_subject": "{name} — Daily digest, {date}",
        "digest_title": "Your digest for {date}",
        "digest_intro": "{count} article(s) since the last digest.",
        "digest_flash": "Breaking news",
        "digest_empty": "Nothing new since the last digest.",
        "other": "Other",
        "summary_subject": "{name} — alerts held for you ({count})",
        "summary_title": "Alerts that came in while you were away",
        "summary_intro": "You asked not to be disturbed at certain hours or beyond a number of alerts "
                         "a day. Here are the {count} alert(s) we kept for you.",
    },
}
LANGUAGES = tuple(STRINGS)


def pick_language(language: str | None, default: str) -> str:
    """A supported language code: the requested one, else the configured default, else French."""
    lang = (language or "").lower().split("-")[0].split("_")[0]
    if lang in STRINGS:
        return lang
    return default if default in STRINGS else "fr"


def format_when(when: datetime, language: str, tz: tzinfo) -> str:
    """"29 novembre 2026 à 07:10" / "November 29, 2026 at 7:10 AM" in the given zone."""
    local = when.astimezone(tz)
    if language == "en":
        return format_datetime(local, "MMMM d, y 'at' h:mm a", tzinfo=tz, locale="en")
    day = "1er" if local.day == 1 else str(local.day)
    return day + " " + format_datetime(local, "MMMM y 'à' HH:mm", tzinfo=tz, locale="fr")


def format_day(day: date, language: str) -> str:
    """"29 novembre 2026" / "November 29, 2026"."""
    if language == "en":
        return format_date(day, "MMMM d, y", locale="en")
    prefix = "1er" if day.day == 1 else str(day.day)
    return prefix + " " + format_date(day, "MMMM y", locale="fr")
