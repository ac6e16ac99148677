"""A throwaway PostgreSQL cluster for tests and benchmarks: initdb in a temporary folder, its own
port on 127.0.0.1, the unix socket in that folder; never the system service. Run as `nobody` when
started by root (initdb and postgres refuse root)."""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

USER = "flashbot"  # the cluster's superuser (trust authentication, loopback only)
# Durability off: a test cluster is thrown away; it makes commits cost what they cost on fast disks.
SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off", "max_connections": "300",
            "shared_buffers": "128MB", "listen_addresses": "'127.0.0.1'", "log_min_messages": "warning"}


def find_bin() -> Path | None:
    """The folder of initdb/pg_ctl/postgres (Debian keeps them out of PATH), or None."""
    env = os.environ.get("FLASHBOT_PG_BIN")
    candidates = [env] if env else []
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]), reverse=True)
    which = shutil.which("initdb")
    if which:
        candidates.append(str(Path(which).parent))
    for c in candidates:
        if c and (Path(c) / "initdb").exists() and (Path(c) / "pg_ctl").exists():
            return Path(c)
    return None


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """initdb + pg_ctl start on a free port; `url(db)` for SQLAlchemy, create/drop databases, restart."""

    def __init__(self, bindir: Path | None = None, root: Path | None = None):
        self.bindir = bindir or find_bin()
        if self.bindir is None:
            raise RuntimeError("PostgreSQL server binaries not found (Debian: apt-get install postgresql)")
        self.root = Path(root or tempfile.mkdtemp(prefix="flashbot-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self._runas = _unprivileged_user() if os.geteuid() == 0 else None

    def _run(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if self._runas:
            cmd = ["runuser", "-u", self._runas, "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, check=check, timeout=timeout, cwd=self.root)

    def start(self) -> "Cluster":
        """initdb (first time) and start the server; waits until it accepts connections."""
        if not self.data.exists():
            os.chmod(self.root, 0o755)
            self.data.mkdir(mode=0o700)
            if self._runas:
                shutil.chown(self.data, self._runas)
                shutil.chown(self.root, self._runas)
            self._run("initdb", "-D", str(self.data), "-U", USER, "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8")
            with open(self.data / "postgresql.conf", "a") as conf:
                for k, v in {**SETTINGS, "port": str(self.port), "unix_socket_directories": f"'{self.root}'"}.items():
                    conf.write(f"{k} = {v}\n")
        self._ctl("start")
        return self

    def _ctl(self, action: str) -> None:
        args = ["pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"), "-w", "-t", "60"]
        if action != "start":
            args += ["-m", "fast"]
        result = self._run(*args, action, check=False)
        if result.returncode != 0:
            log = (self.root / "server.log").read_text(errors="replace")[-2000:] if (self.root / "server.log").exists() else ""
            raise RuntimeError(f"pg_ctl {action} failed: {result.stderr.strip()}\n{log}")

    def restart(self) -> None:
        """pg_ctl restart -m fast: every connection is cut, the server comes back on the same port."""
        self._ctl("restart")

    def stop(self) -> None:
        """Stop the server and remove the folder."""
        if self.data.exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop", check=False)
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        """A postgresql:// URL (psycopg 3) to a database of this cluster."""
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    def sql(self, statement: str, database: str = "postgres") -> None:
        """Run one statement in autocommit (CREATE/DROP DATABASE)."""
        import psycopg

        with psycopg.connect(self.url(database), autocommit=True, connect_timeout=10) as conn:
            conn.execute(statement)

    def create_database(self, name: str) -> str:
        """A fresh empty database; returns its URL."""
        self.sql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop it, closing any connection a test left open."""
        self.sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def wait_ready(self, timeout: float = 30) -> None:
        """Block until the server accepts connections (after a restart)."""
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            try:
                psycopg.connect(self.url(), connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def __enter__(self) -> "Cluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _unprivileged_user() -> str:
    """`nobody` (exists on Debian); initdb refuses to run as root."""
    try:
        pwd.getpwnam("nobody")
    except KeyError:
        raise RuntimeError("running as root and there is no 'nobody' user to run PostgreSQL as") from None
    return "nobody"
