"""EmailChannel against a real aiosmtpd server: error mapping, pool, TLS modes, auth, rate limit, check."""
from __future__ import annotations

import asyncio
import logging
import ssl

import pytest

from bot.delivery.channels.base import Outgoing, PermanentError, Scope, TemporaryError
from bot.delivery.channels.email import EmailChannel
from bot.config import EmailConfig
from bot.demo.smtpserver import SMTPServer, self_signed_cert

BODY = b"From: a@example.org\r\nTo: r@example.net\r\nSubject: t\r\n\r\nhello\r\n"


def channel(server: SMTPServer, tls_context=None, **kw) -> EmailChannel:
    cfg = EmailConfig(**{"host": "127.0.0.1", "port": server.port, "sender": "Flash <alertes@example.org>",
                         "tls": "none", "timeout": 3, "concurrency": 3, **kw})
    return EmailChannel(cfg, tls_context=tls_context)


def out(rcpt: str = "r@example.net", i: int = 1) -> Outgoing:
    return Outgoing(delivery_id=i, recipient=rcpt, body=BODY)


FAULTS = [
    # (fault kwargs, expected error class, bounce, channel-wide)
    ({"code": 421, "stage": "connect"}, TemporaryError, False, True),
    ({"code": 451, "stage": "rcpt"}, TemporaryError, False, False),
    ({"code": 452, "stage": "rcpt"}, TemporaryError, False, False),
    ({"code": 550, "stage": "rcpt"}, PermanentError, True, False),
    ({"code": 553, "stage": "rcpt"}, PermanentError, True, False),
    ({"code": 552, "stage": "data"}, PermanentError, True, False),
    ({"code": 554, "stage": "data"}, PermanentError, True, False),
    ({"code": 451, "stage": "data"}, TemporaryError, False, False),
    ({"code": 553, "stage": "mail"}, PermanentError, False, False),  # our sender refused: not the subscriber's fault
    ({"stage": "data", "drop": True}, TemporaryError, False, False),
]


@pytest.mark.parametrize("pipelining", [False, True], ids=["one-by-one", "pipelined"])
@pytest.mark.parametrize("fault,error,bounce,wide", FAULTS)
async def test_smtp_faults_map_to_delivery_errors(smtp_server, fault, error, bounce, wide, pipelining):
    smtp_server.pipelining = pipelining
    smtp_server.fail(**fault)
    ch = channel(smtp_server)
    with pytest.raises(error) as info:
        await ch.send(out())
    assert info.value.bounce is bounce
    assert (info.value.scope == Scope.CHANNEL) is wide
    if "code" in fault:
        assert str(fault["code"]) in str(info.value)
    smtp_server.clear_faults()
    await ch.send(out())  # the channel recovers: a new or reset session works
    assert smtp_server.recipients() == ["r@example.net"]
    await ch.close()


@pytest.mark.parametrize("pipelining", [False, True])
async def test_pool_reuses_at_most_concurrency_sessions(smtp_server, pipelining):
    smtp_server.pipelining = pipelining
    ch = channel(smtp_server, concurrency=3)
    await asyncio.gather(*(ch.send(out(f"u{i}@example.net", i)) for i in range(60)))
    assert len(smtp_server.messages) == 60 and smtp_server.connections == 3 and ch.connects == 3
    assert ("PIPELINING" in await ch.check()) is pipelining  # the pipelined path was the one used
    await ch.close()


@pytest.mark.parametrize("pipelining", [False, True])
async def test_message_bytes_arrive_unchanged_with_dot_stuffing(smtp_server, pipelining):
    smtp_server.pipelining = pipelining
    body = (b"From: a@example.org\r\nTo: r@example.net\r\nSubject: dots\r\n\r\n"
            b".leading dot\r\n..two dots\r\nmiddle . dot\r\n.\r\nlast")  # no final CRLF
    ch = channel(smtp_server)
    await ch.send(Outgoing(delivery_id=1, recipient="r@example.net", body=body))
    await ch.send(Outgoing(delivery_id=2, recipient="s@example.net", body=BODY))
    got = [m.data for m in smtp_server.messages]
    assert got[0].replace(b"\r\n", b"\n") == body.replace(b"\r\n", b"\n") + b"\n"
    assert got[1].replace(b"\r\n", b"\n") == BODY.replace(b"\r\n", b"\n")
    await ch.close()


