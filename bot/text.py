"""The one text fold for comparisons (detection, topics, chrome removal, dedupe); keeps every script."""
from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

# Runs of non-word characters; the underscore counts as punctuation (vowel signs: see _keep_marks).
_NON_WORD = re.compile(r"[\W_]+")
# Marks that are default-ignorable (grapheme joiner, variation selectors): never part of a word.
_INVISIBLE = re.compile("[\u034f\u17b4\u17b5\u180b-\u180f\ufe00-\ufe0f\U000e0100-\U000e01ef]")
# Scripts written without spaces between words: a phrase in them can start or end anywhere.
# CJK ideographs (with radicals, 々〆〇 and the compatibility block), kana, Thai, Lao, Myanmar, Khmer.
# Hangul is written with spaces, so it is not here.
_UNSPACED_CLASS = (
    "\u0e00-\u0eff"  # Thai, Lao
    "\u1000-\u109f\ua9e0-\ua9ff\uaa60-\uaa7f"  # Myanmar and its extensions
    "\u1780-\u17ff\u19e0-\u19ff"  # Khmer, Khmer symbols
    "\u2e80-\u2fdf\u3005-\u3007\u3021-\u3029\u3031-\u3035\u303b\u303c"  # CJK radicals and ideographic marks
    "\u3040-\u30ff\u31f0-\u31ff\uff66-\uff9f\U0001b000-\U0001b16f"  # Hiragana, Katakana
    "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"  # CJK ideographs
)
_UNSPACED = re.compile(f"[{_UNSPACED_CLASS}]")
# Kana voicing marks are combining marks but make another syllable (て/で, ハ/バ/パ), not an accent.
_KEPT_MARKS = frozenset("\u3099\u309a")


def _bare(text: str) -> str:
    """NFKD without the combining marks (accents, harakat, points), kana voicing marks kept."""
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c) or c in _KEPT_MARKS)


def fold(text: str | None) -> str:
    """Comparison form of text: compatibility forms and accents gone, case-folded, single-spaced, every script kept."""
    if not text:
        return ""
    # NFKD splits accents off their letters and turns ﬁ, ＡＢＣ, ² into plain characters; only the
    # combining marks go, so Cyrillic, Arabic, CJK… letters stay (Arabic harakat and Hebrew points
    # are combining marks, so vowelled and bare spellings fold equal).
    bare = _bare(text)
    # casefold (not lower) so ß = ss and final ς = σ; dotless ı joins i so İstanbul = ISTANBUL = ıstanbul.
    # NFC puts back what NFKD split without a combining mark (Hangul syllables, some Indic vowels,
    # voiced kana).
    folded = unicodedata.normalize("NFC", bare.casefold().replace("ı", "i"))
    return " ".join(folded.split())


@lru_cache(maxsize=4096)
def _fold_char(ch: str) -> str:
    # fold() of one character without the whitespace handling (casefold adds no marks, checked in tests).
    return _bare(ch).casefold().replace("ı", "i")


def fold_map(text: str) -> tuple[str, list[int]]:
    """fold(text) plus, for each folded character, the index in text of the character it came from."""
    out: list[str] = []
    where: list[int] = []
    for i, ch in enumerate(text):
        for c in _fold_char(ch):
            if c.isspace():
                if out and out[-1] != " ":
                    out.append(" ")
                    where.append(i)
                continue
            if out and out[-1] != " ":
                # The NFC step of fold(): with the marks gone only two neighbours can compose (Hangul
                # jamo); the result stands for both and points at the later one so slicing up to it
                # keeps the whole syllable.
                pair = unicodedata.normalize("NFC", out[-1] + c)
                if len(pair) == 1:
                    out[-1] = pair
                    where[-1] = i
                    continue
            out.append(c)
            where.append(i)
    if out and out[-1] == " ":
        out.pop()
        where.pop()
    return "".join(out), where


def _keep_marks(m: re.Match) -> str:
    # Python's \w leaves out the vowel signs that survive fold() (Devanagari ा, Thai ั): the ones right
    # after a letter stay in its word instead of splitting it. Variation selectors and other invisible
    # marks, and marks after a symbol (the selector in ❤️), stay separators.
    run = m.group()
    kept = 0
    if m.start() > 0:
        while kept < len(run) and unicodedata.category(run[kept]) in ("Mn", "Mc") and not _INVISIBLE.match(run[kept]):
            kept += 1
    return run if kept == len(run) else run[:kept] + " "


def words(text: str | None) -> str:
    """fold(text) with every run of punctuation, symbols and spaces made one space: 'L’Élysée !' → 'l elysee'."""
    folded = fold(text)
    # The per-run check is only needed when there are marks at all (most text has none after fold()).
    marks = any(unicodedata.category(c) in ("Mn", "Mc") for c in set(folded))
    return " ".join(_NON_WORD.sub(_keep_marks if marks else " ", folded).split())


def unspaced(text: str) -> bool:
    """True when text holds a character of a script written without spaces (CJK, kana, Thai, Lao, Khmer, Myanmar)."""
    return _UNSPACED.search(text) is not None


def _is_boundary(text: str, i: int) -> bool:
    # A word ends at the edge of the text, at a space, or next to a character of an unspaced script
    # ("NHKによると": "nhk" is a word there).
    return i < 0 or i >= len(text) or text[i] == " " or _UNSPACED.match(text, i) is not None


def contains_phrase(haystack_words: str, needle_words: str) -> bool:
    """Is needle (words() form) in haystack (words() form): whole words, or anywhere for unspaced scripts?"""
    if not needle_words:
        return False
    if unspaced(needle_words):
        return needle_words in haystack_words  # 東京 in 東京で地震: there are no word boundaries to check
    start = haystack_words.find(needle_words)
    while start != -1:
        if _is_boundary(haystack_words, start - 1) and _is_boundary(haystack_words, start + len(needle_words)):
            return True
        start = haystack_words.find(needle_words, start + 1)
    return False


def norm_title(text: str) -> str:
    """Folded title without punctuation: what two sources' versions of a story share (dedupe key)."""
    return words(text)
