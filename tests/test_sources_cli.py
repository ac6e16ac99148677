"""`flashbot sources …` and `flashbot poll --once`, in-process and as a real subprocess."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from fixtures_ingest import SAMPLES
from typer.testing import CliRunner

from bot.cli import app
from bot.ingest.opml import OPMLError, build_opml, parse_opml

ROOT = Path(__file__).resolve().parent.parent


def write_config(tmp_path: Path, url: str, extra: str = "", database: str | None = None) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(f'[bot]\ndatabase = "{database or "flash.db"}"\n\n[[sources]]\nname = "quotidien"\nurl = "{url}"\n{extra}\n'
                    '[fetch]\ntimeout = 3\n', encoding="utf-8")
    return path


def flashbot(config: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bot", "--config", str(config), *args], capture_output=True,
                          text=True, timeout=60, cwd=config.parent, env={"PATH": "/usr/bin:/bin", "COLUMNS": "200"})


def test_poll_once_baselines_then_detects_then_gets_304(feed_server, tmp_path, database):
    # The "done when" of issue 2, end to end through the real command line.
    feed_server.set("/flash.xml", SAMPLES / "flash.xml", etag=True)
    config = write_config(tmp_path, feed_server.url("/flash.xml"), database=database)

    first = flashbot(config, "poll", "--once")
    assert first.returncode == 0, first.stderr
    assert "quotidien: 6 items, 0 new, 6 recorded as baseline" in first.stdout
    assert "FLASH" not in first.stdout.replace("FLASH INFO", "")  # nothing alerted on a first poll

    feed_server.set("/flash.xml", SAMPLES / "flash-suite.xml", etag=True)
    second = flashbot(config, "poll", "--once")
    assert second.returncode == 0, second.stderr
    lines = [ln for ln in second.stdout.splitlines() if "│" in ln]
    flash_rows = [ln for ln in lines if "│ flash" in ln]
    assert len(flash_rows) == 2 and all("FLASH" in ln for ln in flash_rows)
    assert any("Incendie dans un entrepôt à Aubervilliers" in ln for ln in flash_rows)
    assert any("Le Premier ministre remet sa démission" in ln for ln in flash_rows)
    assert any("│ new" in ln and "Cinéma" in ln and "FLASH" not in ln for ln in lines)

    third = flashbot(config, "poll", "--once")
    assert third.returncode == 0 and "quotidien: not modified (HTTP 304)" in third.stdout
    last = feed_server.log("/flash.xml")[-1]
    assert last.headers.get("if-none-match") and last.status == 304


def test_poll_once_reports_failures_and_exit_code(feed_server, tmp_path, database):
    feed_server.set("/f", b"nope", status=404, content_type="text/plain")
    config = write_config(tmp_path, feed_server.url("/f"), database=database)
    res = flashbot(config, "poll", "--once")
    assert res.returncode == 1 and "quotidien: HTTP 404 Not Found" in res.stdout


def run(config: Path, *args: str):
    return CliRunner().invoke(app, ["--config", str(config), *args], env={"COLUMNS": "250"})


def test_sources_commands(tmp_path, database):
    config = write_config(tmp_path, str(SAMPLES / "flash.xml"), database=database)
    res = run(config, "sources", "add", "depeches", str(SAMPLES / "depeches.atom"), "--interval", "30", "--category", "Monde")
    assert res.exit_code == 0 and "added depeches" in res.output
    assert run(config, "sources", "add", "depeches", str(SAMPLES / "depeches.atom")).exit_code == 1
    assert "no such file" in run(config, "sources", "add", "x", "missing.xml").output
    assert run(config, "poll", "--once").exit_code == 0
    listing = run(config, "sources", "list").output
    assert "depeches" in listing and "quotidien" in listing and "ttl 5 min" in listing and "ok" in listing
    assert "paused depeches" in run(config, "sources", "pause", "depeches").output
    assert "paused by an operator" in run(config, "sources", "list").output
    assert "resumed depeches" in run(config, "sources", "resume", "depeches").output
    res = run(config, "sources", "remove", "quotidien")
    assert res.exit_code == 1 and "comes from config.toml" in res.output
    assert run(config, "sources", "remove", "depeches").exit_code == 0
    assert "depeches" not in run(config, "sources", "list").output
    assert run(config, "sources", "pause", "nope").exit_code == 1


def test_opml_import_export_round_trip(tmp_path, database):
    config = write_config(tmp_path, str(SAMPLES / "flash.xml"), database=database)
    opml = tmp_path / "abonnements.opml"
    opml.write_text("""<?xml version="1.0"?><opml version="1.0"><head><title>x</title></head><body>
      <outline text="Monde"><outline text="Dépêches" type="rss" xmlUrl="https://www.exemple.fr/depeches.atom"/>
        <outline text="Dépêches" type="rss" xmlUrl="https://www.exemple.fr/autre.xml"/></outline>
      <outline text="quotidien" xmlUrl="https://www.exemple.fr/quotidien.xml"/>
      <outline text="doublon" xmlUrl="https://www.exemple.fr/depeches.atom"/></body></opml>""", encoding="utf-8")
    res = run(config, "sources", "import", str(opml))
    assert "imported 3 source(s)" in res.output, res.output
    assert "imported 0 source(s)" in run(config, "sources", "import", str(opml)).output
    out = tmp_path / "export.opml"
    assert run(config, "sources", "export", "-o", str(out)).exit_code == 0
    names = {(s.name, s.url, s.category) for s in parse_opml(out.read_bytes())}
    assert ("Dépêches", "https://www.exemple.fr/depeches.atom", "Monde") in names
    assert ("Dépêches (2)", "https://www.exemple.fr/autre.xml", "Monde") in names
    assert ("quotidien (2)", "https://www.exemple.fr/quotidien.xml", None) in names
    assert any(s.name == "quotidien" for s in parse_opml(out.read_bytes()))
    assert "<opml" in run(config, "sources", "export").output


@pytest.mark.parametrize("data,message", [
    (b"<html><body/></html>", "not an OPML document"),
    (b"<opml", "not valid XML"),
    (b'<?xml version="1.0"?><!DOCTYPE o [<!ENTITY x SYSTEM "file:///etc/passwd">]><opml><body/></opml>', "external XML entity"),
    (b"<opml version='2.0'><head/></opml>", "no <body>"),
])
def test_bad_opml(data, message):
    with pytest.raises(OPMLError, match=message):
        parse_opml(data)


def test_build_opml_escapes():
    data = build_opml([{"name": "A & B <c>", "url": "https://e.fr/?a=1&b=2", "category": None}])
    assert parse_opml(data)[0].url == "https://e.fr/?a=1&b=2"


def test_opml_streamed_in_small_chunks_reads_the_same():
    from bot.ingest.opml import iter_opml

    data = build_opml([{"name": f"Feed {i} & co", "url": f"https://e{i % 7}.fr/{i}.xml", "category": f"C{i % 3}" if i % 2 else None}
                       for i in range(300)])
    whole = parse_opml(data)
    assert len(whole) == 300
    for size in (1, 7, 4096):
        assert list(iter_opml(data[i:i + size] for i in range(0, len(data), size))) == whole
    evil = b'<?xml version="1.0"?><!DOCTYPE o [<!ENTITY x SYSTEM "file:///etc/passwd">]><opml><body/></opml>'
    with pytest.raises(OPMLError, match="external XML entity"):  # screened even when the prolog comes in pieces
        list(iter_opml(evil[i:i + 3] for i in range(0, len(evil), 3)))


def test_opml_import_in_batches_names_and_counts(tmp_path):
    config = write_config(tmp_path, str(SAMPLES / "flash.xml"))
    rows = [{"name": "Même nom", "url": f"https://e.fr/{i}.xml", "category": None} for i in range(2500)]
    opml = tmp_path / "big.opml"
    opml.write_bytes(build_opml(rows + rows[:10]))  # ten URLs twice: added once, not "already present"
    assert "imported 2500 source(s)" in run(config, "sources", "import", str(opml)).output
    assert "imported 0 source(s) from" in (again := run(config, "sources", "import", str(opml)).output)
    assert "2500 already present" in again
    names = {s.name for s in parse_opml(run(config, "sources", "export").output.encode())}
    assert {"Même nom", "Même nom (2)", "Même nom (2500)"} <= names and len(names) == 2501
