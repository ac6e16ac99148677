"""Flash Info detection, table-driven, French and English titles."""
from __future__ import annotations

import pytest

from bot.config import FlashConfig
from bot.ingest.detect import Rules, classify, detect, fold
from bot.text import norm_title
from bot.models import Item

DEFAULT = Rules.from_config(FlashConfig())

TITLES = [
    # (title, is_flash, label, headline)
    ("FLASH INFO : Séisme de magnitude 6 au Japon", True, "FLASH INFO", "Séisme de magnitude 6 au Japon"),
    ("Flash info - Le président démissionne", True, "FLASH INFO", "Le président démissionne"),
    ("flash info: incendie à Lyon", True, "FLASH INFO", "incendie à Lyon"),
    ("FLASH INFO\u00a0: espace insécable", True, "FLASH INFO", "espace insécable"),
    ("FLASH INFO\u202f: espace fine", True, "FLASH INFO", "espace fine"),
    ("Flash Info — Explosion dans le port", True, "FLASH INFO", "Explosion dans le port"),
    ("Flash Info | Grève générale", True, "FLASH INFO", "Grève générale"),
    ("URGENT – Explosion à Marseille", True, "URGENT", "Explosion à Marseille"),
    ("Urgent : évacuation du stade", True, "URGENT", "évacuation du stade"),
    ("URGENT Le Premier ministre démissionne", True, "URGENT", "Le Premier ministre démissionne"),
    ("[URGENT] Coupure d'électricité géante", True, "URGENT", "Coupure d'électricité géante"),
    ("🔴 FLASH INFO : Attentat déjoué", True, "FLASH INFO", "Attentat déjoué"),
    ("« ALERTE » Crue de la Seine", True, "ALERTE", "Crue de la Seine"),
    ("Dernière minute : accord trouvé", True, "DERNIÈRE MINUTE", "accord trouvé"),
    ("DERNIERE MINUTE - sans accents", True, "DERNIÈRE MINUTE", "sans accents"),
    ("dèrnière mînute : accents en trop", True, "DERNIÈRE MINUTE", "accents en trop"),
    ("Flash : la Bourse décroche", True, "FLASH", "la Bourse décroche"),
    ("BREAKING NEWS: Earthquake hits Tokyo", True, "BREAKING NEWS", "Earthquake hits Tokyo"),
    ("Breaking: Parliament dissolved", True, "BREAKING", "Parliament dissolved"),
    ("BREAKING – Markets crash", True, "BREAKING", "Markets crash"),
    # Not Flash Info.
    ("Flashback sur novembre 2015 : les survivants témoignent", False, None, None),
    ("Flashback: the 1990s revisited", False, None, None),
    ("Flash-ball : la police mise en cause", False, None, None),
    ("Flashé à 200 km/h sur l'autoroute", False, None, None),
    ("Urgent besoin de donneurs de sang", False, None, None),
    ("Urgentistes en grève à Rennes", False, None, None),
    ("Breaking Bad : la série revient", False, None, None),
    ("Alerte météo orange dans le Var", False, None, None),
    ("Les infos flash de la matinée", False, None, None),
    ("Économie : la Bourse de Paris en hausse", False, None, None),
    ("", False, None, None),
]


@pytest.mark.parametrize("title,is_flash,label,headline", TITLES, ids=[t[0][:40] or "empty" for t in TITLES])
def test_title_prefixes(title, is_flash, label, headline):
    got = classify(title, [], DEFAULT)
    assert got[0] is is_flash
    assert got[1] == label
    assert got[2] == (headline if is_flash else " ".join(title.split()))


@pytest.mark.parametrize("categories,label", [
    (["Monde", "Flash Info"], "Flash Info"),
    (["flash info"], "Flash Info"),
    (["BREAKING NEWS"], "Breaking News"),
    (["Urgent"], "Urgent"),
    (["Monde", "Politique"], None),
    (["Flash Infos"], None),
])
def test_categories(categories, label):
    is_flash, got, headline = classify("Séisme en Crète", categories, DEFAULT)
    assert is_flash is (label is not None)
    assert got == label and headline == "Séisme en Crète"


@pytest.mark.parametrize("title,keywords,expected", [
    ("Séisme en Crète", ["séisme"], True),
    ("SEISME en Crète", ["Séisme"], True),
    ("Les séismes de l'année", ["séisme"], False),  # whole words only
    ("Attentat à Paris", ["attentat", "explosion"], True),
    ("Tout va bien", ["attentat"], False),
])
def test_keywords(title, keywords, expected):
    rules = Rules.from_config(FlashConfig(keywords=keywords))
    assert classify(title, [], rules)[0] is expected


def test_all_flash_source_and_custom_prefixes():
    assert classify("Une dépêche ordinaire", [], DEFAULT, all_flash=True) == (True, None, "Une dépêche ordinaire")
    rules = Rules.from_config(FlashConfig(title_prefixes=["ALERTE INFO"], categories=[]))
    assert classify("Alerte info : test", [], rules) == (True, "ALERTE INFO", "test")
    assert classify("FLASH INFO : test", [], rules)[0] is False


def test_label_only_title_takes_headline_from_summary():
    item = Item(key="k", title="FLASH INFO :", link=None, summary_html="<p>« Les attaques de Haftar »</p><p>Suite</p>")
    got = detect(item, FlashConfig())
    assert got.is_flash and got.label == "FLASH INFO" and got.headline == "« Les attaques de Haftar »"


def test_fold_and_norm_title():
    assert fold("  Dernière   MINUTE ") == "derniere minute"
    assert norm_title("FLASH : L’Élysée confirme !") == "flash l elysee confirme"
