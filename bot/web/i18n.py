"""User-facing strings of the web pages and confirmation mails, French first, English second."""
from __future__ import annotations

from collections.abc import Callable

from markupsafe import Markup

from bot.web.i18n_alert import ALERT_VIEW

FR: dict[str, str] = {
    "signup_title": "Inscrivez-vous à la newsletter",
    "signup_intro": "Recevez les alertes Flash Info dès qu'elles tombent et/ou notre sélection quotidienne.",
    "email": "Adresse e-mail",
    "mode": "Ce que vous souhaitez recevoir",
    "mode_instant": "Les alertes Flash Info, immédiatement",
    "mode_digest": "La newsletter quotidienne",
    "mode_both": "Les deux",
    "language": "Langue",
    "topics": "Thèmes (facultatif)",
    "topics_help": "Mots-clés séparés par des virgules. Sans thème, vous recevez toutes les alertes.",
    "categories": "Rubriques",
    "subscribe": "M'inscrire",
    "honeypot": "Ne remplissez pas ce champ",
    "privacy": "Nous n'utilisons votre adresse que pour ces envois. Désinscription en un clic dans chaque message.",
    "check_title": "Vérifiez votre boîte mail",
    "check_body": "Si cette adresse peut être inscrite, un message de confirmation vient d'y être envoyé. "
                  "Cliquez sur le lien qu'il contient pour activer votre inscription.",
    "invalid_email": "Cette adresse e-mail n'est pas valide.",
    "invalid_choice": "Choix non valide.",
    "rate_title": "Trop de demandes",
    "rate_body": "Trop de demandes depuis votre connexion. Réessayez plus tard.",
    "csrf_title": "Formulaire expiré",
    "csrf_body": "Ce formulaire a expiré ou ne vient pas de notre site. Rechargez la page et recommencez.",
    "mail_off_title": "Inscription indisponible",
    "mail_off_body": "L'envoi d'e-mails n'est pas configuré : les inscriptions sont momentanément impossibles.",
    "bad_link_title": "Lien invalide ou expiré",
    "bad_link_body": "Ce lien n'est pas (ou plus) valide. Vous pouvez vous réinscrire depuis la page d'accueil.",
    "confirm_title": "Confirmez votre inscription",
    "confirm_body": "Cliquez sur le bouton pour confirmer l'inscription de {email}.",
    "confirm_button": "Je confirme",
    "confirmed_title": "Inscription confirmée",
    "confirmed_body": "Merci ! Vous recevrez désormais nos envois.",
    "already_confirmed": "Votre inscription était déjà confirmée.",
    "manage": "Gérer mes préférences",
    "unsub_title": "Se désinscrire",
    "unsub_body": "Cliquez sur le bouton pour ne plus rien recevoir à l'adresse {email}.",
    "unsub_button": "Me désinscrire",
    "unsubscribed_title": "Vous êtes désinscrit",
    "unsubscribed_body": "Vous ne recevrez plus aucun message de notre part.",
    "resubscribe": "Vous pouvez vous réinscrire à tout moment.",
    "prefs_title": "Vos préférences",
    "save": "Enregistrer",
    "saved": "Vos préférences sont enregistrées.",
    "export_title": "Vos données",
    "export_body": "Téléchargez tout ce que nous conservons à votre sujet (JSON).",
    "export_button": "Télécharger mes données",
    "delete_title": "Supprimer mes données",
    "delete_body": "Efface votre adresse et vos préférences. Irréversible.",
    "delete_check": "Je comprends que c'est définitif",
    "delete_button": "Supprimer",
    "deleted_title": "Données supprimées",
    "deleted_body": "Votre adresse et vos préférences ont été effacées.",
    "delete_need_check": "Cochez la case pour confirmer la suppression.",
    "not_found_title": "Page introuvable",
    "not_found_body": "Cette page n'existe pas.",
    "error_title": "Erreur",
    "error_body": "Une erreur est survenue. Réessayez plus tard.",
    "home": "Accueil",
    "mail_confirm_subject": "Confirmez votre inscription à {name}",
    "mail_confirm_intro": "Quelqu'un (probablement vous) a demandé à inscrire cette adresse à {name}.",
    "mail_confirm_action": "Pour confirmer, ouvrez ce lien (valable {hours} heures) :",
    "mail_confirm_ignore": "Si vous n'êtes pas à l'origine de cette demande, ignorez ce message : "
                           "vous ne recevrez rien.",
    "mail_already_subject": "Vous êtes déjà inscrit à {name}",
    "mail_already_intro": "Une nouvelle inscription a été demandée pour cette adresse, qui est déjà inscrite à {name}.",
    "mail_already_action": "Pour modifier ce que vous recevez, ouvrez vos préférences :",
}

