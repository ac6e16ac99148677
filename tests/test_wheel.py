"""The wheel is complete: built offline, installed into a fresh venv, `flashbot demo` runs from it.

The fresh venv gets the project's dependencies from .venv through a .pth file listing .venv's
site-packages. Paths in a .pth are appended to sys.path and the .pth files inside them are NOT
processed, so .venv's editable install of flashbot (its `__editable__…` .pth and finder) does not
load: `bot` must come from the wheel, and the test checks that it does. No network is used
(`--no-isolation`, `--no-index`).
"""
from __future__ import annotations

import shutil
import site
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

pytestmark = [pytest.mark.wheel, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = sorted(p.name for p in (ROOT / "bot" / "demo" / "samples").iterdir() if p.is_file())
LANGS = sorted(p.name for p in (ROOT / "bot" / "locale").iterdir() if (p / "LC_MESSAGES" / "messages.po").is_file())


def _run(cmd, *, cwd, env=None, timeout=180) -> subprocess.CompletedProcess:
    run = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert run.returncode == 0, f"{' '.join(map(str, cmd))} exited {run.returncode}\n{run.stdout}\n{run.stderr}"
    return run


def _clean_env(home: Path) -> dict[str, str]:
    """No PYTHONPATH, no venv hints, no repo on any path: only what the fresh venv provides."""
    return {"PATH": "/usr/bin:/bin", "HOME": str(home), "COLUMNS": "200", "LANG": "C.UTF-8",
            "PYTHONDONTWRITEBYTECODE": "1"}


def _copy_source(dest: Path) -> Path:
    """A copy of what the build needs, so building never writes build/ or *.egg-info into the checkout.
    The checkout's compiled catalogs (.mo) stay behind: the wheel must get them from the build step."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.mo")
    dest.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy2(ROOT / name, dest / name)
    for name in ("bot", "templates"):
        shutil.copytree(ROOT / name, dest / name, ignore=ignore)
    return dest


def test_wheel_installs_into_a_fresh_venv_and_runs_the_demo(tmp_path):
    started = time.monotonic()
    src = _copy_source(tmp_path / "src")
    dist = tmp_path / "dist"
    _run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", dist, src], cwd=src)
    wheels = list(dist.glob("flashbot-*.whl"))
    assert len(wheels) == 1, wheels
    wheel = wheels[0]
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [s for s in SAMPLES if f"bot/demo/samples/{s}" not in names]
    assert not missing, f"sample feeds missing from the wheel: {missing}"
    assert any(n.endswith(".data/data/share/flashbot/templates/email_alert.html") for n in names)
    assert {"ar", "de", "en", "fr"} <= set(LANGS)
    catalogs = [f"bot/locale/{lang}/LC_MESSAGES/messages.{ext}" for lang in LANGS for ext in ("po", "mo")]
    assert not [c for c in catalogs if c not in names], "catalogs missing from the wheel (compiled by setup.py)"
    assert not list((src / "bot").rglob("*.mo")), "the build wrote .mo files into the source tree"
    built = time.monotonic()

    fresh = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", fresh], cwd=tmp_path)
    py = fresh / "bin" / "python"
    fresh_site = Path(_run([py, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                           cwd=tmp_path, env=_clean_env(tmp_path)).stdout.strip())
    deps = [d for d in dict.fromkeys(site.getsitepackages()) if Path(d).is_dir() and Path(d) != fresh_site]
    assert deps, "no site-packages to borrow the dependencies from"
    (fresh_site / "zz-flashbot-test-deps.pth").write_text("".join(f"{d}\n" for d in deps), encoding="utf-8")
    # pip from .venv installs into the fresh venv (--python), from the wheel file only.
    _run([sys.executable, "-m", "pip", "--python", py, "install", "--quiet", "--no-deps", "--no-index",
          "--disable-pip-version-check", wheel], cwd=tmp_path, env={**_clean_env(tmp_path), "PIP_NO_CACHE_DIR": "1"})
    installed = time.monotonic()

    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    probe = _run([py, "-c", "import bot, bot.demo.story as s, bot.i18n as i; print(bot.__file__); print(bot.templates_dir()); "
                  "print(s.SAMPLES); print(' '.join(i.available()))"], cwd=cwd, env=_clean_env(tmp_path)).stdout.split("\n")
    bot_file, templates, samples = (Path(line) for line in probe[:3])
    assert probe[3].split() == LANGS  # the languages are the compiled catalogs the wheel installed
    assert bot_file.is_relative_to(fresh_site), f"bot was imported from {bot_file}, not from the fresh venv {fresh_site}"
    assert templates.is_relative_to(fresh) and (templates / "email_alert.html").is_file(), templates
    assert samples.is_relative_to(fresh_site) and sorted(p.name for p in samples.iterdir()) == SAMPLES

    flashbot = fresh / "bin" / "flashbot"
    assert flashbot.is_file()
    work = tmp_path / "demo"
    run = subprocess.run([str(flashbot), "demo", "--dir", str(work)], cwd=cwd, env=_clean_env(tmp_path),
                         capture_output=True, text=True, timeout=90)
    out = run.stdout
    assert run.returncode == 0, out + run.stderr
    assert "baseline recorded" in out
    assert "published a new FLASH INFO item" in out and "published a correction" in out
    assert "2 post(s), 1 edit(s)" in out  # the two alerts posted, the correction as an edit
    assert "Emails (12)" in out  # 3 instant subscribers × (2 alerts + 1 correction) + 3 digests
    assert "demo finished in" in out
    assert "Traceback" not in run.stderr
    assert len(list((work / "mail").glob("*.eml"))) == 12
    # The Arabic reader's mails come from the wheel's compiled Arabic catalog.
    assert any('dir="rtl"' in p.read_text(encoding="utf-8") for p in (work / "mail").glob("*.html"))
    done = time.monotonic()
    print(f"build {built - started:.1f} s, venv+install {installed - built:.1f} s, demo {done - installed:.1f} s")
