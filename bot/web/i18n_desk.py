"""Strings of the newsroom desk, of the subscribers' alert pace (cap, quiet hours, time zone) and of
folded alerts, French first, English second; merged into bot.web.i18n's catalogs on import."""
from __future__ import annotations

from bot.web.i18n import EN, FR

DESK: dict[str, tuple[str, str]] = {
    "adm_desk": ("Rédaction", "Desk"),
    "desk_new": ("Nouvelle alerte", "New alert"),
    "desk_list": ("Alertes rédigées", "Hand-written alerts"),
    "desk_none": ("Aucune alerte rédigée pour l'instant.", "No hand-written alert yet."),
    "desk_intro": ("Une alerte rédigée ici part comme une alerte détectée dans un flux : validation si elle est "
                   "exigée, dédoublonnage, journal des envois. Quand l'article paraît ensuite dans un flux, il est "
                   "rattaché à l'alerte au lieu d'en déclencher une seconde.",
                   "An alert written here goes out like an alert found in a feed: approval when required, "
                   "de-duplication, the delivery log. When the article later appears in a feed, it is attached to "
                   "the alert instead of alerting a second time."),
    "desk_title": ("Titre", "Title"),
    "desk_body": ("Texte court (facultatif)", "Short text (optional)"),
    "desk_link": ("Lien vers l'article (facultatif)", "Link to the article (optional)"),
    "desk_category": ("Rubrique", "Category"),
    "desk_no_category": ("(aucune)", "(none)"),
    "desk_topics": ("Thèmes (séparés par des virgules)", "Topics (comma-separated)"),
    "desk_language": ("Langue de l'alerte", "Language of the alert"),
    "desk_image": ("Photo (adresse http ou https, facultatif)", "Photo (http or https address, optional)"),
    "desk_image_alt": ("Description de la photo", "Photo description"),
    "desk_channels": ("Canaux", "Channels"),
    "desk_email": ("E-mail (abonnés aux alertes)", "Email (alert subscribers)"),
    "desk_telegram_auto": ("Telegram : chaque chaîne dont les filtres (langue, thèmes) correspondent",
                           "Telegram: every channel whose filters (language, topics) match"),
    "desk_telegram_chat": ("Telegram {chat} ({lang})", "Telegram {chat} ({lang})"),
    "desk_editor": ("Signé par", "Signed by"),
    "desk_preview": ("Prévisualiser", "Preview"),
    "desk_preview_title": ("Aperçu : voici exactement ce qui partira", "Preview: exactly what will leave"),
    "desk_email_preview": ("E-mail ({lang}) — objet : {subject}", "Email ({lang}) — subject: {subject}"),
    "desk_photo_not_in_mail": ("La photo n'apparaît pas dans l'e-mail : son texte est trop court (les filtres anti-spam "
                               "le prendraient pour un e-mail fait d'une image). Elle accompagne le message Telegram.",
                               "The photo is left out of the email: its text is too short (spam filters would take it "
                               "for an image-only mail). It goes with the Telegram post."),
    "desk_text_part": ("Version texte du même e-mail", "Text version of the same email"),
    "desk_post_photo": ("Telegram {chat} ({lang}) — photo avec le message en légende",
                        "Telegram {chat} ({lang}) — photo with the post as caption"),
    "desk_post_text": ("Telegram {chat} ({lang}) — message", "Telegram {chat} ({lang}) — text post"),
    "desk_nothing": ("Aucun canal ne recevrait cette alerte.", "No channel would carry this alert."),
    "desk_similar": ("Une alerte semblable est déjà partie ({when}) : n° {id} « {title} ». Celle-ci sera "
                     "enregistrée comme doublon et ne partira pas, sauf si vous cochez « Envoyer quand même ».",
                     "A similar alert already went out ({when}): #{id} “{title}”. This one will be recorded "
                     "as a duplicate and not sent, unless you tick “Send anyway”."),
    "desk_force": ("Envoyer quand même", "Send anyway"),
    "desk_send": ("Envoyer l'alerte", "Send the alert"),
    "desk_back": ("Modifier le brouillon", "Edit the draft"),
    "desk_changed": ("Le brouillon a changé depuis l'aperçu : vérifiez ce nouvel aperçu avant d'envoyer.",
                     "The draft changed since the preview: check this new preview before sending."),
    "desk_item_title": ("Alerte n° {id}", "Alert #{id}"),
    "desk_sent_by": ("Envoyée par", "Sent by"),
    "desk_edited_by": ("Dernière correction", "Last correction"),
    "desk_state": ("État", "State"),
    "desk_log": ("Historique", "History"),
    "desk_log_sent": ("envoyée par {editor} ({via})", "sent by {editor} ({via})"),
    "desk_log_edited": ("corrigée par {editor} ({via}), version {rev}", "corrected by {editor} ({via}), revision {rev}"),
    "desk_attached": ("Articles rattachés (parus ensuite dans un flux)", "Attached articles (later found in a feed)"),
    "desk_duplicate_of": ("Doublon de l'alerte n° {id} : elle n'est pas partie.",
                          "Duplicate of alert #{id}: it was not sent."),
    "desk_deliveries": ("Envois", "Deliveries"),
    "desk_correct": ("Corriger", "Correct"),
    "desk_correct_title": ("Corriger l'alerte", "Correct the alert"),
    "desk_correct_note": ("Une correction modifie le message déjà posté sur Telegram et envoie une mise à jour "
                          "par e-mail à ceux qui ont reçu l'alerte.",
                          "A correction edits the post already on Telegram and mails an update to those who "
                          "got the alert."),
    "desk_send_correction": ("Envoyer la correction", "Send the correction"),
    "desk_err_title": ("Le titre est obligatoire.", "The title is required."),
    "desk_err_title_long": ("Le titre est trop long (300 caractères au plus).", "The title is too long (300 characters at most)."),
    "desk_err_body_long": ("Le texte est trop long (2 000 caractères au plus).", "The text is too long (2,000 characters at most)."),
    "desk_err_link": ("Le lien doit être une adresse http ou https complète.", "The link must be a full http or https address."),
    "desk_err_image": ("La photo doit être une adresse http ou https complète.", "The photo must be a full http or https address."),
    "desk_err_language": ("Langue inconnue (fr ou en).", "Unknown language (fr or en)."),
    "desk_err_topics": ("Trop de thèmes (20 au plus).", "Too many topics (20 at most)."),
    "desk_err_chat": ("Chaîne Telegram inconnue.", "Unknown Telegram channel."),
    "desk_err_no_channel": ("Choisissez au moins un canal configuré.", "Choose at least one configured channel."),
    "desk_err_editor": ("Indiquez qui envoie l'alerte.", "Say who sends the alert."),
    "notice_desk_sent": ("Alerte n° {item} envoyée : {n} envoi(s) en file d'attente.", "Alert #{item} sent: {n} deliveries queued."),
    "notice_desk_held": ("Alerte n° {item} en attente de validation.", "Alert #{item} waits for approval."),
    "notice_desk_duplicate": ("Alerte n° {item} non envoyée : la même information est déjà partie.",
                              "Alert #{item} not sent: the same story already went out."),
    "notice_desk_resent": ("Cette alerte (n° {item}) était déjà envoyée.", "This alert (#{item}) was already sent."),
    "notice_desk_corrected": ("Correction de l'alerte n° {item} : {n} envoi(s) en file d'attente.",
                              "Correction of alert #{item}: {n} deliveries queued."),
    "notice_desk_unchanged": ("Alerte n° {item} enregistrée (aucun envoi : rien n'était parti ou rien n'a changé).",
                              "Alert #{item} saved (nothing sent: it had not gone out, or nothing changed)."),
    "state_folded": ("mise de côté", "folded"),
    "kind_summary": ("récapitulatif", "summary"),
    "adm_chat": ("Chaîne", "Chat"),
    "adm_per_chat": ("Telegram par chaîne", "Telegram per channel"),
    # The preferences page: the pace of alerts.
    "pace_title": ("Rythme des alertes", "Alert pace"),
    "pace_max": ("Au plus ce nombre d'alertes par jour (vide : sans limite)", "At most this many alerts a day (empty: no limit)"),
    "pace_site_max": ("Le site en envoie au plus {n} par jour à chacun.", "The site sends everyone at most {n} a day."),
    "pace_quiet": ("Heures calmes (facultatif)", "Quiet hours (optional)"),
    "pace_from": ("De", "From"),
    "pace_to": ("à", "to"),
    "pace_zone": ("Fuseau horaire", "Time zone"),
    "pace_help": ("Aucune alerte ne vous est perdue : au-delà de votre limite ou pendant vos heures calmes, elles "
                  "sont gardées pour votre prochaine lettre, ou pour un seul message récapitulatif dès que vous "
                  "pouvez de nouveau en recevoir.",
                  "No alert is lost: beyond your limit or during your quiet hours they are kept for your next "
                  "digest, or for one summary mail as soon as you can receive alerts again."),
    "pace_err_cap": ("Nombre d'alertes par jour non valide (0 à 1000).", "Invalid number of alerts a day (0 to 1000)."),
    "pace_err_quiet": ("Heures calmes non valides : indiquez un début et une fin différents (HH:MM).",
                       "Invalid quiet hours: give a different start and end (HH:MM)."),
    "pace_err_zone": ("Fuseau horaire inconnu.", "Unknown time zone."),
}
for _key, (_fr, _en) in DESK.items():
    FR.setdefault(_key, _fr)
    EN.setdefault(_key, _en)
