"""Translations: the compiled gettext catalogs in bot/locale decide the languages; `_()`/`ngettext()` for code and templates.

Message ids are keys (`signup_title`, `digest_intro`…); every language, French included, is a
catalog (`bot/locale/<lang>/LC_MESSAGES/messages.po`, compiled to `.mo` at install). Translations
use `{name}` fields. `make messages` extracts the keys from templates and code (docs/development.md).
"""
from __future__ import annotations

import gettext as _gettext
import logging
import string
from datetime import date, datetime, tzinfo
from functools import lru_cache
from pathlib import Path
from typing import Any

from babel import Locale
from babel.dates import format_date, format_datetime
from babel.numbers import format_decimal
from jinja2 import Environment, pass_context
from markupsafe import Markup

log = logging.getLogger(__name__)
LOCALE_DIR = Path(__file__).resolve().parent / "locale"
DOMAIN = "messages"
DEFAULT = "fr"  # the language of the first catalog the fallback chain ends with
_MISSING_CAP = 1000
missing_keys: set[str] = set()  # keys asked for and found in no catalog (the tests fail on any)


def N_(key: str) -> str:
    """Marks a key that reaches `_()` through a variable, so `make messages` extracts it."""
    return key


@lru_cache(maxsize=1)
def available() -> tuple[str, ...]:
    """The languages: every `bot/locale/<lang>` holding a compiled catalog, sorted by code."""
    return tuple(sorted(p.parent.parent.name for p in LOCALE_DIR.glob(f"*/LC_MESSAGES/{DOMAIN}.mo")))


def check_language(value: str) -> str:
    """`value` when a compiled catalog exists for it, else ValueError naming the available ones."""
    langs = available()
    if not langs:
        raise ValueError(f"no compiled translation catalog in {LOCALE_DIR} "
                         "(run `make messages`, or reinstall: the install step compiles them)")
    if value not in langs:
        raise ValueError(f"unknown language {value!r}; available: {', '.join(langs)}")
    return value


def pick_language(language: str | None, default: str = DEFAULT) -> str:
    """A language we have: the asked one (`fr-FR` means `fr`), else `default`, else the first catalog."""
    langs = available()
    asked = (language or "").strip().replace("-", "_")
    for choice in (asked, asked.split("_")[0].lower(), default):
        if choice in langs:
            return choice
    return DEFAULT if DEFAULT in langs or not langs else langs[0]


@lru_cache(maxsize=None)
def _catalog(lang: str) -> _gettext.NullTranslations:
    path = LOCALE_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.mo"
    if not path.is_file():
        return _Missing(_gettext.NullTranslations())
    with path.open("rb") as f:
        catalog = _gettext.GNUTranslations(f)
    # A key missing here shows the French text; missing in French too, the key itself (noted).
    catalog.add_fallback(_catalog(DEFAULT) if lang != DEFAULT else _Missing(_gettext.NullTranslations()))
    return catalog


class _Missing(_gettext.NullTranslations):
    """The end of the fallback chain: French, then the key itself (recorded, logged once)."""

    def __init__(self, inner: _gettext.NullTranslations) -> None:
        super().__init__()
        self.inner = inner

    def _note(self, key: str) -> None:
        if key not in missing_keys and len(missing_keys) < _MISSING_CAP:
            missing_keys.add(key)
            log.warning("no translation for %r in any catalog (run make messages, then translate it)", key)

    def gettext(self, message: str) -> str:
        found = self.inner.gettext(message)
        if found == message:
            self._note(message)
        return found

    def ngettext(self, msgid1: str, msgid2: str, n: int) -> str:
        found = self.inner.ngettext(msgid1, msgid2, n)
        if found in (msgid1, msgid2):
            self._note(msgid1)
        return found


