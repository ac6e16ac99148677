"""Postfix's smtp-sink as the receiving MTA: installed on demand, one per bench run."""
from __future__ import annotations

import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time

from .common import Skipped, free_port

BINARY = "/usr/sbin/smtp-sink"
HOW = ("install Postfix's test tools: `sudo DEBIAN_FRONTEND=noninteractive apt-get install -y "
       "postfix` (provides /usr/sbin/smtp-sink), then rerun `make bench`")


def ensure_installed(log=print) -> str:
    """Path of smtp-sink; install the Debian package when root, else raise Skipped with how-to."""
    path = shutil.which("smtp-sink") or (BINARY if os.path.exists(BINARY) else None)
    if path:
        return path
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise Skipped(f"smtp-sink is missing and this is not a root Debian machine: {HOW}")
    log("  installing postfix (for smtp-sink) with apt-get ...")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "postfix"]):
        res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        if res.returncode != 0 and cmd[1] == "install":
            raise Skipped(f"apt-get install postfix failed: {res.stderr.strip()[-300:]}; {HOW}")
    if not os.path.exists(BINARY):
        raise Skipped(f"postfix installed but {BINARY} is absent; {HOW}")
    return BINARY


def _unprivileged_user() -> str:
    for name in ("nobody", "daemon"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    return pwd.getpwuid(os.getuid()).pw_name


class SmtpSink:
    """smtp-sink on 127.0.0.1 with a live message counter (its `-c` output)."""

    def __init__(self, log=print, max_conns: int = 1024):
        self.path = ensure_installed(log)
        self.max_conns = max_conns
        self.port = 0
        self._proc: subprocess.Popen | None = None
        self._out = tempfile.NamedTemporaryFile("w+b", prefix="smtp-sink-", suffix=".log")

    def start(self) -> "SmtpSink":
        """Start on a free port and wait until it accepts connections."""
        for _ in range(5):
            self.port = free_port()
            cmd = [self.path, "-c", "-4", "-m", str(self.max_conns)]
            if os.geteuid() == 0:  # smtp-sink refuses to run as root without -u
                cmd += ["-u", _unprivileged_user()]
            cmd += [f"127.0.0.1:{self.port}", "1024"]
            self._proc = subprocess.Popen(cmd, stdout=self._out, stderr=subprocess.STDOUT)
            if self._wait_ready():
                return self
            self.stop()
        raise Skipped("smtp-sink did not start (port race?)")

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    s.recv(100)  # the 220 greeting
                    s.sendall(b"QUIT\r\n")
                return True
            except OSError:
                time.sleep(0.05)
        return False

    def count(self) -> int:
        """Messages received so far (the last `mesg=` counter smtp-sink printed)."""
        self._out.flush()
        with open(self._out.name, "rb") as f:
            f.seek(max(0, os.path.getsize(self._out.name) - 4096))
            found = re.findall(rb"mesg=(\d+)", f.read())
        return int(found[-1]) if found else 0

    def stop(self) -> None:
        """Terminate the sink (only the process we started)."""
        if self._proc and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None

    def __enter__(self) -> "SmtpSink":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
        self._out.close()
