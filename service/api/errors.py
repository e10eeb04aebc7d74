"""One domain error hierarchy, one mapping to HTTP, one error shape per surface."""

from __future__ import annotations

import logging
from typing import Any, Literal, get_args, get_origin

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, MethodNotAllowedException, NotFoundException, ValidationException
from litestar.typing import FieldDefinition
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from service.store.outage import STORE
from service.wire.schemas import Envelope, ErrorBody, ErrorOut

log = logging.getLogger(__name__)

COINGLASS_PREFIX = "/api/"
RETRY_AFTER_S = 5  # what a client is asked to wait while something is being made or the store is away

# Values echoed in messages are cut to this many characters.
SHOWN_MAX_CHARS = 40


def shown(value: str, *, quote: bool = True) -> str:
    """``value`` (quoted) for a message, cut when long: a message never echoes a huge input back."""
    if len(value) <= SHOWN_MAX_CHARS:
        return repr(value) if quote else value
    head = value[:SHOWN_MAX_CHARS]
    return f"{repr(head) if quote else head}... ({len(value)} characters)"


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
        super().__init__(f"frame {shown(frame_id)} of {exchange}:{symbol} is no longer available: {reason}")


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


def _response(
    request: Request,
    status: int,
    error: str,
    message: str,
    allowed: list[str] | None = None,
    retry_after_s: int | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    headers = dict(headers or {})
    if retry_after_s is not None:
        headers["Retry-After"] = str(retry_after_s)
    body = error_body(request.url.path, status, error, message, allowed)
    return Response(content=body, status_code=status, media_type="application/json", headers=headers or None)


def error_response(request: Request, exc: ApiError) -> Response:
    return _response(request, exc.status, exc.error, exc.message, exc.allowed, exc.retry_after_s)


def handle_http_exception(request: Request, exc: HTTPException) -> Response:
    if isinstance(exc, ValidationException):
        message, allowed = validation_message(request, exc)
        return _response(request, 400, "bad_request", message, allowed)
    if isinstance(exc, NotFoundException):
        return _response(request, 404, "not_found", f"no route {request.method} {shown(request.url.path, quote=False)}; see /docs for the API")
    if isinstance(exc, MethodNotAllowedException):
        allowed = _allowed_methods(exc)
        message = f"method {shown(request.method, quote=False)} is not allowed here; allowed: {', '.join(allowed)}"
        return _response(request, 405, "method_not_allowed", message, allowed, headers={"Allow": ", ".join(allowed)})
    return _response(request, exc.status_code, "http_error", exc.detail)


def _allowed_methods(exc: MethodNotAllowedException) -> list[str]:
    return with_head([m.strip() for m in (exc.headers or {}).get("allow", "GET").split(",") if m.strip()])


_METHOD_ORDER = ("GET", "HEAD", "OPTIONS")


def with_head(methods: list[str]) -> list[str]:
    """A route's methods as the router lists them, with HEAD wherever GET is (it is answered before routing), GET first."""
    chosen = set(methods) | ({"HEAD"} if "GET" in methods else set())
    return sorted(chosen, key=lambda m: (_METHOD_ORDER.index(m) if m in _METHOD_ORDER else len(_METHOD_ORDER), m))


def validation_message(request: Request, exc: ValidationException) -> tuple[str, list[str] | None]:
    """What the framework's parameter checks found, said as the routes' own checks say it.

    Each parameter by its public name (``format``, not the handler's ``fmt``), what it must
    be (the allowed values, the bounds) and what was sent, cut when long; never the URL.
    """
    fields = _parameter_fields(request)
    parts: list[str] = []
    allowed: list[str] | None = None
    for item in exc.extra if isinstance(exc.extra, list) else []:
        if not isinstance(item, dict) or "key" not in item:
            continue
        field = fields.get(item["key"])
        name, must, choices = _parameter_rule(item["key"], field)
        sent = request.query_params.get(name) if item.get("source") != "path" else request.path_params.get(name)
        got = "" if sent is None else f"; got {shown(str(sent))}"
        parts.append(f"{name} must be {must}{got}" if must else f"{name}: {item.get('message', 'not valid')}{got}")
        allowed = allowed if choices is None else choices
    if not parts:
        return "the request's parameters are not valid; see /docs for what each route takes", None
    return "; ".join(parts), allowed if len(parts) == 1 else None


def _parameter_fields(request: Request) -> dict[str, FieldDefinition]:
    """The handler's parameters and those of its dependencies, by Python name."""
    handler = request.route_handler
    fields: dict[str, FieldDefinition] = {}
    for provide in handler.resolve_dependencies().values():
        fields.update(getattr(provide.signature_model, "_fields", {}))
    fields.update(getattr(handler.signature_model, "_fields", {}))
    return fields


_KINDS = {int: "an integer", float: "a number", bool: "true or false", str: "text"}


def _parameter_rule(key: str, field: FieldDefinition | None) -> tuple[str, str, list[str] | None]:
    """``(public name, what the value must be, allowed values)`` of a parameter, from its declaration."""
    if field is None:
        return key, "", None
    kwarg = field.kwarg_definition
    name = getattr(kwarg, "name", None) or getattr(kwarg, "query", None) or key
    extra = getattr(kwarg, "schema_extra", None) or {}
    choices = [str(value) for value in extra.get("enum", ())] or _literal_values(field.annotation)
    if choices:
        return name, f"one of {', '.join(choices)}", choices
    kind = next((text for type_, text in _KINDS.items() if _has_type(field.annotation, type_)), "valid")
    low = next((v for v in (getattr(kwarg, "ge", None), extra.get("minimum")) if v is not None), None)
    high = next((v for v in (getattr(kwarg, "le", None), extra.get("maximum")) if v is not None), None)
    if low is not None and high is not None:
        kind = f"{kind} {_number(low)}..{_number(high)}"
    elif low is not None:
        kind = f"{kind} >= {_number(low)}"
    elif high is not None:
        kind = f"{kind} <= {_number(high)}"
    return name, kind, None


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _literal_values(annotation: Any) -> list[str]:
    if get_origin(annotation) is Literal:
        return [str(value) for value in get_args(annotation)]
    return [value for arg in get_args(annotation) for value in _literal_values(arg)]


def _has_type(annotation: Any, type_: type) -> bool:
    return annotation is type_ or any(_has_type(arg, type_) for arg in get_args(annotation))


def handle_store_down(request: Request, exc: Exception) -> Response:
    STORE.down(exc, "serving requests")  # one line per outage, not one per request
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
