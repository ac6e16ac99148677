"""The one text fold (bot.text), table-driven over several scripts, and what topics and detection make of it."""
from __future__ import annotations

import unicodedata

import pytest

from bot.config import FlashConfig
from bot.ingest.detect import Rules, classify
from bot.text import norm_title
from bot.render.html.signals import label, related_heading
from bot.text import contains_phrase, fold, fold_map, unspaced, words
from bot.topics import ItemTopics, wants

FOLD_CASES = [
    # (text, fold)
    # French: accents go, œ/æ are letters of their own (NFKD does not split them), ﬁ/ﬂ ligatures do split.
    ("Élysée", "elysee"),
    ("  Dernière   MINUTE ", "derniere minute"),
    ("Cœur de Lœuvre", "cœur de lœuvre"),
    ("ŒUVRE", "œuvre"),
    ("Ex æquo", "ex æquo"),
    ("la ﬁnale du ﬂeuve", "la finale du fleuve"),
    ("L’Élysée confirme !", "l’elysee confirme !"),
    ("FLASH\u00a0INFO\u202f:", "flash info :"),
    ("Noël à l'hôpital", "noel a l'hopital"),
    # English.
    ("BREAKING NEWS", "breaking news"),
    ("Naïve café", "naive cafe"),
    # German ß (casefold, not lower).
    ("Straße", "strasse"),
    # Ukrainian: the letters stay; ї/й lose their diacritic like é does.
    ("Україна", "украіна"),
    ("УКРАЇНА", "украіна"),
    ("їжак", "іжак"),
    ("Київ", "киів"),
    # Arabic: letters stay, harakat (combining marks) go.
    ("القاهرة", "القاهرة"),
    ("القَاهِرَة", "القاهرة"),
    # Greek: final sigma and sigma fold equal; tonos goes.
    ("ΟΔΟΣ", "οδοσ"),
    ("οδός", "οδοσ"),
    ("Αθήνα", "αθηνα"),
    # Japanese: ideographs and kana stay, full-width Latin becomes ASCII.
    ("東京", "東京"),
    ("ＡＢＣ", "abc"),
    ("ＮＨＫによると", "nhkによると"),
    # Turkish: İ, I, ı and i all fold to i.
    ("İstanbul", "istanbul"),
    ("ISTANBUL", "istanbul"),
    ("ıstanbul", "istanbul"),
    ("istanbul", "istanbul"),
    # Korean: NFKD splits syllables into jamo, the final NFC puts them back.
    ("서울", "서울"),
    ("\u1109\u1165\u110b\u116e\u11af", "서울"),  # the same word typed as decomposed jamo
    # Hebrew and Devanagari keep their letters.
    ("יְרוּשָׁלַיִם", "ירושלים"),
    ("भारत", "भारत"),
    ("", ""),
    ("   ", ""),
]


@pytest.mark.parametrize("text,folded", FOLD_CASES, ids=[repr(c[0])[:30] for c in FOLD_CASES])
def test_fold(text, folded):
    assert fold(text) == folded
    # fold_map is the same fold, with a way back to the original characters.
    got, where = fold_map(text)
    assert got == folded and len(where) == len(got) and where == sorted(where)


def test_fold_of_none_is_empty():
    assert fold(None) == "" and words(None) == ""


@pytest.mark.parametrize("group", [
    ["İstanbul", "ISTANBUL", "ıstanbul", "istanbul", "Istanbul"],
    ["ΟΔΟΣ", "οδος", "οδοσ", "Οδός"],
    ["القاهرة", "القَاهِرَة", "القاهِرة"],
    ["Україна", "УКРАЇНА", "україна"],
    ["ABC", "ＡＢＣ", "abc"],
    ["Élysée", "ELYSEE", "elysee", "E\u0301lyse\u0301e"],
])
def test_spellings_fold_equal(group):
    assert len({fold(t) for t in group}) == 1


def test_final_sigma_casefolds_to_sigma():
    assert "ς".casefold() == "σ".casefold() == "σ"
    assert fold("ς") == fold("σ") == fold("Σ")


