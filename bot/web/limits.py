"""Request limits in one place: the body cap (413 while the body streams in) and the client address
(X-Forwarded-For believed only from `[web] trusted_proxies`, IPv6 counted per /64)."""
from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from starlette.convertors import Convertor, register_url_convertor
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

FORM_MAX_BYTES = 64 * 1024  # the largest form (preferences with every topic) is a few kB
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class RowIdConvertor(Convertor[int]):
    """`{name:rowid}` in a route: 1 to 18 digits, so every match fits a database integer (a longer
    number is no route at all, 404, instead of an overflow deep in the driver)."""

    regex = "[0-9]{1,18}"

    def convert(self, value: str) -> int:
        """The id as an int."""
        return int(value)

    def to_string(self, value: int) -> str:
        """The id in a URL."""
        return str(int(value))


register_url_convertor("rowid", RowIdConvertor())


class BodyTooLarge(HTTPException):
    """Raised from receive() once a body passes its cap (the app's error page answers 413)."""

    def __init__(self) -> None:
        super().__init__(413)


class BodyLimit:
    """ASGI middleware capping every request body: a declared Content-Length over the cap is refused
    before the app runs, and a streamed body is cut the moment it passes the cap, whatever the
    Content-Type and whichever handler reads it. `caps` maps path prefixes to their own cap."""

    def __init__(self, app: ASGIApp, default: int = FORM_MAX_BYTES, caps: dict[str, int] | None = None) -> None:
        self.app = app
        self.default = default
        self.caps = sorted((caps or {}).items(), key=lambda kv: -len(kv[0]))

    def cap_for(self, path: str) -> int:
        """The body cap for a request path."""
        return next((cap for prefix, cap in self.caps if path.startswith(prefix)), self.default)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cap = self.cap_for(scope["path"])
        declared = dict(scope.get("headers") or []).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > cap:
            await _refuse(send)
            return
        seen, started = 0, False

        async def capped() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > cap:
                    raise BodyTooLarge()
            return message

        async def tracking(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, capped, tracking)
        except BodyTooLarge:
            if started:
                raise
            await _refuse(send)


async def _refuse(send: Send) -> None:
    body = b"Request body too large\n"
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


def parse_networks(entries: Iterable[str]) -> tuple[Network, ...]:
    """`[web] trusted_proxies` entries (addresses or CIDR networks, validated by bot.config) as networks."""
    return tuple(ipaddress.ip_network(e, strict=False) for e in entries)


def _address(text: str) -> Address | None:
    text = text.strip().strip('"')
    if text.startswith("[") and "]" in text:  # "[2001:db8::1]:443"
        text = text[1:text.index("]")]
    elif text.count(":") == 1:  # "192.0.2.1:443"
        text = text.split(":", 1)[0]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    mapped = getattr(ip, "ipv4_mapped", None)
    return mapped or ip


def _trusted(ip: Address, trusted: tuple[Network, ...]) -> bool:
    return any(ip.version == net.version and ip in net for net in trusted)


def client_ip(request: Request, trusted: tuple[Network, ...] = ()) -> str:
    """The client's address: the peer, unless the peer is a trusted proxy; then X-Forwarded-For is
    read from the right, skipping trusted proxies, and the first other address is the client."""
    peer = _address(request.client.host) if request.client else None
    if peer is None:
        return request.client.host if request.client else "unknown"
    if not trusted or not _trusted(peer, trusted):
        return str(peer)
    hops = [h for value in request.headers.getlist("x-forwarded-for") for h in value.split(",") if h.strip()]
    last = peer
    for hop in reversed(hops):
        ip = _address(hop)
        if ip is None:
            break  # not written by a proxy of ours: stop at the last address we can vouch for
        if not _trusted(ip, trusted):
            return str(ip)
        last = ip
    return str(last)


def rate_key(ip: str) -> str:
    """What a per-address limit counts: an IPv4 address, or the /64 of an IPv6 address (one
    subscriber line gets a whole /64, so counting single IPv6 addresses would be no limit at all)."""
    addr = _address(ip)
    if isinstance(addr, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((addr, 64), strict=False))
    return str(addr) if addr is not None else ip
