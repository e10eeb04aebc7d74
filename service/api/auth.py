"""Authentication and rate limiting of the data routes (``/v1/...`` and ``/api/...``)."""

from __future__ import annotations

import logging

import msgspec
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from redis.exceptions import RedisError

from service.store.access import Access, parse_key
from service.api.errors import COINGLASS_PREFIX
from service.wire.schemas import Envelope, ErrorBody, ErrorOut
from service.settings import Settings

log = logging.getLogger(__name__)

KEY_HEADERS = (b"x-api-key", b"cg-api-key")
GUARDED_PREFIXES = ("/v1/", COINGLASS_PREFIX)


def _error(path: str, status: int, error: str, message: str) -> bytes:
    if path.startswith(COINGLASS_PREFIX):
        return msgspec.json.encode(Envelope(code=str(status), msg=message, data=None))
    return msgspec.json.encode(ErrorOut(error=ErrorBody(status=status, error=error, message=message)))


async def _send_error(send: Send, path: str, status: int, error: str, message: str, headers: list[tuple[bytes, bytes]]) -> None:
    body = _error(path, status, error, message)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *headers],
        }
    )
    await send({"type": "http.response.body", "body": body})


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
        if presented and parse_key(presented.strip()) is None and self.settings.anonymous_access:
            # Not a liqmap key (a Coinglass client still sending its own): served as anonymous.
            presented = None
        try:
            if presented:
                record = await access.verify(presented.strip())
                if record is None:
                    await _send_error(send, path, 401, "unauthorized", "the API key is not valid or has been revoked", [])
                    return
                client, limit = record.id, record.limit_per_min
            elif self.settings.anonymous_access:
                host = scope.get("client") or ("unknown", 0)
                client, limit = f"anon:{host[0]}", self.settings.anonymous_limit_per_min
            else:
                message = "an API key is required: send it in the X-API-Key (or CG-API-KEY) header"
                await _send_error(send, path, 401, "unauthorized", message, [])
                return
            allowance = await access.count(client, limit)
        except RedisError as exc:
            log.warning("store unreachable while checking access: %s", exc)
            await _send_error(send, path, 503, "store_unavailable", "the data store is unreachable; retry shortly", [(b"retry-after", b"5")])
            return

        limit_headers = [
            (b"api-key-max-limit", str(allowance.limit).encode()),
            (b"api-key-use-limit", str(min(allowance.used, allowance.limit)).encode()),
        ]
        if not allowance.allowed:
            message = f"rate limit of {allowance.limit} requests per minute exceeded; retry in {allowance.retry_after_s} s"
            await _send_error(send, path, 429, "rate_limited", message, [*limit_headers, (b"retry-after", str(allowance.retry_after_s).encode())])
            return

        async def send_with_limits(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *limit_headers]
            await send(message)

        await next_app(scope, receive, send_with_limits)