WORDS_CASES = [
    # (text, words)
    ("Élysée-Côte", "elysee cote"),
    ("FLASH : L’Élysée confirme !", "flash l elysee confirme"),
    ("« Cœur » — d'artichaut", "cœur d artichaut"),
    ("snake_case & co.", "snake case co"),
    ("Breaking: Tokyo, Japan", "breaking tokyo japan"),
    ("Україна, їжак!", "украіна іжак"),
    ("«القاهرة»، اليوم", "القاهرة اليوم"),
    ("Η Αθήνα; Ναι.", "η αθηνα ναι"),
    ("東京・大阪", "東京 大阪"),
    # Kana voicing marks (゛゜) make another syllable, not an accent: で stays で, バス is not パス.
    ("東京で地震", "東京で地震"),
    ("ﾊﾞｽ", "バス"),  # half-width kana compose to the full-width voiced syllable
    ("パス", "パス"),
    ("ＡＢＣ！", "abc"),
    ("İstanbul'da", "istanbul da"),
    # Vowel signs after a letter stay in its word (Python's \W counts them as non-word).
    ("नमस्ते भारत!", "नमसते भारत"),
    ("ภาษาไทย", "ภาษาไทย"),
    # An emoji with its variation selector is a separator, as before.
    ("Share ❤️", "share"),
    ("!!!", ""),
]


@pytest.mark.parametrize("text,expected", WORDS_CASES, ids=[repr(c[0])[:30] for c in WORDS_CASES])
def test_words(text, expected):
    assert words(text) == expected


def test_dedupe_title_and_chrome_text_are_words():
    assert norm_title("FLASH : L’Élysée confirme !") == "flash l elysee confirme"
    assert label("Laisser un commentaire…") == "laisser un commentaire"  # chrome labels compare in words() form
    assert related_heading("À lire aussi :")


def test_fold_map_points_back_to_the_original():
    text = "Œuvre ﬁnale  à  Paris"
    folded, where = fold_map(text)
    assert folded == "œuvre finale a paris"
    assert text[where[folded.index("paris")]:] == "Paris"
    # Both letters of the ligature come from the one character.
    assert where[6] == where[7] == text.index("ﬁ")
    # A syllable typed as jamo points at its last jamo, so slicing up to it keeps the syllable.
    jamo = "\u1109\u1165 x"
    folded, where = fold_map(jamo)
    assert folded == "서 x" and jamo[: where[0] + 1] == "\u1109\u1165"


