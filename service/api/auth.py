"""Authentication and rate limiting of the data routes (``/v1/...`` and ``/api/...``)."""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Sequence

from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from redis.exceptions import RedisError

from service.store.access import Access, ApiKey, parse_key
from service.store.outage import STORE
from service.api.errors import COINGLASS_PREFIX, ApiError, RateLimited, StoreUnreachable, Unauthorized, error_body
from service.settings import Settings

log = logging.getLogger(__name__)

KEY_HEADERS = (b"x-api-key", b"cg-api-key")
GUARDED_PREFIXES = ("/v1/", COINGLASS_PREFIX)
FORWARDED_FOR = b"x-forwarded-for"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def trusted_networks(proxies: Sequence[str]) -> tuple[Network, ...]:
    """``LIQMAP_TRUSTED_PROXIES`` as networks; a ValueError names an entry that is neither an address nor a network."""
    networks = []
    for entry in proxies:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            raise ValueError(f"LIQMAP_TRUSTED_PROXIES: {entry!r} is not an IP address or network (CIDR), e.g. 10.0.0.0/8") from None
    return tuple(networks)


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def client_address(scope: Scope, trusted: Sequence[Network]) -> str:
    """The address a request is counted under: its connection's peer, unless that peer is a trusted proxy.

    Behind trusted proxies, ``X-Forwarded-For`` is read from the right (each proxy appends
    the address it was connected from) and the first hop that is not a trusted proxy is the
    client; hops further left were written by the client and prove nothing. Without trusted
    proxies (the default) the header is never read, whatever its name's case or spacing.
    """
    peer = (scope.get("client") or ("unknown", 0))[0]
    address = _address(peer)
    if not trusted or address is None or not any(address in net for net in trusted):
        return peer
    hops = [hop for name, value in scope["headers"] if name.lower() == FORWARDED_FOR for hop in value.decode("latin-1").split(",")]
    for hop in reversed(hops):
        hop_address = _address(hop)
        if hop_address is None:
            break  # not an address: what a client wrote, not a proxy
        if not any(hop_address in net for net in trusted):
            return str(hop_address)
        peer = str(hop_address)
    return peer


async def _send_error(send: Send, path: str, exc: ApiError, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = error_body(path, exc.status, exc.error, exc.message)
    retry_after = [] if exc.retry_after_s is None else [(b"retry-after", str(exc.retry_after_s).encode())]
    await send(
        {
            "type": "http.response.start",
            "status": exc.status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *(headers or []), *retry_after],
        }
    )
    await send({"type": "http.response.body", "body": body})


def anonymous_identity(address: str) -> str:
    """What an anonymous client is counted as: its IPv4 address, or the /64 of its IPv6 one.

    A host is given a whole IPv6 /64 and may use any address in it: counted per address, it
    would have 2**64 limits. An IPv4 address written as IPv6 (``::ffff:192.0.2.1``) is the IPv4 one.
    """
    parsed = _address(address)
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.IPv6Network((parsed, 64), strict=False))
    return address if parsed is None else str(parsed)


async def identify(access: Access, settings: Settings, presented: str | None, address: str) -> tuple[str, int, ApiKey | None]:
    """Who is asking: ``(client, requests per minute, key)`` for a liqmap key, or anonymous by address.

    A key that is not a liqmap key (a Coinglass client still sending its own) is served as
    anonymous where anonymous access is allowed. :class:`Unauthorized` for a bad or revoked
    key, or no key where one is required.
    """
    presented = presented.strip() if presented else None
    if presented and parse_key(presented) is None and settings.anonymous_access:
        presented = None
    if presented:
        record = await access.verify(presented)
        if record is None:
            raise Unauthorized("the API key is not valid or has been revoked")
        return record.id, record.limit_per_min, record
    if settings.anonymous_access:
        return f"anon:{anonymous_identity(address)}", settings.anonymous_limit_per_min, None
    raise Unauthorized("an API key is required: send it in the X-API-Key (or CG-API-KEY) header")


class AccessMiddleware(ASGIMiddleware):
    """Who is asking, and may they ask now: API key or anonymous, counted per minute."""

    scopes = (ScopeType.HTTP,)

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.trusted = trusted_networks(settings.trusted_proxies)
        self.should_bypass_for_scope = lambda scope: not scope["path"].startswith(GUARDED_PREFIXES)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        path = scope["path"]
        access: Access = scope["litestar_app"].state.access
        presented = next((value.decode(errors="replace") for name, value in scope["headers"] if name in KEY_HEADERS), None)
        try:
            client, limit, _ = await identify(access, self.settings, presented, client_address(scope, self.trusted))
            allowance = await access.count(client, limit)
        except Unauthorized as exc:
            await _send_error(send, path, exc)
            return
        except RedisError as exc:
            STORE.down(exc, "checking access")
            await _send_error(send, path, StoreUnreachable())
            return

        limit_headers = [
            (b"api-key-max-limit", str(allowance.limit).encode()),
            (b"api-key-use-limit", str(min(allowance.used, allowance.limit)).encode()),
        ]
        if not allowance.allowed:
            await _send_error(send, path, RateLimited(allowance.limit, allowance.retry_after_s), limit_headers)
            return

        async def send_with_limits(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *limit_headers]
            await send(message)

        await next_app(scope, receive, send_with_limits)