class _Fields(dict):
    """Format fields where a field the translation names but the code does not pass stays as written."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


_FORMATTER = string.Formatter()


def _fill(text: str, fields: dict[str, Any]) -> str:
    if not fields:
        return text
    try:
        return _FORMATTER.vformat(text, (), _Fields(fields))
    except (ValueError, IndexError, AttributeError):  # a translation with a stray brace: show it unformatted
        return text


class Translator:
    """The strings of one language: `gettext(key, **fields)`, `ngettext(key, key_plural, n, **fields)`."""

    def __init__(self, lang: str) -> None:
        self.lang = lang
        self._t = _catalog(lang)

    def gettext(self, key: str, **fields: Any) -> str:
        """The translation of `key` with its `{fields}` filled in."""
        return _fill(self._t.gettext(key), fields)

    def ngettext(self, key: str, plural: str, n: int | float, **fields: Any) -> str:
        """The plural form for `n` of this language; `{n}` is n written the language's way."""
        return _fill(self._t.ngettext(key, plural, n), {"n": number(n, self.lang), **fields})

    def markup(self, key: str, **fields: Any) -> Markup:
        """A trusted-HTML translation (keys ending in `_h`): the text is ours, every field is escaped."""
        return Markup(self._t.gettext(key)).format(**fields)


@lru_cache(maxsize=64)
def translator(lang: str | None) -> Translator:
    """The Translator of `lang` (unknown → the default language)."""
    return Translator(pick_language(lang))


@lru_cache(maxsize=None)
def direction(lang: str) -> str:
    """"rtl" or "ltr": the writing direction of the language, from Babel's locale data."""
    try:
        return Locale.parse(lang).text_direction
    except (ValueError, LookupError):
        return "ltr"


@lru_cache(maxsize=None)
def language_name(lang: str) -> str:
    """The language's name in itself: Français, English, العربية, Deutsch."""
    try:
        name = Locale.parse(lang).get_display_name(lang) or lang
    except (ValueError, LookupError):
        return lang
    return name[:1].upper() + name[1:]


def number(n: int | float, lang: str) -> str:
    """A count or quantity written the language's way (Babel)."""
    return format_decimal(n, locale=lang)


def format_when(when: datetime, lang: str, tz: tzinfo) -> str:
    """Date and time in `tz` with the language's pattern: "29 novembre 2026 à 07:10", "29 نوفمبر 2026، 7:10 ص"."""
    local = when.astimezone(tz)
    t = translator(lang)
    # Translators: datetime_long and date_long are CLDR date patterns (d day, MMMM month name, y year,
    # HH:mm 24-hour clock, h:mm a 12-hour clock, 'text' literal); the _day1 ones serve the 1st of a month.
    pattern = t.gettext("datetime_long_day1") if local.day == 1 else t.gettext("datetime_long")
    return format_datetime(local, pattern, tzinfo=tz, locale=t.lang)


def format_day(day: date, lang: str) -> str:
    """A day with the language's pattern: "29 novembre 2026", "November 29, 2026"."""
    t = translator(lang)
    return format_date(day, t.gettext("date_long_day1") if day.day == 1 else t.gettext("date_long"), locale=t.lang)


# --- Jinja2: the i18n extension, with callables that read the template's `lang` -----------------
@pass_context
def _jinja_gettext(ctx: Any, key: str, **fields: Any) -> str:
    return translator(ctx.get("lang")).gettext(key, **fields)


@pass_context
def _jinja_ngettext(ctx: Any, key: str, plural: str, n: int | float, **fields: Any) -> str:
    return translator(ctx.get("lang")).ngettext(key, plural, n, **fields)


@pass_context
def _jinja_markup(ctx: Any, key: str, **fields: Any) -> Markup:
    return translator(ctx.get("lang")).markup(key, **fields)


def install(env: Environment) -> Environment:
    """Adds jinja2.ext.i18n to `env`: `_()`, `gettext()`, `ngettext()` and `_h()` in the template's `lang`."""
    env.add_extension("jinja2.ext.i18n")
    env.install_gettext_callables(_jinja_gettext, _jinja_ngettext, newstyle=False)  # type: ignore[attr-defined]
    env.globals.update(_h=_jinja_markup, language_name=language_name, all_languages=available(),
                       text_direction=direction)
    return env
