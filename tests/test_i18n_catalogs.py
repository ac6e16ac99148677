"""The translation catalogs: `make messages` round-trips, a missing or doubtful translation fails, the
compiled .mo files match their .po sources, and a new language is five steps away (README)."""
from __future__ import annotations

import gettext
import re
import shutil
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import pytest
from babel.messages.pofile import read_po, write_po

from bot import catalogs, i18n
from bot.config import ConfigError, parse_config
from bot.models import AlertState, BounceKind, DeliveryState, InboundState
from bot.store import subscribers as subs
from bot.web.i18n import LABEL_KEYS

ROOT = Path(__file__).resolve().parent.parent
PYBABEL = Path(sys.prefix) / "bin" / "pybabel"
SHIPPED = ["ar", "de", "en", "fr"]

pytestmark = pytest.mark.skipif(shutil.which("make") is None or not PYBABEL.exists(),
                                reason="LOUD SKIP: `make` or pybabel missing: make messages cannot be exercised")


def copy_tree(dest: Path) -> Path:
    """What `make messages` reads and writes: Makefile, babel.cfg, bot/ (without compiled catalogs), templates/."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.mo", "*.pot")
    for name in ("Makefile", "babel.cfg"):
        shutil.copy2(ROOT / name, dest / name)
    for name in ("bot", "templates"):
        shutil.copytree(ROOT / name, dest / name, ignore=ignore)
    return dest


def make_messages(tree: Path) -> subprocess.CompletedProcess:
    """`make messages` with this interpreter's venv (STAMP= : the venv is already installed)."""
    run = subprocess.run(["make", "-s", "messages", f"VENV={sys.prefix}", "STAMP="], cwd=tree, capture_output=True,
                         text=True, timeout=120, env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"})
    assert run.returncode == 0, run.stdout + run.stderr
    return run


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> Path:
    """A copy of the tree after `make messages`."""
    tree = copy_tree(tmp_path_factory.mktemp("messages"))
    make_messages(tree)
    return tree


def test_make_messages_round_trips_with_no_diff(made):
    for lang in catalogs.languages():
        po = catalogs.po_path(lang)
        assert (made / po.relative_to(ROOT)).read_bytes() == po.read_bytes(), \
            f"{po.relative_to(ROOT)} changes under make messages: run it and commit the result"
        assert (made / po.relative_to(ROOT)).with_suffix(".mo").is_file()  # compiled by the same step


def test_catalogs_have_every_string_of_the_templates_and_code(made):
    assert catalogs.languages() == SHIPPED and i18n.available() == tuple(SHIPPED)
    found = catalogs.problems(pot=made / "bot" / "locale" / "messages.pot")
    assert found == [], "\n".join(found)


def test_a_new_string_without_translation_fails(tmp_path):
    tree = copy_tree(tmp_path)
    page = tree / "templates" / "web" / "signup.html"
    page.write_text(page.read_text(encoding="utf-8").replace("{% endblock %}", '<p>{{ _("brand_new_key") }}</p>\n{% endblock %}'),
                    encoding="utf-8")
    run = make_messages(tree)
    found = catalogs.problems(tree / "bot" / "locale", tree / "bot" / "locale" / "messages.pot")
    assert found == [f"{lang}: brand_new_key: untranslated" for lang in SHIPPED]
    assert "ar: brand_new_key: untranslated" in run.stdout  # make messages says what is left to do


def _edit(locale: Path, lang: str, key: str, change) -> None:
    po = catalogs.po_path(lang, locale)
    with po.open("rb") as f:
        catalog = read_po(f, locale=lang)
    change(catalog, catalog.get(key))
    with po.open("wb") as f:
        write_po(f, catalog)


def _blank(c, m): m.string = ""  # noqa: E704 - one-line mutations, one per case below
def _fuzzy(c, m): m.flags.add("fuzzy")  # noqa: E704
def _field(c, m): m.string = m.string.replace("{date}", "{day}")  # noqa: E704
def _one_form(c, m): m.string = m.string[:1]  # noqa: E704
def _tags(c, m): m.string = m.string.replace("<code>", "<script>").replace("</code>", "</script>")  # noqa: E704
def _pattern(c, m): m.string = "d MMMM y 'à' HHH:mm"  # noqa: E704
def _drop(c, m): del c[m.id]  # noqa: E704
def _plurals(c, m): c._num_plurals, c._plural_expr = 2, "(n != 1)"  # noqa: E704


@pytest.mark.parametrize("lang, key, change, expected", [
    ("ar", "read_article", _blank, "ar: read_article: untranslated"),
    ("de", "subscribe", _fuzzy, "de: subscribe: fuzzy"),
    ("ar", "published", _field, "ar: published: unknown field(s) ['day']"),
    ("ar", "digest_intro", _one_form, "ar: digest_intro: untranslated"),  # the missing forms are empty
    ("de", "adm_disabled_how_h", _tags, "de: adm_disabled_how_h: trusted HTML must keep the French tags"),
    ("ar", "datetime_long", _pattern, "ar: datetime_long: not a CLDR date pattern"),
    ("en", "save", _drop, "en: save: missing (run make messages, then translate it)"),
    ("ar", "save", _plurals, "ar: Plural-Forms has 2 forms, the language has 6"),
])
def test_catalog_mistakes_are_caught(made, tmp_path, lang, key, change, expected):
    locale = tmp_path / "locale"
    shutil.copytree(made / "bot" / "locale", locale)
    assert catalogs.problems(locale, locale / "messages.pot") == []
    _edit(locale, lang, key, change)
    found = catalogs.problems(locale, locale / "messages.pot")
    assert any(line.startswith(expected) for line in found), found


def test_compiled_catalogs_match_their_sources():
    """The .mo files the app loads were compiled from today's .po files (else: make messages)."""
    for lang in catalogs.languages():
        source = catalogs.read(catalogs.po_path(lang))
        with catalogs.po_path(lang).with_suffix(".mo").open("rb") as f:
            compiled = gettext.GNUTranslations(f)
        for message in source:
            if not message.id or message.fuzzy:
                continue
            if message.pluralizable:
                got = [compiled.ngettext(*message.id, n) for n in [*range(200), 10 ** 6]]  # French "many": millions
                assert set(got) == set(message.string), f"{lang}: {message.id[0]}: stale .mo, run make messages"
            else:
                assert compiled.gettext(message.id) == message.string, f"{lang}: {message.id}: stale .mo, run make messages"


def test_every_stored_code_has_a_label():
    codes = ([f"alert_{s}" for s in AlertState] + [f"state_{s}" for s in DeliveryState]
             + [f"status_{s}" for s in subs.STATUSES] + [f"smode_{m}" for m in subs.MODES]
             + [f"bkind_{k}" for k in BounceKind] + [f"bstate_{s}" for s in InboundState])
    assert [c for c in codes if c not in LABEL_KEYS] == []


def test_languages_come_from_the_catalogs(tmp_path):
    assert subs.LANGUAGES == i18n.available() == tuple(SHIPPED)
    assert parse_config({"bot": {"language": "ar"}, "telegram": {"token": "t", "channel": "@c", "language": "de"}},
                        tmp_path).telegram.language == "de"
    for data in ({"bot": {"language": "xx"}}, {"telegram": {"token": "t", "channel": "@c", "language": "es"}}):
        with pytest.raises(ConfigError, match=r"language: unknown language '(xx|es)'; available: ar, de, en, fr"):
            parse_config(data, tmp_path)


def test_adding_a_language_takes_the_five_readme_steps(made, tmp_path, monkeypatch):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    steps = re.findall(r"^\d\. .*$", readme[readme.index("## Adding a language"):], re.M)[:5]
    for step, words in zip(steps, ["make messages", "pybabel init", "msgstr", "make messages", "Restart"]):
        assert words in step, (step, words)
    locale = tmp_path / "locale"
    shutil.copytree(made / "bot" / "locale", locale)  # 1. extract: done by `made`
    subprocess.run([PYBABEL, "-q", "init", "-i", locale / "messages.pot", "-d", locale, "-D", "messages", "-l", "it"],
                   check=True, timeout=60)  # 2. init
    _translate_from_english(locale, "it")  # 3. translate (here: the English text, marked)
    assert catalogs.problems(locale, locale / "messages.pot") == []
    catalogs.compile_all(locale)  # 4. compile
    monkeypatch.setattr(i18n, "LOCALE_DIR", locale)  # 5. restart: fresh caches over the new folder
    for name in ("available", "_catalog", "translator"):
        monkeypatch.setattr(i18n, name, lru_cache(maxsize=None)(getattr(i18n, name).__wrapped__))
    assert i18n.available() == ("ar", "de", "en", "fr", "it")
    assert parse_config({"bot": {"language": "it"}}, tmp_path).bot.language == "it"
    assert i18n.translator("it").gettext("save") == "Save (it)" and i18n.language_name("it") == "Italiano"


def _translate_from_english(locale: Path, lang: str) -> None:
    english = catalogs.read(catalogs.po_path("en", locale))
    po = catalogs.po_path(lang, locale)
    catalog = catalogs.read(po)
    for message in catalog:
        if not message.id:
            continue
        ref = english.get(message.id).string
        mark = "" if message.id in catalogs.PATTERN_KEYS else " (it)"
        message.string = tuple(ref[min(i, len(ref) - 1)] + mark for i in range(catalog.num_plurals)) \
            if message.pluralizable else ref + mark
    with po.open("wb") as f:
        write_po(f, catalog)
