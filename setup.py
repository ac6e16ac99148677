"""Build hook: the wheel carries compiled translation catalogs (.mo), built here from bot/locale/*.po.

Everything else about the package is in pyproject.toml. The .mo files are never committed: an
editable install (make's venv) compiles them with pybabel, a wheel gets them from this step.
"""
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildWithCatalogs(build_py):
    """build_py, then each copied messages.po compiled to messages.mo beside it (fuzzy entries left out)."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:  # the source tree is used as is; make compiles its catalogs
            return
        from babel.messages.mofile import write_mo
        from babel.messages.pofile import read_po

        for po in sorted(Path(self.build_lib, "bot", "locale").glob("*/LC_MESSAGES/*.po")):
            with po.open("rb") as f:
                catalog = read_po(f, locale=po.parent.parent.name)
            with po.with_suffix(".mo").open("wb") as f:
                write_mo(f, catalog, use_fuzzy=False)


setup(cmdclass={"build_py": BuildWithCatalogs})
