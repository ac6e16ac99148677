"""Security gaps not covered by the owners' suites: SQL injection through CLI arguments and feed fields,
path traversal through file sources, secrets in the output of a failing run.

Decision on file sources: a source URL that is a path (e.g. `../../etc/passwd`) is an OPERATOR feature
(local feeds), so Flashbot reads it — but a file that is not a feed is a clear per-source error that
never echoes its content. Feed CONTENT can never make Flashbot read a file (entities, XInclude,
file:// links and redirects are covered in tests/hostile_corpus).
"""
from __future__ import annotations

import subprocess
import sys

import pytest
from sqlalchemy import func, select

from bot.config import load_config
from bot.store import open_db
from bot.store.schema import items, sources, subscribers
from conftest import SECRET_MARKERS
from hostile_scan import leaked_secret

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
SQLI = ["x'); DROP TABLE subscribers; --", "' OR '1'='1", '"; DELETE FROM sources; --', "1 UNION SELECT * FROM meta"]
SECRETS = {"password": "smtp-Pa55-SECRET-zz9", "token": "123456789:TOKEN-SECRET-abcdefghijklmnopqrstuv",
           "admin": "admin-SECRET-pass-77", "key": "signing-SECRET-key-0123456789abcdef"}


def cli(config, *args):
    return subprocess.run([sys.executable, "-m", "bot", "--config", str(config), *args], capture_output=True, text=True,
                          timeout=60, cwd=config.parent)


@pytest.fixture
def config(tmp_path, hostile_server):
    hostile_server.set("/sqli.xml", '<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>' + "".join(
        f"<item><title>FLASH INFO : {s.replace('<', '&lt;')}</title><guid>{s.replace('<', '&lt;')}</guid>"
        f"<link>https://q.example/?q={i}</link><category>{s}</category></item>" for i, s in enumerate(SQLI))
        + "</channel></rss>")
    path = tmp_path / "config.toml"
    path.write_text(f"""
[bot]
database = "sec.db"
[web]
enabled = false
admin_password = "{SECRETS['admin']}"
secret_key = "{SECRETS['key']}"
[[sources]]
name = "sqli"
url = "{hostile_server.url('/sqli.xml')}"
alert_on_first_poll = true
[[sources]]
name = "passwd"
url = "../../../../../../../../etc/passwd"
[email]
host = "127.0.0.1"
port = 9
sender = "Flash <a@example.org>"
tls = "none"
username = "flashbot"
password = "{SECRETS['password']}"
timeout = 1
[telegram]
token = "{SECRETS['token']}"
channel = "@flash"
api_url = "http://127.0.0.1:9/bot"
timeout = 1
[delivery]
retry_delays = [600]
""", encoding="utf-8")
    return path


def test_sql_injection_through_cli_args_and_feed_fields_is_just_data(config, figures):
    outs = [cli(config, "subscribers", "add", "ok@example.org")]
    for s in SQLI:
        outs.append(cli(config, "subscribers", "show", s))
        outs.append(cli(config, "sources", "add", s, "https://q.example/" + str(len(s))))
    outs.append(cli(config, "run", "--once"))
    for o in outs:
        assert "Traceback" not in o.stderr and "OperationalError" not in o.stderr, o.stderr[-1500:]
    engine = open_db(load_config(config).database_url)
    with engine.connect() as conn:
        names = set(conn.execute(select(sources.c.name)).scalars())
        assert set(SQLI) <= names  # stored literally as source names
        assert conn.execute(select(func.count()).select_from(subscribers)).scalar() == 1
        titles = set(conn.execute(select(items.c.headline)).scalars())
        assert {s.strip() for s in SQLI} <= {t.strip() for t in titles}, titles  # feed fields stored as text
    engine.dispose()
    figures.add("security: SQL injection (CLI args, feed fields)", tried=len(SQLI) * 2 + 1, passed=len(SQLI) * 2 + 1)


def test_file_source_outside_the_folder_is_read_by_operator_choice_but_never_echoed(config, figures):
    run = cli(config, "run", "--once")
    assert run.returncode == 0, run.stderr[-2000:]
    listing = cli(config, "sources", "list")
    engine = open_db(load_config(config).database_url)
    with engine.connect() as conn:
        row = conn.execute(select(sources).where(sources.c.name == "passwd")).mappings().one()
        n = conn.execute(select(func.count()).select_from(items).where(items.c.source_id == row["id"])).scalar()
    engine.dispose()
    assert row["last_error"] and "not an RSS/Atom feed" in row["last_error"], row["last_error"]
    assert n == 0
    for blob in (row["last_error"], run.stdout, run.stderr, listing.stdout, listing.stderr):
        assert leaked_secret(blob, SECRET_MARKERS) is None, blob[:500]
    figures.add("security: path traversal (file sources)", tried=1, passed=1)


def test_secrets_never_appear_in_the_output_of_a_failing_run(config, figures):
    # SMTP and Telegram both unreachable, a feed with SQL-looking data: every error path logs something.
    outs = [cli(config, "run", "--once"), cli(config, "check"), cli(config, "deliveries"),
            cli(config, "--help")]
    for o in outs:
        for name, secret in SECRETS.items():
            assert secret not in o.stdout + o.stderr, f"{name} leaked by {o.args[3:]}"
    figures.add("security: secrets absent from CLI output and logs", tried=len(outs), passed=len(outs))
