"""The 3 KB French Flash Info alert the baselines send (same content as the fan-out item)."""
from __future__ import annotations

from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from datetime import datetime, timezone

SENDER = "Flash Info <alertes@bench.example.org>"
PUBLIC_URL = "https://alertes.bench.example.org"
TITLE = "FLASH INFO - Séisme de magnitude 6,1 au large de la Corse, pas de victime signalée"
HEADLINE = TITLE.split(" - ", 1)[1]
LINK = "https://www.example-actu.fr/societe/2026/11/29/seisme-corse-magnitude-6-1_123456.html"
PARAGRAPHS = [
    "Un séisme de magnitude 6,1 a été enregistré samedi à 7 h 10 au large de la Corse, a "
    "annoncé le Réseau national de surveillance sismique. La secousse a été ressentie à "
    "Ajaccio, Bastia et jusque sur la côte varoise.",
    "Selon la préfecture de Corse-du-Sud, aucune victime n'est à déplorer à ce stade. Des "
    "reconnaissances sont en cours sur les bâtiments publics.",
    "« Nous restons vigilants face au risque de répliques », a déclaré la préfète.",
]


def texts(unsubscribe: str, preferences: str) -> tuple[str, str, str]:
    """(subject, plain text, html) of the alert for one recipient's links."""
    text = "\n\n".join([HEADLINE, *PARAGRAPHS, f"Lire l'article : {LINK}",
                        f"Gérer mes préférences : {preferences}",
                        f"Se désabonner : {unsubscribe}"]) + "\n"
    paras = "".join(f'<p style="font:16px/1.5 Georgia">{p}</p>'
                    for p in PARAGRAPHS)
    html = (
        '<!doctype html><html lang="fr"><body style="margin:0;background:#f4f4f4">'
        '<div style="max-width:600px;margin:auto;background:#fff;padding:16px">'
        '<span style="background:#c00;color:#fff;padding:2px 6px;font:bold 12px Arial">FLASH INFO</span>'
        f'<h1 style="font:bold 22px/1.3 Arial">{HEADLINE}</h1>{paras}'
        f'<p><a href="{LINK}" style="color:#c00">Lire l\'article</a></p>'
        f'<p style="font:12px Arial;color:#666"><a href="{preferences}">Gérer mes préférences</a> · '
        f'<a href="{unsubscribe}">Se désabonner</a></p></div></body></html>'
    )
    return TITLE.replace(" - ", " : ", 1), text, html


def build(recipient: str, i: int) -> EmailMessage:
    """A new EmailMessage for one recipient, as rss2email builds one per recipient."""
    unsub = f"{PUBLIC_URL}/unsubscribe/tok{i:08d}"
    prefs = f"{PUBLIC_URL}/preferences/tok{i:08d}"
    subject, text, html = texts(unsub, prefs)
    msg = EmailMessage()
    msg["From"] = SENDER
    msg["To"] = recipient
    msg["Subject"] = subject
    msg["Date"] = format_datetime(datetime.now(timezone.utc))
    msg["Message-ID"] = make_msgid(domain="bench.example.org")
    msg["List-Unsubscribe"] = f"<{unsub}>"
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg.set_content(text)
    msg.add_alternative(html, subtype="html")
    return msg


def prerendered() -> bytes:
    """The alert as bytes, rendered once (the raw ceiling sends these unchanged)."""
    return build("abonne@example.org", 0).as_bytes()


if __name__ == "__main__":
    print(len(prerendered()), "bytes")
