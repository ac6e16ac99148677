"""Catalog tooling for `make messages` and the tests: reference comments, completeness checks, compiling.

`python -m bot.catalogs annotate POT` puts the French and English text of every key into the
template as comments (`#. fr: …`), so `pybabel update`/`init` hand translators the text, not only the key.
`python -m bot.catalogs check [--pot POT]` lists what a catalog lacks; `compile DIR` builds the .mo files.
"""
from __future__ import annotations

import re
import sys
from datetime import datetime, timezone
from pathlib import Path

from babel.core import UnknownLocaleError
from babel.dates import format_datetime
from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.plurals import get_plural
from babel.messages.pofile import read_po, write_po

from bot.i18n import DOMAIN, LOCALE_DIR

REFERENCE = ("fr", "en")  # shown to translators next to each key
PATTERN_KEYS = ("datetime_long", "datetime_long_day1", "date_long", "date_long_day1")  # CLDR date patterns
_FIELD = re.compile(r"\{(\w+)\}")
_TAG = re.compile(r"</?[a-z]+>")


def po_path(lang: str, locale_dir: Path = LOCALE_DIR) -> Path:
    """Where the catalog of `lang` lives."""
    return locale_dir / lang / "LC_MESSAGES" / f"{DOMAIN}.po"


def languages(locale_dir: Path = LOCALE_DIR) -> list[str]:
    """Every language with a .po catalog, sorted."""
    return sorted(p.parent.parent.name for p in locale_dir.glob(f"*/LC_MESSAGES/{DOMAIN}.po"))


def read(path: Path) -> Catalog:
    """One .po or .pot file."""
    with path.open("rb") as f:
        return read_po(f, locale=None if path.suffix == ".pot" else path.parent.parent.name)


def _forms(message) -> list[str]:
    return list(message.string) if isinstance(message.string, (list, tuple)) else [message.string or ""]


def annotate(pot: Path, locale_dir: Path = LOCALE_DIR) -> None:
    """Replace the reference comments of every template entry with today's French and English text."""
    template = read(pot)
    refs = {lang: read(po_path(lang, locale_dir)) for lang in REFERENCE if po_path(lang, locale_dir).is_file()}
    prefixes = tuple(f"{lang}: " for lang in REFERENCE)
    for message in template:
        if not message.id:
            continue
        comments = [c for c in message.auto_comments if not c.startswith(prefixes)]
        for lang, catalog in refs.items():
            ref = catalog.get(message.id)
            if ref is not None and any(_forms(ref)):
                comments.append(f"{lang}: " + " | ".join(_forms(ref)))
        message.auto_comments = comments
    with pot.open("wb") as f:
        write_po(f, template, width=76, sort_output=True, include_lineno=False)


def _entry_problems(lang: str, message, french) -> list[str]:
    key = message.id[0] if isinstance(message.id, (list, tuple)) else message.id
    forms = _forms(message)
    out = []
    if message.fuzzy:
        out.append(f"{lang}: {key}: fuzzy (check the translation, then remove the fuzzy flag)")
    if not all(f.strip() for f in forms):
        out.append(f"{lang}: {key}: untranslated")
    if french is not None and lang != "fr":
        allowed = {f for form in _forms(french) for f in _FIELD.findall(form)} | ({"n"} if message.pluralizable else set())
        unknown = {f for form in forms for f in _FIELD.findall(form)} - allowed
        if unknown:
            out.append(f"{lang}: {key}: unknown field(s) {sorted(unknown)} (the French text has {sorted(allowed)})")
        if key.endswith("_h") and any(sorted(_TAG.findall(f)) != sorted(_TAG.findall(_forms(french)[0])) for f in forms):
            out.append(f"{lang}: {key}: trusted HTML must keep the French tags exactly")
    if key in PATTERN_KEYS and all(forms):
        try:
            format_datetime(datetime(2026, 11, 1, 6, 5, tzinfo=timezone.utc), forms[0], locale=lang)
        except Exception as exc:  # noqa: BLE001 - Babel raises several kinds for a bad pattern
            out.append(f"{lang}: {key}: not a CLDR date pattern: {exc}")
    return out


def problems(locale_dir: Path = LOCALE_DIR, pot: Path | None = None) -> list[str]:
    """Everything that makes a catalog incomplete or wrong: one line each (empty list: all good)."""
    template = read(pot) if pot else None
    wanted = {m.id[0] if m.pluralizable else m.id for m in template if m.id} if template else None
    french = read(po_path("fr", locale_dir)) if po_path("fr", locale_dir).is_file() else None
    out = [] if french else ["fr: no French catalog (the default language)"]
    for lang in languages(locale_dir):
        catalog = read(po_path(lang, locale_dir))
        try:
            expected = get_plural(lang).num_plurals
        except UnknownLocaleError:
            out.append(f"{lang}: not a language Babel knows")
            continue
        if catalog.num_plurals != expected:
            out.append(f"{lang}: Plural-Forms has {catalog.num_plurals} forms, the language has {expected}")
        have = set()
        for message in catalog:
            if not message.id:
                continue
            key = message.id[0] if message.pluralizable else message.id
            have.add(key)  # (Babel pads a missing plural form with "": it shows as untranslated)
            out += _entry_problems(lang, message, french.get(message.id) if french else None)
        out += [f"{lang}: {key}: obsolete (kept as #~, run make messages)" for key in sorted(
            m.id[0] if m.pluralizable else m.id for m in catalog.obsolete.values())]
        if wanted is not None:
            out += [f"{lang}: {key}: missing (run make messages, then translate it)" for key in sorted(wanted - have)]
            out += [f"{lang}: {key}: no longer in the templates or code" for key in sorted(have - wanted)]
    return out


def compile_all(locale_dir: Path = LOCALE_DIR) -> list[Path]:
    """Write each catalog's .mo next to its .po (fuzzy entries left out, as pybabel compile does)."""
    written = []
    for lang in languages(locale_dir):
        po = po_path(lang, locale_dir)
        with po.with_suffix(".mo").open("wb") as f:
            write_mo(f, read(po), use_fuzzy=False)
        written.append(po.with_suffix(".mo"))
    return written


def main(argv: list[str]) -> int:
    """`annotate POT`, `check [--pot POT]` (exit 1 when a catalog needs work) or `compile [DIR]`."""
    if argv[:1] == ["annotate"] and len(argv) == 2:
        annotate(Path(argv[1]))
        return 0
    if argv[:1] == ["check"] and len(argv) in (1, 3) and argv[1:2] in ([], ["--pot"]):
        found = problems(pot=Path(argv[2]) if len(argv) == 3 else None)
        print("\n".join(found) or f"catalogs complete: {', '.join(languages())}")
        return 1 if found else 0
    if argv[:1] == ["compile"] and len(argv) <= 2:
        print("\n".join(str(p) for p in compile_all(Path(argv[1]) if len(argv) == 2 else LOCALE_DIR)))
        return 0
    print("usage: python -m bot.catalogs annotate POT | check [--pot POT] | compile [LOCALE_DIR]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