def test_fold_map_is_fold_for_every_bmp_character():
    for cp in range(0x10000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        text = f"a{chr(cp)}b "
        assert fold_map(text)[0] == fold(text), hex(cp)


def test_casefold_adds_no_marks_after_nfkd():
    # _fold_char relies on this: casefold never brings back a combining or precomposed character.
    for cp in range(0x10000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        bare = "".join(c for c in unicodedata.normalize("NFKD", chr(cp)) if not unicodedata.combining(c))
        assert unicodedata.normalize("NFKD", bare.casefold()) == bare.casefold(), hex(cp)


@pytest.mark.parametrize("text,expected", [
    ("東京", True), ("とうきょう", True), ("カタカナ", True), ("กรุงเทพ", True), ("ພາສາລາວ", True),
    ("ភ្នំពេញ", True), ("မြန်မာ", True), ("iphone 東京", True),
    ("서울", False), ("україна", False), ("القاهرة", False), ("paris", False), ("", False),
])
def test_unspaced(text, expected):
    assert unspaced(text) is expected


PHRASE_CASES = [
    # (haystack text, needle text, contained)
    ("Séisme de magnitude 6 au Japon", "japon", True),
    ("Séisme de magnitude 6 au Japon", "japo", False),  # whole words only
    ("Les séismes de l'année", "séisme", False),
    ("Grève sur la côte d'Azur", "la côte", True),
    ("Grève sur la côte d'Azur", "côte d", True),
    ("Grève sur la côte d'Azur", "sur la cote d azur", True),
    ("Україна та Польща підписали угоду", "Україна", True),
    ("Україна та Польща підписали угоду", "Польща підписали", True),
    ("Українська мова", "Україна", False),
    ("انفجار قرب محطة مترو في القاهرة", "القاهرة", True),
    ("انفجار قرب محطة مترو في الإسكندرية", "القاهرة", False),
    ("東京で震度5弱の地震", "東京", True),  # no spaces in Japanese: a substring is enough
    ("東京で震度5弱の地震", "地震", True),
    ("大阪で大雨警報", "東京", False),
    ("NHKによると東京で地震", "nhk", True),  # a Latin word ends where the kana start
    ("NHKによると東京で地震", "nh", False),
    ("서울에서 지진 발생", "서울에서", True),  # Hangul is spaced: whole words
    ("서울에서 지진 발생", "서울", False),
    ("รัฐบาลไทยประกาศภาวะฉุกเฉิน", "ประกาศ", True),
    ("anything", "", False),
]


@pytest.mark.parametrize("haystack,needle,expected", PHRASE_CASES, ids=[c[1] or "empty" for c in PHRASE_CASES])
def test_contains_phrase(haystack, needle, expected):
    assert contains_phrase(words(haystack), words(needle)) is expected


TOPIC_CASES = [
    # (subscriber topics, item, wants it)
    (["Україна"], {"title": "Україна та Польща підписали угоду про кордон"}, True),
    (["Україна"], {"title": "Вибори у Франції: другий тур"}, False),
    (["УКРАЇНА"], {"title": "Україна та Польща підписали угоду про кордон"}, True),
    (["東京"], {"title": "東京で震度5弱の地震"}, True),
    (["東京"], {"title": "大阪で大雨警報"}, False),
    (["القاهرة"], {"title": "انفجار قرب محطة مترو في القاهرة"}, True),
    (["القَاهِرَة"], {"title": "انفجار قرب محطة مترو في القاهرة"}, True),
    (["القاهرة"], {"title": "فيضانات في الإسكندرية"}, False),
    (["Αθήνα"], {"title": "Σεισμός στην ΑΘΗΝΑ"}, True),
    (["İstanbul"], {"title": "Deprem ISTANBUL'da hissedildi"}, True),
    (["séisme"], {"title": "SEISME au Japon"}, True),
    (["football"], {"title": "SEISME au Japon"}, False),
    # A topic in the item's summary or categories, in any script.
    (["Київ"], {"title": "Обстріл", "summary_html": "<p>Вибухи чули в Києві.</p>"}, False),  # no stemming
    (["Київ"], {"title": "Обстріл", "summary_html": "<p>Вибухи чули: <b>Київ</b>, Одеса.</p>"}, True),
    (["Спорт"], {"title": "Динамо перемогло", "categories": ["СПОРТ"]}, True),
    (["国際"], {"title": "ニュース", "source_category": "国際"}, True),
    # A topic that folds to nothing is no filter at all, as before.
    (["!!!"], {"title": "Anything at all"}, True),
    (["!!!", "   "], {"title": "Anything at all"}, True),
    ([], {"title": "Anything at all"}, True),
    (None, {"title": "Anything at all"}, True),
    (["!!!", "東京"], {"title": "大阪で大雨警報"}, False),
]


@pytest.mark.parametrize("topics,item,expected", TOPIC_CASES, ids=[str(c[0]) for c in TOPIC_CASES])
def test_topics(topics, item, expected):
    assert wants(topics, item) is expected
    assert ItemTopics(item).matches(topics) is expected


FLASH = Rules.from_config(FlashConfig(
    title_prefixes=["FLASH INFO", "URGENT", "ТЕРМІНОВО", "عاجل"],
    keywords=["вибух", "القاهرة", "地震"],
))


@pytest.mark.parametrize("title,is_flash,label,headline", [
    ("FLASH INFO : Séisme de magnitude 6 au Japon", True, "FLASH INFO", "Séisme de magnitude 6 au Japon"),
    ("Flash info - Вибух у Києві", True, "FLASH INFO", "Вибух у Києві"),
    ("Терміново: обстріл Харкова", True, "ТЕРМІНОВО", "обстріл Харкова"),
    ("[ТЕРМІНОВО] Обстріл Харкова", True, "ТЕРМІНОВО", "Обстріл Харкова"),
    ("عاجل: انفجار قرب محطة مترو", True, "عاجل", "انفجار قرب محطة مترو"),
    # Keywords: whole words in spaced scripts, anywhere in CJK.
    ("Потужний вибух у Києві", True, None, "Потужний вибух у Києві"),
    ("ВИБУХ у Києві", True, None, "ВИБУХ у Києві"),
    ("Вибухівку знайшли в парку", False, None, "Вибухівку знайшли в парку"),
    ("انفجار قرب محطة مترو في القاهرة", True, None, "انفجار قرب محطة مترو في القاهرة"),
    ("مؤتمر في الإسكندرية", False, None, "مؤتمر في الإسكندرية"),
    ("東京で震度5弱の地震", True, None, "東京で震度5弱の地震"),
    ("大阪で大雨警報", False, None, "大阪で大雨警報"),
    ("Flashback sur l'Україна", False, None, "Flashback sur l'Україна"),
])
def test_detection_in_several_scripts(title, is_flash, label, headline):
    assert classify(title, [], FLASH) == (is_flash, label, headline)


def test_detection_categories_in_cyrillic():
    rules = Rules.from_config(FlashConfig(categories=["Терміново"]))
    assert classify("Обстріл Харкова", ["ТЕРМІНОВО"], rules) == (True, "Терміново", "Обстріл Харкова")
    assert classify("Обстріл Харкова", ["Новини"], rules)[0] is False
