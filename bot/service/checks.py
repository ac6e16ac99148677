"""`flashbot check`: validate the config and test each part's connectivity, one verdict per part."""
from __future__ import annotations

import asyncio
import socket

from bot.store import open_db

Verdict = tuple[str, str, str]  # (part, ok|off|warn|FAIL, detail)


def check_database(cfg) -> Verdict:
    """The database opens and is at the current schema."""
    try:
        engine = open_db(cfg.database_url)
        engine.dispose()
    except Exception as exc:  # noqa: BLE001 - any driver error is the verdict
        return ("database", "FAIL", f"{cfg.bot.database}: {exc}")
    return ("database", "ok", cfg.bot.database)


def check_web(cfg) -> Verdict:
    """The web port can be bound (in use usually means the service already runs)."""
    if not cfg.web.enabled:
        return ("web", "off", "[web] enabled = false")
    admin = "dashboard on" if cfg.web.admin_password else "no admin_password: dashboard off"
    sock = socket.socket(socket.AF_INET6 if ":" in cfg.web.host else socket.AF_INET)
    try:
        sock.bind((cfg.web.host, cfg.web.port))
    except OSError as exc:
        return ("web", "warn", f"{cfg.web.host}:{cfg.web.port} not free ({exc.strerror}; is flashbot running?); {admin}")
    finally:
        sock.close()
    if _behind_proxy_untrusted(cfg):
        return ("web", "warn", f"{cfg.web.host}:{cfg.web.port} free; {admin}; [bot] public_url is not this host but "
                "[web] trusted_proxies is empty: behind a reverse proxy every visitor shares its address "
                "for the per-IP limits (see docs/web.md, Security)")
    return ("web", "ok", f"{cfg.web.host}:{cfg.web.port} free; {admin}")


def check_bounces(cfg, offline: bool = False, timeout: float = 10) -> Verdict:
    """[bounces]: the receiver's port can be bound, the IMAP mailbox logs in and opens (unless offline)."""
    b = cfg.bounces
    if b is None:
        return ("bounces", "off", "[bounces] section absent: no return path, bounces are not followed")
    from bot.bounce_config import host_port
    from bot.bounces import imap

    said = [f"return path b-…@{b.domain}"]
    hooks = [name for name, on in (("ses", b.ses_topic_arns), ("mailgun", b.mailgun_signing_key),
                                   ("postmark", b.postmark_username), ("sendgrid", b.sendgrid_public_key)) if on]
    said += [f"webhooks: {', '.join(hooks)}"] if hooks else []
    if b.listen:
        host, port = host_port(b.listen)
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        try:
            sock.bind((host, port))
            said.append(f"receiver {b.listen} free")
        except OSError as exc:
            return ("bounces", "warn", "; ".join(said + [f"receiver {b.listen} not free ({exc.strerror}; is flashbot running?)"]))
        finally:
            sock.close()
    if b.imap_url and not offline:
        try:
            folder = imap.check(b.imap_url, b.imap_password, cfg.resolve(b.imap_ca_file) if b.imap_ca_file else None, timeout)
        except imap.ImapError as exc:
            return ("bounces", "FAIL", "; ".join(said + [str(exc)]))
        said.append(f"IMAP {folder} opened")
    return ("bounces", "ok", "; ".join(said))


def _behind_proxy_untrusted(cfg) -> bool:
    """Listening on loopback for a public address (so a reverse proxy in front) with no proxy trusted."""
    from urllib.parse import urlsplit

    local = ("127.0.0.1", "::1", "localhost")
    public = (urlsplit(cfg.bot.public_url).hostname or "").lower()
    return cfg.web.host in local and public not in local and not cfg.web.trusted_proxies


async def check_channel(name: str, section, make, timeout: float) -> Verdict:
    """SMTP EHLO or Telegram getMe through the real channel class."""
    if section is None:
        return (name, "off", f"[{name}] section absent")
    channel = make(section)
    try:
        detail = await asyncio.wait_for(channel.check(), timeout)
        return (name, "ok", str(detail))
    except asyncio.TimeoutError:
        return (name, "FAIL", f"no answer within {timeout:g} s")
    except Exception as exc:  # noqa: BLE001 - the message is the verdict
        return (name, "FAIL", str(exc) or type(exc).__name__)
    finally:
        await channel.close()


async def check_sources(cfg, timeout: float) -> list[Verdict]:
    """Fetch each configured source once (nothing is stored)."""
    from bot.ingest.fetch import fetch_feed, make_client

    client = make_client(cfg.fetch.model_copy(update={"timeout": min(cfg.fetch.timeout, timeout)}))
    try:
        results = await asyncio.gather(*(fetch_feed(client, cfg, s.url) for s in cfg.sources))
    finally:
        await client.aclose()
    verdicts = []
    for src, res in zip(cfg.sources, results):
        if res.error:
            verdicts.append((f"source {src.name}", "FAIL", res.error))
        else:
            hub = f"; WebSub hub {res.hub_url}" if res.hub_url else ""
            verdicts.append((f"source {src.name}", "ok", f"{res.status or 'file'}: {len(res.items)} items{hub}"))
    return verdicts or [("sources", "warn", "no [[sources]] in the config")]


async def run_checks(cfg, offline: bool = False, timeout: float = 10) -> list[Verdict]:
    """Every verdict: config, database, web, bounces, then (unless offline) email, telegram and each source."""
    verdicts = [("config", "ok", f"{len(cfg.sources)} source(s); channels off: {', '.join(cfg.channels_off()) or 'none'}"),
                await asyncio.to_thread(check_database, cfg), check_web(cfg),
                await asyncio.to_thread(check_bounces, cfg, offline, timeout)]
    if offline:
        return verdicts
    from bot.delivery.channels.email import EmailChannel
    from bot.delivery.channels.telegram import TelegramChannel

    verdicts.append(await check_channel("email", cfg.email, EmailChannel, timeout))
    verdicts.append(await check_channel("telegram", cfg.telegram, TelegramChannel, timeout))
    return verdicts + await check_sources(cfg, timeout)
