"""Web replicas are stateless: two `flashbot run --role web` processes on one PostgreSQL, a sign-up
on one and its confirmation on the other (the signing key lives in the database)."""
from __future__ import annotations

import re
import subprocess
import sys
import time

import httpx
import pytest

from bot.demo.postgres import free_port
from fixtures_web import csrf_of


def _start(stack, config, name):
    err = open(stack.dir / f"{name}.err", "w")
    return subprocess.Popen([sys.executable, "-m", "bot", "--config", str(config), "run", "--role", "web"],
                            cwd=stack.dir, stdout=subprocess.DEVNULL, stderr=err)


def _up(url: str, proc, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "a web replica exited"
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} did not come up")


def test_sign_up_on_one_replica_confirm_on_another(svc_stack, database):
    if database is None:
        pytest.skip("PostgreSQL only: SQLite runs one instance")
    port_a, port_b = free_port(), free_port()
    config_a = svc_stack.write_config(web_port=port_a, public_url=f"http://127.0.0.1:{port_a}")
    config_b = svc_stack.dir / "config-b.toml"
    config_b.write_text(config_a.read_text().replace(f"port = {port_a}\nadmin", f"port = {port_b}\nadmin"))
    a, b = f"http://127.0.0.1:{port_a}", f"http://127.0.0.1:{port_b}"
    procs = [_start(svc_stack, config_a, "web-a"), _start(svc_stack, config_b, "web-b")]
    try:
        _up(a, procs[0])
        _up(b, procs[1])
        with httpx.Client(base_url=a, timeout=10) as client:
            form = client.get("/")
            r = client.post("/subscribe", data={"csrf": csrf_of(form.text), "email": "zoe@example.org",
                                                "mode": "both", "language": "en"})
            assert r.status_code == 200
        deadline = time.monotonic() + 30
        while not svc_stack.smtp.messages and time.monotonic() < deadline:
            time.sleep(0.05)
        body = svc_stack.smtp.messages[0].parsed().get_body(preferencelist=("plain",)).get_content()
        link = re.search(r"https?://\S+/confirm/[A-Za-z0-9_.\-]+", body).group(0)
        assert link.startswith(a)
        with httpx.Client(timeout=10) as client:  # the other replica, a fresh browser
            confirm = link.replace(a, b)
            page = client.get(confirm)
            assert page.status_code == 200 and "zoe@example.org" in page.text
            done = client.post(confirm, data={"csrf": csrf_of(page.text)})
            assert done.status_code == 200 and "Subscription confirmed" in done.text
        assert svc_stack.sql("SELECT status FROM subscribers WHERE email = 'zoe@example.org'") == [("active",)]
        live = svc_stack.sql("SELECT roles FROM instances ORDER BY started_at")
        assert live == [("web",), ("web",)]
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(30)
