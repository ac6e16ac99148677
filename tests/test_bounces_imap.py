"""IMAP polling against a real Dovecot (Debian's dovecot-imapd) started by the test in a temporary folder.

Bounces are put in the mailbox over IMAP APPEND; the poller stores, processes, and only then flags
them; a mail whose flag was lost (a crash between the commit and the flag) is processed again
without counting twice. Skipped loudly when dovecot is not installed (make test-deps).
"""
from __future__ import annotations

import imaplib
import os
import sys
from dataclasses import dataclass
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from bot.bounces import imap
from bot.demo.smtpserver import self_signed_cert
from fixtures_bounces import CORPUS, DOMAIN, SECRET, World, bounce_config

DOVECOT = "/usr/sbin/dovecot"
PASSWORD = "imap-test-password"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Dovecot:
    """A running Dovecot: IMAP on `port`, IMAP over TLS on `tls_port` with a self-signed certificate `ca_file`."""

    port: int
    tls_port: int | None
    ca_file: str | None


@pytest.fixture
def dovecot():
    if not os.path.exists(DOVECOT):
        pytest.skip("Debian dovecot-imapd is not installed (make test-deps installs it): IMAP polling is NOT tested")
    if os.geteuid() != 0:
        pytest.skip("dovecot must start as root here: IMAP polling is NOT tested")
    base = Path(tempfile.mkdtemp(prefix="fb-dovecot-"))
    base.chmod(0o755)
    (base / "mail").mkdir()
    shutil.chown(base / "mail", "mail", "mail")
    port, tls_port = _free_port(), _free_port()
    cert = self_signed_cert(base)  # None without the openssl CLI: the TLS test then skips loudly
    (base / "users").write_text(f"bounces:{{PLAIN}}{PASSWORD}:8:8::{base}/mail/bounces\n")
    (base / "dovecot.conf").write_text(f"""
base_dir = {base}/run
state_dir = {base}/state
log_path = {base}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = {"yes" if cert else "no"}
{f"ssl_cert = <{cert[0]}" if cert else ""}
{f"ssl_key = <{cert[1]}" if cert else ""}
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = 8
mail_location = maildir:~/Maildir
passdb {{
  driver = passwd-file
  args = {base}/users
}}
userdb {{
  driver = passwd-file
  args = {base}/users
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls_port if cert else 0}
  }}
}}
service anvil {{
  chroot =
}}
service imap-login {{
  chroot =
}}
""")
    proc = subprocess.Popen([DOVECOT, "-F", "-c", str(base / "dovecot.conf")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if proc.poll() is not None:
                pytest.fail("dovecot did not start: " + proc.stdout.read().decode(errors="replace"))
            time.sleep(0.05)
    yield Dovecot(port, tls_port if cert else None, cert[0] if cert else None)
    proc.terminate()
    proc.wait(timeout=10)
    shutil.rmtree(base, ignore_errors=True)


def _append(port: int, raw: bytes) -> None:
    conn = imaplib.IMAP4("127.0.0.1", port)
    conn.login("bounces", PASSWORD)
    conn.append("INBOX", None, None, raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
    conn.logout()


def _flags(port: int) -> list[bytes]:
    conn = imaplib.IMAP4("127.0.0.1", port)
    conn.login("bounces", PASSWORD)
    conn.select("INBOX")
    typ, data = conn.fetch("1:*", "(FLAGS)")
    conn.logout()
    return [d for d in data if d]


def test_imap_bounces_are_processed_then_flagged_and_a_lost_flag_counts_once(tmp_path, dovecot):
    cfg = bounce_config(tmp_path, listen=None, imap_url=f"imap://bounces@127.0.0.1:{dovecot.port}/INBOX",
                        imap_password=PASSWORD)
    world = World(cfg)
    sub = world.subscriber("kijitora@example.co.jp")
    dlv = world.sent(sub)
    dsn = (CORPUS / "lhost-postfix-04.eml").read_bytes()
    # As a bounce mailbox receives it: the MTA adds Delivered-To with the VERP address.
    _append(dovecot.port, f"Delivered-To: {world.return_path(dlv).upper()}\n".encode() + dsn)
    _append(dovecot.port, (CORPUS / "rfc3834-01.eml").read_bytes())
    counts = imap.poll(cfg, world.engine, world.processor, PASSWORD)
    assert counts == {"fetched": 2, "stored": 2, "flagged": 2}
    assert all(b"$FlashbotProcessed" in f for f in _flags(dovecot.port))
    assert world.delivery(dlv)["outcome"] == "bounced" and world.person(sub)["status"] == "suppressed"
    assert imap.poll(cfg, world.engine, world.processor, PASSWORD)["fetched"] == 0  # flagged: not fetched again
    # A crash between the commit and the flag: the flag is missing, the mail is fetched again.
    conn = imaplib.IMAP4("127.0.0.1", dovecot.port)
    conn.login("bounces", PASSWORD)
    conn.select("INBOX")
    conn.store("1", "-FLAGS", "($FlashbotProcessed)")
    conn.logout()
    again = imap.poll(cfg, world.engine, world.processor, PASSWORD)
    assert again == {"fetched": 1, "stored": 0, "flagged": 1}
    assert world.person(sub)["bounces"] == 1 and len(world.mails()) == 2


def test_imap_move_and_wrong_password(tmp_path, dovecot):
    cfg = bounce_config(tmp_path, listen=None, imap_url=f"imap://bounces@127.0.0.1:{dovecot.port}/INBOX",
                        imap_password=PASSWORD, imap_move_to="Processed")
    world = World(cfg)
    conn = imaplib.IMAP4("127.0.0.1", dovecot.port)
    conn.login("bounces", PASSWORD)
    conn.create("Processed")
    conn.logout()
    _append(dovecot.port, (CORPUS / "is-not-bounce-01.eml").read_bytes())
    assert imap.poll(cfg, world.engine, world.processor, PASSWORD)["flagged"] == 1
    conn = imaplib.IMAP4("127.0.0.1", dovecot.port)
    conn.login("bounces", PASSWORD)
    counts = {box: conn.status(box, "(MESSAGES)")[1][0] for box in ("INBOX", "Processed")}
    conn.logout()
    assert b"MESSAGES 0" in counts["INBOX"] and b"MESSAGES 1" in counts["Processed"]
    assert world.mails()[0]["state"] == "unparsed"
    with pytest.raises(imap.ImapError) as exc:
        imap.poll(cfg, world.engine, world.processor, "wrong")
    assert "bounces.imap_url" in str(exc.value) and "wrong" not in str(exc.value)


def test_imaps_verifies_the_server_against_the_ca_file(tmp_path, dovecot):
    if dovecot.tls_port is None:
        pytest.skip("the openssl CLI is missing (no test certificate): IMAP over TLS is NOT tested")
    url = f"imaps://bounces@127.0.0.1:{dovecot.tls_port}/INBOX"
    cfg = bounce_config(tmp_path, listen=None, imap_url=url, imap_password=PASSWORD, imap_ca_file=dovecot.ca_file)
    world = World(cfg)
    sub = world.subscriber("kijitora@example.co.jp")
    dlv = world.sent(sub)
    _append(dovecot.port, f"Delivered-To: {world.return_path(dlv)}\n".encode() + (CORPUS / "lhost-postfix-04.eml").read_bytes())
    assert imap.poll(cfg, world.engine, world.processor, PASSWORD) == {"fetched": 1, "stored": 1, "flagged": 1}
    assert world.person(sub)["status"] == "suppressed"
    # Without the CA file the self-signed server is not trusted: a clear error, nothing read.
    untrusting = bounce_config(tmp_path, listen=None, imap_url=url, imap_password=PASSWORD)
    with pytest.raises(imap.ImapError) as exc:
        imap.poll(untrusting, world.engine, world.processor, PASSWORD)
    assert "bounces.imap_url" in str(exc.value) and "certificate verify failed" in str(exc.value)
    # Nor does a plain-text server pass for a TLS one.
    plain = bounce_config(tmp_path, listen=None, imap_url=f"imaps://bounces@127.0.0.1:{dovecot.port}/INBOX",
                          imap_password=PASSWORD, imap_ca_file=dovecot.ca_file)
    with pytest.raises(imap.ImapError):
        imap.poll(plain, world.engine, world.processor, PASSWORD, timeout=10)


def test_run_once_polls_the_mailbox_and_processes(tmp_path, dovecot):
    import tomllib

    from bot.config import parse_config

    path = tmp_path / "config.toml"
    path.write_text(f'[bot]\ndatabase = "once.db"\n[web]\nsecret_key = "{SECRET}"\n[delivery]\nbounce_limit = 1\n'
                    f'[bounces]\ndomain = "{DOMAIN}"\nimap_url = "imap://bounces@127.0.0.1:{dovecot.port}/INBOX"\n')
    world = World(parse_config(tomllib.loads(path.read_text()), tmp_path, env={"FLASHBOT_IMAP_PASSWORD": PASSWORD}))
    sub = world.subscriber("kijitora@example.co.jp")
    dlv = world.sent(sub)
    _append(dovecot.port, f"Delivered-To: {world.return_path(dlv)}\n".encode() + (CORPUS / "lhost-postfix-04.eml").read_bytes())
    env = {**os.environ, "FLASHBOT_IMAP_PASSWORD": PASSWORD}
    run = subprocess.run([sys.executable, "-m", "bot", "--config", str(path), "run", "--once"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "; bounces: processed 1 (IMAP: 1 fetched)" in " ".join(run.stdout.split()), run.stdout
    assert world.person(sub)["status"] == "suppressed" and all(b"$FlashbotProcessed" in f for f in _flags(dovecot.port))
    assert PASSWORD not in run.stdout + run.stderr
    # A wrong password: the run still succeeds (polling and sending go on) and says why IMAP failed.
    env["FLASHBOT_IMAP_PASSWORD"] = "wrong-password"
    run = subprocess.run([sys.executable, "-m", "bot", "--config", str(path), "run", "--once"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and "IMAP failed: bounces.imap_url" in " ".join(run.stdout.split()), run.stdout + run.stderr
    assert "wrong-password" not in run.stdout + run.stderr
    world.engine.dispose()


def test_flashbot_check_logs_in_opens_the_folder_and_names_what_is_wrong(tmp_path, dovecot):
    from bot.service.checks import check_bounces

    url = f"imap://bounces@127.0.0.1:{dovecot.port}/INBOX"
    part, verdict, detail = check_bounces(bounce_config(tmp_path, imap_url=url, imap_password=PASSWORD))
    assert (part, verdict) == ("bounces", "ok") and "IMAP INBOX opened" in detail and "receiver 127.0.0.1:0 free" in detail
    _, verdict, detail = check_bounces(bounce_config(tmp_path, imap_url=url, imap_password="wrong-password"))
    assert verdict == "FAIL" and "bounces.imap_url" in detail and "wrong-password" not in detail
    _, verdict, detail = check_bounces(bounce_config(tmp_path, imap_url=url.replace("INBOX", "Nowhere"), imap_password=PASSWORD))
    assert verdict == "FAIL" and "cannot open folder 'Nowhere'" in detail
    assert check_bounces(bounce_config(tmp_path, imap_url=url, imap_password="wrong-password"), offline=True)[1] == "ok"
    with socket.socket() as busy:  # the receiver's port taken (the service already runs, most likely)
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = f"127.0.0.1:{busy.getsockname()[1]}"
        _, verdict, detail = check_bounces(bounce_config(tmp_path, listen=taken, imap_url=url, imap_password=PASSWORD))
    assert verdict == "warn" and f"receiver {taken} not free" in detail
