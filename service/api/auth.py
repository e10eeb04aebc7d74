"""Authentication and rate limiting of the data routes (``/v1/...`` and ``/api/...``)."""

from __future__ import annotations

import logging

from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from redis.exceptions import RedisError

from service.store.access import Access, ApiKey, parse_key
from service.api.errors import COINGLASS_PREFIX, ApiError, RateLimited, StoreUnreachable, Unauthorized, error_body
from service.settings import Settings

log = logging.getLogger(__name__)

KEY_HEADERS = (b"x-api-key", b"cg-api-key")
GUARDED_PREFIXES = ("/v1/", COINGLASS_PREFIX)


def client_address(scope: Scope) -> str:
    return (scope.get("client") or ("unknown", 0))[0]


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
        return f"anon:{address}", settings.anonymous_limit_per_min, None
    raise Unauthorized("an API key is required: send it in the X-API-Key (or CG-API-KEY) header")


class AccessMiddleware(ASGIMiddleware):
    """Who is asking, and may they ask now: API key or anonymous, counted per minute."""

    scopes = (ScopeType.HTTP,)

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.should_bypass_for_scope = lambda scope: not scope["path"].startswith(GUARDED_PREFIXES)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        path = scope["path"]
        access: Access = scope["litestar_app"].state.access
        presented = next((value.decode(errors="replace") for name, value in scope["headers"] if name in KEY_HEADERS), None)
        try:
            client, limit, _ = await identify(access, self.settings, presented, client_address(scope))
            allowance = await access.count(client, limit)
        except Unauthorized as exc:
            await _send_error(send, path, exc)
            return
        except RedisError as exc:
            log.warning("store unreachable while checking access: %s", exc)
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
