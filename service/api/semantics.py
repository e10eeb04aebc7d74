"""HTTP semantics every route shares, applied before routing: HEAD, request size limits, conditional requests.

Litestar's middleware runs after a route is found, so what must hold for every request
(a HEAD on any GET route, a 414 for a query string too long to be anything but abuse)
is done here, in the application's entry point.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from litestar import Litestar
from litestar.types import Message, Receive, Scope, Send

from service.api.errors import error_body, shown, with_head

# A query string longer than this is refused (414): no route takes anything near it.
MAX_QUERY_BYTES = 8 * 1024
# Request headers, names and values together, longer than this are refused (431).
MAX_HEADER_BYTES = 16 * 1024
# What uvicorn buffers of a request's head before giving up with a bare 400: above both limits,
# so that requests over them are answered by the API, in its error shape.
MAX_REQUEST_HEAD_BYTES = 128 * 1024


class _HeadDone(Exception):
    """A HEAD response is complete; what the route sends after that (a stream) is not wanted."""


class ApiApp(Litestar):
    """The API: Litestar, with the checks above run on every HTTP request before routing."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:  # type: ignore[override]
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        refused = _refused(scope)
        if refused is not None:
            await _refuse(scope, send, *refused)
            return
        if scope["method"] == "OPTIONS":
            await super().__call__(scope, receive, _allow_head(send))
            return
        if scope["method"] != "HEAD":
            await super().__call__(scope, receive, send)
            return
        # HEAD: the GET answer's status and headers, no body (RFC 9110 9.3.2).
        done = False

        async def send_head(message: Message) -> None:
            nonlocal done
            if done:
                raise _HeadDone
            if message["type"] == "http.response.body":
                done = True
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        try:
            await super().__call__({**scope, "method": "GET"}, receive, send_head)  # type: ignore[arg-type]
        except _HeadDone:
            pass


def _allow_head(send: Send) -> Send:
    """``send``, with HEAD added to an ``Allow`` header that lists GET (the router does not know it answers HEAD)."""

    async def send_allowing_head(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = []
            for name, value in message.get("headers", []):
                if name.lower() == b"allow":
                    value = ", ".join(with_head([m.strip() for m in value.decode("latin-1").split(",")])).encode()
                headers.append((name, value))
            message = {**message, "headers": headers}
        await send(message)

    return send_allowing_head


def _refused(scope: Scope) -> tuple[int, str, str] | None:
    """``(status, error, message)`` for a request refused whatever its route, else None. The message never echoes the input."""
    query_string = scope.get("query_string", b"")
    if len(query_string) > MAX_QUERY_BYTES:
        return 414, "uri_too_long", f"the query string is {len(query_string)} bytes; at most {MAX_QUERY_BYTES} are accepted"
    headers = sum(len(name) + len(value) for name, value in scope["headers"])
    if headers > MAX_HEADER_BYTES:
        return 431, "headers_too_large", f"the request headers are {headers} bytes; at most {MAX_HEADER_BYTES} are accepted"
    if b"null" in query_string:
        # The framework reads "null" as "absent" for numbers but as text elsewhere: neither is what
        # the document says (no query parameter is nullable), so it is refused everywhere alike.
        for name, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
            if value == "null":
                return 400, "bad_request", f"{shown(name, quote=False)}=null: a query parameter cannot be null; leave it out to use its default"
    return None


async def _refuse(scope: Scope, send: Send, status: int, error: str, message: str) -> None:
    body = error_body(scope["path"], status, error, message)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), (b"connection", b"close")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})


def etag_matches(if_none_match: str, etag: str) -> bool:
    """Whether an ``If-None-Match`` value names ``etag``: ``*``, or a list of tags compared weakly (``W/`` ignored)."""
    if not if_none_match:
        return False
    wanted = etag.removeprefix("W/")
    for candidate in if_none_match.split(","):
        tag = candidate.strip()
        if tag == "*" or tag.removeprefix("W/") == wanted:
            return True
    return False