EN: dict[str, str] = {
    "signup_title": "Sign up for the newsletter",
    "signup_intro": "Get Flash Info alerts the moment they break and/or our daily selection.",
    "email": "Email address",
    "mode": "What you want to receive",
    "mode_instant": "Flash Info alerts, instantly",
    "mode_digest": "The daily newsletter",
    "mode_both": "Both",
    "language": "Language",
    "topics": "Topics (optional)",
    "topics_help": "Keywords separated by commas. Without topics you get every alert.",
    "categories": "Sections",
    "subscribe": "Subscribe",
    "honeypot": "Leave this field empty",
    "privacy": "We use your address only for these mailings. One-click unsubscribe in every message.",
    "check_title": "Check your inbox",
    "check_body": "If this address can be subscribed, a confirmation message has just been sent to it. "
                  "Click the link inside to activate your subscription.",
    "invalid_email": "This email address is not valid.",
    "invalid_choice": "Invalid choice.",
    "rate_title": "Too many requests",
    "rate_body": "Too many requests from your connection. Please try again later.",
    "csrf_title": "Form expired",
    "csrf_body": "This form has expired or did not come from our site. Reload the page and try again.",
    "mail_off_title": "Sign-up unavailable",
    "mail_off_body": "Email sending is not configured, so sign-ups are not possible right now.",
    "bad_link_title": "Invalid or expired link",
    "bad_link_body": "This link is not (or no longer) valid. You can sign up again from the home page.",
    "confirm_title": "Confirm your subscription",
    "confirm_body": "Click the button to confirm the subscription of {email}.",
    "confirm_button": "Confirm",
    "confirmed_title": "Subscription confirmed",
    "confirmed_body": "Thank you! You will now receive our mailings.",
    "already_confirmed": "Your subscription was already confirmed.",
    "manage": "Manage my preferences",
    "unsub_title": "Unsubscribe",
    "unsub_body": "Click the button to stop receiving anything at {email}.",
    "unsub_button": "Unsubscribe me",
    "unsubscribed_title": "You are unsubscribed",
    "unsubscribed_body": "You will not receive any more messages from us.",
    "resubscribe": "You can sign up again at any time.",
    "prefs_title": "Your preferences",
    "save": "Save",
    "saved": "Your preferences are saved.",
    "export_title": "Your data",
    "export_body": "Download everything we keep about you (JSON).",
    "export_button": "Download my data",
    "delete_title": "Delete my data",
    "delete_body": "Erases your address and preferences. This cannot be undone.",
    "delete_check": "I understand this is final",
    "delete_button": "Delete",
    "deleted_title": "Data deleted",
    "deleted_body": "Your address and preferences have been erased.",
    "delete_need_check": "Tick the box to confirm the deletion.",
    "not_found_title": "Page not found",
    "not_found_body": "This page does not exist.",
    "error_title": "Error",
    "error_body": "Something went wrong. Please try again later.",
    "home": "Home",
    "mail_confirm_subject": "Confirm your subscription to {name}",
    "mail_confirm_intro": "Someone (probably you) asked to subscribe this address to {name}.",
    "mail_confirm_action": "To confirm, open this link (valid for {hours} hours):",
    "mail_confirm_ignore": "If you did not ask for this, ignore this message: you will receive nothing.",
    "mail_already_subject": "You are already subscribed to {name}",
    "mail_already_intro": "A new sign-up was requested for this address, which is already subscribed to {name}.",
    "mail_already_action": "To change what you receive, open your preferences:",
}

