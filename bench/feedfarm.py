"""A fast local feed server for the polling benchmark: pre-forked stdlib HTTP workers.

`python -m bench.feedfarm WORKERS` binds 127.0.0.1:0, forks WORKERS processes, prints the port and their pids
that all accept on the same socket and serve /feed/<size>/<i>.xml with a strong ETag; a matching
If-None-Match gets 304. Feeds are generated deterministically, so every worker serves the same
bytes and ETags without sharing memory.
"""
from __future__ import annotations

import hashlib
import os
import signal
import socket
import sys
from email.utils import format_datetime
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SIZES = {"small": 10, "medium": 30, "large": 100}  # items per feed
_BASE = datetime(2026, 11, 29, 6, 0, tzinfo=timezone.utc)
_LEAD = ("Le gouvernement a présenté mercredi un projet de loi très attendu, qui doit encore être "
         "examiné par le Parlement avant la fin de l'année. <a href=\"/politique/{i}.html\">Les "
         "détails</a> du texte ont été dévoilés en conseil des ministres, et les syndicats ont "
         "réagi dans la foulée. Selon <b>plusieurs sources</b>, des amendements sont attendus.")


def feed(size: str, i: int) -> bytes:
    """The RSS document of feed number i of a size class."""
    items = []
    for k in range(SIZES[size]):
        when = format_datetime(_BASE - timedelta(minutes=7 * k + i % 60))
        title = ("FLASH INFO - " if k % 9 == 0 else "") + f"Titre {k} du fil {i} : l'actualité du jour"
        link = f"https://www.example-actu.fr/{size}/{i}/article-{k}.html"
        items.append(
            f"<item><title>{title}</title><link>{link}</link><guid>{link}</guid>"
            f"<pubDate>{when}</pubDate><category>Politique</category>"
            f"<description><![CDATA[<p>{_LEAD.format(i=i)}</p><p>{_LEAD.format(i=k)}</p>]]>"
            "</description></item>")
    return ("<?xml version=\"1.0\" encoding=\"utf-8\"?><rss version=\"2.0\"><channel>"
            f"<title>Fil {size} {i}</title><link>https://www.example-actu.fr/{size}/{i}/</link>"
            "<description>Fil de test</description><language>fr</language>"
            + "".join(items) + "</channel></rss>").encode()


def etag(body: bytes) -> str:
    """Strong ETag of a body."""
    return '"' + hashlib.blake2b(body, digest_size=8).hexdigest() + '"'


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real feed servers do
    cache: dict[str, tuple[bytes, str]] = {}

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        parts = self.path.strip("/").split("/")
        if len(parts) != 3 or parts[0] != "feed" or parts[1] not in SIZES or not parts[2].endswith(".xml"):
            self._send(404, b"not found", {})
            return
        key = self.path
        if key not in self.cache:
            body = feed(parts[1], int(parts[2][:-4]))
            self.cache[key] = (body, etag(body))
        body, tag = self.cache[key]
        if self.headers.get("If-None-Match") == tag:
            self._send(304, b"", {"ETag": tag})
        else:
            self._send(200, body, {"ETag": tag, "Content-Type": "application/rss+xml; charset=utf-8"})

    def _send(self, status: int, body: bytes, headers: dict) -> None:
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        if status != 304:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)


def serve(workers: int) -> None:
    """Bind, print the port, fork the workers and wait (SIGTERM stops them all)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)  # connections made before the workers run simply wait in the backlog
    children = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:
            server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler, bind_and_activate=False)
            server.socket.close()
            server.socket = sock  # every worker accepts on the one shared listening socket
            server.daemon_threads = True
            server.serve_forever(poll_interval=0.5)
            os._exit(0)
        children.append(pid)
    # "PORT PID..." : the bench reads the workers' CPU time from /proc to show the server side
    # is not the bottleneck (and that its CPU is not counted as Flashbot's).
    print(sock.getsockname()[1], *children, flush=True)

    def stop(*_):
        for pid in children:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    for _ in children:
        os.wait()


def cpu_seconds(pids: list[int]) -> float | None:
    """User+system CPU seconds used so far by these processes (all threads), from /proc; None if unreadable."""
    total = 0.0
    try:
        for pid in pids:
            with open(f"/proc/{pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None
    return total


if __name__ == "__main__":
    serve(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
