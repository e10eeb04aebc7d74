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
RETRY_AFTER_S = 5  # what a client is asked to wait while something is being made or the store is away


class ApiError(Exception):
    """An error the client can act on: ``status`` and a message saying what is allowed."""

    status = 400
    error = "bad_request"
    retry_after_s: int | None = None

    def __init__(self, message: str, *, allowed: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.allowed = allowed


class BadRequest(ApiError):
    status = 400
    error = "bad_request"


class NotFound(ApiError):
    status = 404
    error = "not_found"


class FrameNoLongerAvailable(NotFound):
    """A listed frame that no longer builds to the bytes it was listed with (its model version or inputs are gone)."""

    def __init__(self, exchange: str, symbol: str, frame_id: str, reason: object) -> None:
        super().__init__(f"frame {frame_id!r} of {exchange}:{symbol} is no longer available: {reason}")


class Unauthorized(ApiError):
    status = 401
    error = "unauthorized"


class RateLimited(ApiError):
    status = 429
    error = "rate_limited"

    def __init__(self, limit_per_min: int, retry_after_s: int) -> None:
        super().__init__(f"rate limit of {limit_per_min} requests per minute exceeded; retry in {retry_after_s} s")
        self.retry_after_s = retry_after_s


class Unavailable(ApiError):
    """Not there yet; worth asking again after ``Retry-After``."""

    status = 503
    error = "unavailable"
    retry_after_s = RETRY_AFTER_S


class FrameNotReady(Unavailable):
    """A market we have whose newest frame of a model and range does not exist yet: it is being computed."""

    def __init__(self, exchange: str, symbol: str, model: str, range_name: str) -> None:
        super().__init__(f"no {model} {range_name} frame for {exchange}:{symbol} yet; it is being computed")


class InputsNotReady(Unavailable):
    """A market with a frame but no stored inputs to derive another view of it from."""

    def __init__(self, exchange: str, symbol: str) -> None:
        super().__init__(f"no data for {exchange}:{symbol} yet")


class StoreUnreachable(Unavailable):
    error = "store_unavailable"

    def __init__(self) -> None:
        super().__init__("the data store is unreachable; retry shortly")


def error_body(path: str, status: int, error: str, message: str, allowed: list[str] | None = None) -> bytes:
    """The error shape of the surface ``path`` belongs to: the Coinglass envelope, or the native ``{"error": ...}``."""
    if path.startswith(COINGLASS_PREFIX):
        return msgspec.json.encode(Envelope(code=str(status), msg=message, data=None))
    return msgspec.json.encode(ErrorOut(error=ErrorBody(status=status, error=error, message=message, allowed=allowed)))


def _response(request: Request, status: int, error: str, message: str, allowed: list[str] | None = None, retry_after_s: int | None = None) -> Response:
    headers = None if retry_after_s is None else {"Retry-After": str(retry_after_s)}
    body = error_body(request.url.path, status, error, message, allowed)
    return Response(content=body, status_code=status, media_type="application/json", headers=headers)


def error_response(request: Request, exc: ApiError) -> Response:
    return _response(request, exc.status, exc.error, exc.message, exc.allowed, exc.retry_after_s)


def handle_http_exception(request: Request, exc: HTTPException) -> Response:
    if isinstance(exc, ValidationException):
        message = exc.detail
        extra = exc.extra
        if isinstance(extra, list) and extra:
            parts = [f"{item.get('key', '?')}: {item.get('message', '')}" for item in extra if isinstance(item, dict)]
            if parts:
                message = f"{exc.detail} ({'; '.join(parts)})"
        return _response(request, 400, "bad_request", message)
    if isinstance(exc, NotFoundException):
        return _response(request, 404, "not_found", f"no route {request.method} {request.url.path}; see /docs for the API")
    return _response(request, exc.status_code, "http_error", exc.detail)


def handle_store_down(request: Request, exc: Exception) -> Response:
    log.warning("store unreachable: %s", exc)
    return error_response(request, StoreUnreachable())


def handle_unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s", request.url.path)
    return _response(request, 500, "internal_error", "internal error; it has been logged")


EXCEPTION_HANDLERS = {
    ApiError: error_response,
    HTTPException: handle_http_exception,
    RedisConnectionError: handle_store_down,
    RedisTimeoutError: handle_store_down,
    Exception: handle_unexpected,
}