# The operator dashboard: (French, English) per key, so a missing translation cannot slip in.
# Keys ending in "_h" are trusted HTML (our own <code>/<strong>), their fields are escaped.
ADMIN: dict[str, tuple[str, str]] = {
    "adm_dashboard": ("Tableau de bord", "Dashboard"),
    "adm_admin": ("administration", "admin"),
    "adm_logout": ("Se déconnecter", "Log out"),
    "adm_overview": ("Vue d'ensemble", "Overview"),
    "adm_sources": ("Sources", "Sources"),
    "adm_subscribers": ("Abonnés", "Subscribers"),
    "adm_failures": ("Échecs", "Failures"),
    "adm_times": ("Heures affichées dans le fuseau {tz}.", "Times shown in the {tz} time zone."),
    "adm_disabled_title": ("Tableau de bord désactivé", "Dashboard disabled"),
    "adm_disabled_body": ("Aucun mot de passe opérateur n'est configuré : le tableau de bord est donc désactivé "
                          "(il n'y a pas de mot de passe par défaut).",
                          "No operator password is configured, so the dashboard is switched off "
                          "(there is no default password)."),
    "adm_disabled_how_h": ("Renseignez <code>admin_password</code> dans la section <code>[web]</code> de "
                           "<code>config.toml</code>, ou la variable d'environnement "
                           "<code>FLASHBOT_ADMIN_PASSWORD</code>, puis redémarrez {name}.",
                           "Set <code>admin_password</code> in the <code>[web]</code> section of "
                           "<code>config.toml</code>, or the <code>FLASHBOT_ADMIN_PASSWORD</code> environment "
                           "variable, then restart {name}."),
    "adm_login_title": ("Connexion opérateur", "Operator login"),
    "adm_login": ("Se connecter", "Log in"),
    "adm_password": ("Mot de passe", "Password"),
    "adm_login_wrong": ("Mot de passe incorrect.", "Wrong password."),
    "adm_login_limited": ("Trop d'essais manqués : patientez 15 minutes.", "Too many failed attempts; wait 15 minutes."),
    "adm_channel_paused_h": ("Le canal <strong>{channel}</strong> est en pause : {reason}",
                             "Channel <strong>{channel}</strong> is paused: {reason}"),
    "adm_no_reason": ("aucune raison enregistrée", "no reason recorded"),
    "adm_resume_channel": ("Relancer {channel}", "Resume {channel}"),
    "adm_held": ("En attente de validation ({n})", "Waiting for approval ({n})"),
    "adm_approval_off_h": ("La validation est désactivée (<code>flash.require_approval = false</code>) : "
                           "les alertes partent immédiatement.",
                           "Approval is off (<code>flash.require_approval = false</code>): alerts go out at once."),
    "adm_detected": ("Détecté", "Detected"),
    "adm_source": ("Source", "Source"),
    "adm_title_col": ("Titre", "Title"),
    "adm_approve": ("Valider", "Approve"),
    "adm_cancel": ("Annuler", "Cancel"),
    "adm_deliveries": ("Envois", "Deliveries"),
    "adm_channel": ("Canal", "Channel"),
    "adm_last_day": ("Dernières 24 h", "Last 24 h"),
    "adm_all_time": ("Depuis le début", "All time"),
    "adm_latency_published": ("Premier envoi après publication (médiane / max)",
                              "First delivery after publication (median / max)"),
    "adm_latency_detected": ("après détection (médiane / max)", "after detection (median / max)"),
    "adm_n_alerts": ("{n} alertes", "{n} alerts"),
    "adm_recent": ("Articles récents", "Recent items"),
    "adm_alert": ("Alerte", "Alert"),
    "adm_first_sends": ("Premier Telegram / e-mail", "First Telegram / email"),
    "adm_cancel_alert": ("Annuler l'alerte", "Cancel alert"),
    "adm_no_items": ("Aucun article pour l'instant.", "No items yet."),
    "adm_channels": ("Canaux", "Channels"),
    "adm_state": ("État", "State"),
    "adm_last_error": ("Dernière erreur", "Last error"),
    "adm_updated": ("Mis à jour", "Updated"),
    "adm_resume": ("Reprendre", "Resume"),
    "adm_pause": ("Suspendre", "Pause"),
    "adm_running": ("en service", "running"),
    "adm_paused": ("en pause", "paused"),
    "adm_no_channel_problem": ("Aucun canal n'a signalé de problème.", "No channel has reported a problem."),
    "adm_sources_n": ("Sources ({n})", "Sources ({n})"),
    "adm_name": ("Nom", "Name"),
    "adm_status": ("Statut", "Status"),
    "adm_last_poll": ("Dernière relève", "Last poll"),
    "adm_last_success": ("Dernier succès", "Last success"),
    "adm_next_poll": ("Prochaine relève", "Next poll"),
    "adm_failing": ("en échec ×{n}", "failing ×{n}"),
    "adm_ok": ("ok", "ok"),
    "adm_reason_operator": ("suspendue par un opérateur", "paused by an operator"),
    "adm_no_sources": ("Aucune source.", "No sources."),
    "adm_total": ("total", "total"),
    "adm_search_label": ("Rechercher par adresse", "Search by address"),
    "adm_any_status": ("tous les statuts", "any status"),
    "adm_any_mode": ("tous les modes", "any mode"),
    "adm_mode": ("Mode", "Mode"),
    "adm_search": ("Rechercher", "Search"),
    "adm_matching": ("{n} résultat(s)", "{n} matching"),
    "adm_address": ("Adresse", "Address"),
    "adm_lang": ("Langue", "Lang"),
    "adm_topics": ("Thèmes", "Topics"),
    "adm_origin": ("Origine", "Origin"),
    "adm_bounces": ("Rebonds", "Bounces"),
    "adm_created": ("Créé", "Created"),
    "adm_confirmed": ("Confirmé", "Confirmed"),
    "adm_erased": ("(effacée)", "(erased)"),
    "adm_nobody": ("Aucun abonné ne correspond.", "Nobody matches."),
    "adm_failures_n": ("Envois en échec ({n})", "Failed deliveries ({n})"),
    "adm_kind": ("Type", "Kind"),
    "adm_recipient": ("Destinataire", "Recipient"),
    "adm_item": ("Article", "Item"),
    "adm_attempts": ("Tentatives", "Attempts"),
    "adm_error": ("Erreur", "Error"),
    "adm_select": ("sélectionner {id}", "select {id}"),
    "adm_retry_selected": ("Réessayer la sélection", "Retry selected"),
    "adm_no_failures": ("Aucun envoi en échec.", "No failed deliveries."),
    "adm_count": ("{label} : {n}", "{label}: {n}"),
    "adm_page": ("Page {page} / {pages}", "Page {page} / {pages}"),
    "adm_previous": ("← précédente", "← previous"),
    "adm_next": ("suivante →", "next →"),
    # ?notice=<name> after an action (numbers only as fields: the URL cannot inject text).
    "notice_retried": ("{n} envoi(s) remis en file d'attente.", "{n} deliveries queued again."),
    "notice_paused": ("Source suspendue.", "Source paused."),
    "notice_resumed": ("Source reprise.", "Source resumed."),
    "notice_unknown_source": ("Source inconnue.", "Unknown source."),
    "notice_not_held": ("L'article {item} n'attendait pas de validation.", "Item {item} was not waiting for approval."),
    "notice_approved": ("Article {item} validé : {n} envoi(s) en file d'attente.",
                        "Item {item} approved, {n} deliveries queued."),
    "notice_cancelled": ("Article {item} annulé : {n} envoi(s) en attente arrêté(s).",
                         "Item {item} cancelled, {n} pending deliveries stopped."),
    "notice_channel_resumed": ("Canal relancé.", "Channel resumed."),
    "notice_unknown_channel": ("Canal inconnu.", "Unknown channel."),
    # Stored codes shown on the dashboard (label group + "_" + value).
    "state_pending": ("en attente", "pending"), "state_sending": ("en cours", "sending"),
    "state_sent": ("envoyé", "sent"), "state_retry": ("à réessayer", "retry"),
    "state_failed": ("échec", "failed"), "state_cancelled": ("annulé", "cancelled"),
    "alert_none": ("aucune", "none"), "alert_held": ("retenue", "held"), "alert_approved": ("validée", "approved"),
    "alert_cancelled": ("annulée", "cancelled"), "alert_queued": ("lancée", "queued"),
    "status_pending": ("en attente", "pending"), "status_active": ("actif", "active"),
    "status_unsubscribed": ("désinscrit", "unsubscribed"), "status_suppressed": ("bloqué (rebonds)", "suppressed"),
    "status_deleted": ("supprimé", "deleted"),
    "smode_instant": ("alertes", "instant"), "smode_digest": ("lettre", "digest"), "smode_both": ("les deux", "both"),
    "kind_alert": ("alerte", "alert"), "kind_update": ("mise à jour", "update"), "kind_digest": ("lettre", "digest"),
    "kind_confirm": ("confirmation", "confirm"),
    "origin_web": ("site", "web"), "origin_operator": ("opérateur", "operator"), "origin_import": ("import", "import"),
    "websub_pending": ("en attente", "pending"), "websub_active": ("actif", "active"), "websub_denied": ("refusé", "denied"),
}
for _key, (_fr, _en) in {**ADMIN, **ALERT_VIEW}.items():
    FR[_key], EN[_key] = _fr, _en

CATALOGS = {"fr": FR, "en": EN}


def translator(lang: str) -> Callable[..., str]:
    """A `_(key, **fields)` function for one language (falls back to French, then the key)."""
    catalog = CATALOGS.get(lang, FR)

    def _(key: str, **fields: object) -> str:
        text = catalog.get(key) or FR.get(key) or key
        return text.format(**fields) if fields else text

    return _


def markup_translator(lang: str) -> Callable[..., Markup]:
    """`_h(key, **fields)` for the trusted-HTML strings: the text is ours, every field is escaped."""
    catalog = CATALOGS.get(lang, FR)

    def _h(key: str, **fields: object) -> Markup:
        return Markup(catalog.get(key) or FR.get(key) or key).format(**fields)

    return _h


def label(lang: str) -> Callable[[str, object], str]:
    """`label(group, code)`: a stored code (state, status, mode…) in words, the code itself if unknown."""
    catalog = CATALOGS.get(lang, FR)
    return lambda group, code: catalog.get(f"{group}_{code}", str(code))