async def test_idle_session_closed_by_server_is_replaced_transparently(smtp_server):
    ch = channel(smtp_server, concurrency=1)
    await ch.send(out("a@example.net"))
    smtp_server.fail(stage="mail", drop=True, times=1)  # the server drops the idle session on next use
    await ch.send(out("b@example.net"))
    assert smtp_server.recipients() == ["a@example.net", "b@example.net"] and ch.connects == 2
    await ch.close()


async def test_server_slower_than_timeout_is_a_temporary_error(smtp_server):
    smtp_server.delay = 2.5
    ch = channel(smtp_server, timeout=0.5)
    with pytest.raises(TemporaryError, match="timeout|Timed out|timed out"):
        await ch.send(out())
    await ch.close()


async def test_rate_limit_spaces_messages(smtp_server):
    ch = channel(smtp_server, rate_limit=20, concurrency=4)
    loop = asyncio.get_running_loop()
    start = loop.time()
    await asyncio.gather(*(ch.send(out(f"u{i}@example.net", i)) for i in range(11)))
    assert loop.time() - start >= 0.45  # 11 messages at 20/s: the 11th leaves 0.5 s after the first
    await ch.close()


async def test_auth_ok_and_wrong_password_never_logged(tmp_path, caplog):
    secret = "s3cr3t-Pa55word"
    with SMTPServer(users={"bot": secret}) as server:
        ch = channel(server, username="bot", password=secret)
        await ch.send(out())
        assert server.logins == ["bot"] and server.recipients() == ["r@example.net"]
        await ch.close()
        caplog.set_level(logging.DEBUG)
        bad = channel(server, username="bot", password="wrong-" + secret)
        with pytest.raises(TemporaryError, match="authentication") as info:
            await bad.send(out())
        assert info.value.scope == "channel"
        assert secret not in str(info.value) and secret not in caplog.text
        assert secret not in await ch.check()


@pytest.mark.parametrize("mode", ["starttls", "auto", "tls"])
async def test_tls_modes(tmp_path, mode):
    cert = self_signed_cert(tmp_path)
    if cert is None:
        pytest.skip("openssl CLI not available for a test certificate")
    ctx = ssl.create_default_context(cafile=cert[0])
    with SMTPServer(tls_cert=cert, implicit_tls=(mode == "tls")) as server:
        ch = channel(server, tls_context=ctx, tls=mode)
        await ch.send(out())
        assert server.recipients() == ["r@example.net"]
        assert "; TLS" in await ch.check()
        await ch.close()
        untrusted = channel(server, tls=mode)  # the system CAs do not know this certificate
        with pytest.raises(TemporaryError):
            await untrusted.send(out())


async def test_starttls_required_but_not_offered(smtp_server):
    ch = channel(smtp_server, tls="starttls")
    with pytest.raises(TemporaryError) as info:
        await ch.send(out())
    assert info.value.scope == "channel"


async def test_check_reports_the_server_or_raises(smtp_server):
    ch = channel(smtp_server)
    verdict = await ch.check()
    assert verdict.startswith(f"127.0.0.1:{smtp_server.port} ok") and "no TLS" in verdict
    smtp_server.stop()
    with pytest.raises(TemporaryError, match="connect"):
        await ch.check()


async def test_control_characters_in_an_address_are_refused_before_anything_is_sent(smtp_server):
    ch = channel(smtp_server, concurrency=1)
    with pytest.raises(PermanentError, match="control character"):
        await ch.send(out("r@example.net>\r\nRCPT TO:<victim@example.net"))
    await ch.send(out("ok@example.net"))  # the same session carries on
    assert smtp_server.recipients() == ["ok@example.net"] and ch.connects == 1
    await ch.close()
