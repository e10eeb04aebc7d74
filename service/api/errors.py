"""One domain error hierarchy, one mapping to HTTP, one error shape per surface."""

from __future__ import annotations

import logging

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, NotFoundException, ValidationException
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from service.wire.schemas import Envelope, ErrorBody, ErrorOut

log = logging.getLogger(__name__)

COINGLASS_PREFIX = "/api/"


class ApiError(Exception):
    """An error the client can act on: ``status`` and a message saying what is allowed."""

    status = 400
    error = "bad_request"

    def __init__(self, message: str, *, allowed: list[str] | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.allowed = allowed
        self.headers = headers or {}


class BadRequest(ApiError):
    status = 400
    error = "bad_request"


class NotFound(ApiError):
    status = 404
    error = "not_found"


class Unavailable(ApiError):
    status = 503
    error = "unavailable"


def error_response(request: Request, status: int, error: str, message: str, allowed: list[str] | None = None, headers: dict[str, str] | None = None) -> Response:
    if request.url.path.startswith(COINGLASS_PREFIX):
        body: object = Envelope(code=str(status), msg=message, data=None)
    else:
        body = ErrorOut(error=ErrorBody(status=status, error=error, message=message, allowed=allowed))
    return Response(content=msgspec.json.encode(body), status_code=status, media_type="application/json", headers=headers)


def handle_api_error(request: Request, exc: ApiError) -> Response:
    return error_response(request, exc.status, exc.error, exc.message, exc.allowed, exc.headers)


def handle_http_exception(request: Request, exc: HTTPException) -> Response:
    status = exc.status_code
    if isinstance(exc, ValidationException):
        message = exc.detail
        extra = exc.extra
        if isinstance(extra, list) and extra:
            parts = [f"{item.get('key', '?')}: {item.get('message', '')}" for item in extra if isinstance(item, dict)]
            if parts:
                message = f"{exc.detail} ({'; '.join(parts)})"
        return error_response(request, 400, "bad_request", message)
    if isinstance(exc, NotFoundException):
        return error_response(request, 404, "not_found", f"no route {request.method} {request.url.path}; see /docs for the API")
    return error_response(request, status, "http_error", exc.detail)


def handle_store_down(request: Request, exc: Exception) -> Response:
    log.warning("store unreachable: %s", exc)
    return error_response(request, 503, "store_unavailable", "the data store is unreachable; retry shortly", headers={"Retry-After": "5"})


def handle_unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s", request.url.path)
    return error_response(request, 500, "internal_error", "internal error; it has been logged")


EXCEPTION_HANDLERS = {
    ApiError: handle_api_error,
    HTTPException: handle_http_exception,
    RedisConnectionError: handle_store_down,
    RedisTimeoutError: handle_store_down,
    Exception: handle_unexpected,
}
