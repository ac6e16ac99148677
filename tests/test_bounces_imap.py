"""IMAP polling against a real Dovecot (Debian's dovecot-imapd) started by the test in a temporary folder.

Bounces are put in the mailbox over IMAP APPEND; the poller stores, processes, and only then flags
them; a mail whose flag was lost (a crash between the commit and the flag) is processed again
without counting twice. Skipped loudly when dovecot is not installed (make test-deps).
"""
from __future__ import annotations

import imaplib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from bot.bounces import imap
from fixtures_bounces import CORPUS, World, bounce_config

DOVECOT = "/usr/sbin/dovecot"
PASSWORD = "imap-test-password"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
    port = _free_port()
    (base / "users").write_text(f"bounces:{{PLAIN}}{PASSWORD}:8:8::{base}/mail/bounces\n")
    (base / "dovecot.conf").write_text(f"""
base_dir = {base}/run
state_dir = {base}/state
log_path = {base}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
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
    port = 0
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
    yield port
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
    cfg = bounce_config(tmp_path, listen=None, imap_url=f"imap://bounces@127.0.0.1:{dovecot}/INBOX",
                        imap_password=PASSWORD)
    world = World(cfg)
    sub = world.subscriber("kijitora@example.co.jp")
    dlv = world.sent(sub)
    dsn = (CORPUS / "lhost-postfix-04.eml").read_bytes()
    # As a bounce mailbox receives it: the MTA adds Delivered-To with the VERP address.
    _append(dovecot, f"Delivered-To: {world.return_path(dlv).upper()}\n".encode() + dsn)
    _append(dovecot, (CORPUS / "rfc3834-01.eml").read_bytes())
    counts = imap.poll(cfg, world.engine, world.processor, PASSWORD)
    assert counts == {"fetched": 2, "stored": 2, "flagged": 2}
    assert all(b"$FlashbotProcessed" in f for f in _flags(dovecot))
    assert world.delivery(dlv)["outcome"] == "bounced" and world.person(sub)["status"] == "suppressed"
    assert imap.poll(cfg, world.engine, world.processor, PASSWORD)["fetched"] == 0  # flagged: not fetched again
    # A crash between the commit and the flag: the flag is missing, the mail is fetched again.
    conn = imaplib.IMAP4("127.0.0.1", dovecot)
    conn.login("bounces", PASSWORD)
    conn.select("INBOX")
    conn.store("1", "-FLAGS", "($FlashbotProcessed)")
    conn.logout()
    again = imap.poll(cfg, world.engine, world.processor, PASSWORD)
    assert again == {"fetched": 1, "stored": 0, "flagged": 1}
    assert world.person(sub)["bounces"] == 1 and len(world.mails()) == 2


def test_imap_move_and_wrong_password(tmp_path, dovecot):
    cfg = bounce_config(tmp_path, listen=None, imap_url=f"imap://bounces@127.0.0.1:{dovecot}/INBOX",
                        imap_password=PASSWORD, imap_move_to="Processed")
    world = World(cfg)
    conn = imaplib.IMAP4("127.0.0.1", dovecot)
    conn.login("bounces", PASSWORD)
    conn.create("Processed")
    conn.logout()
    _append(dovecot, (CORPUS / "is-not-bounce-01.eml").read_bytes())
    assert imap.poll(cfg, world.engine, world.processor, PASSWORD)["flagged"] == 1
    conn = imaplib.IMAP4("127.0.0.1", dovecot)
    conn.login("bounces", PASSWORD)
    counts = {box: conn.status(box, "(MESSAGES)")[1][0] for box in ("INBOX", "Processed")}
    conn.logout()
    assert b"MESSAGES 0" in counts["INBOX"] and b"MESSAGES 1" in counts["Processed"]
    assert world.mails()[0]["state"] == "unparsed"
    with pytest.raises(imap.ImapError) as exc:
        imap.poll(cfg, world.engine, world.processor, "wrong")
    assert "bounces.imap_url" in str(exc.value) and "wrong" not in str(exc.value)
