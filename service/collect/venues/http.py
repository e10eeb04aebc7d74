"""One venue's REST client: budgets, timeouts, and honouring the venue's requests to slow down."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp

from service.clock import Clock, now_ms
from service.collect.venues.budget import RequestBudget
from service.collect.venues.errors import BadPayload, RateLimited, VenueRejected, VenueUnavailable

log = logging.getLogger(__name__)

# Waits when a venue sends no Retry-After, seconds.
DEFAULT_BACKOFF_S = {429: 30.0, 418: 120.0, 403: 60.0}
_MAX_BODY_SNIPPET = 160


@dataclass(frozen=True, slots=True)
class HttpPolicy:
    """How politely to call one venue.

    Attributes
    ----------
    timeout_s : float
        Bound on one call, connect to last byte.
    forbidden_backoff_s : float
        Pause after an HTTP 403 without Retry-After (Bybit: its rate limit, ≥ 10 min; Binance: its firewall).
    """

    timeout_s: float = 10.0
    forbidden_backoff_s: float = 60.0


def retry_after_s(headers: Mapping[str, str], default_s: float) -> float:
    """Seconds a ``Retry-After`` header asks for (delay form), else ``default_s``."""
    value = headers.get("Retry-After")
    if value is None:
        return default_s
    try:
        return max(0.0, float(value))
    except ValueError:
        return default_s


class VenueHttp:
    """GET/POST against one venue's base URL; returns raw bodies of successful calls.

    Every call waits for the venue's :class:`RequestBudget`, runs under a timeout, and
    never happens while the venue has asked us to back off (``RateLimited`` is raised
    at once instead, so a scheduled round never sits out a ban).
    """

    def __init__(self, venue: str, base_url: str, budget: RequestBudget, policy: HttpPolicy, clock: Clock = now_ms) -> None:
        self.venue = venue
        self.base_url = base_url.rstrip("/")
        self.budget = budget
        self.policy = policy
        self.clock = clock
        self.blocked_until_ms = 0  # on ``clock``
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.policy.timeout_s),
                headers={"User-Agent": "liqmap/0.1", "Accept": "application/json"},
            )
        return self._session

    def session(self) -> aiohttp.ClientSession:
        """The shared client session (also used for the venue's WebSocket)."""
        return self._client()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def block(self, endpoint: str, seconds: float, reason: str) -> RateLimited:
        """Stop calling the venue for ``seconds``; returns the error to raise."""
        until = self.clock() + round(seconds * 1000)
        self.blocked_until_ms = max(self.blocked_until_ms, until)
        log.warning("%s %s: %s; pausing calls for %.0f s", self.venue, endpoint, reason, seconds)
        return RateLimited(self.venue, endpoint, reason, self.blocked_until_ms)

    def blocked_for_s(self) -> float:
        return max(0.0, (self.blocked_until_ms - self.clock()) / 1000)

    async def get(self, endpoint: str, params: Mapping[str, str | int] | None = None, *, weight: float = 1.0) -> bytes:
        return await self._call("GET", endpoint, params=params, weight=weight)

    async def post_json(self, endpoint: str, body: bytes, *, url: str | None = None, weight: float = 1.0) -> bytes:
        return await self._call("POST", endpoint, data=body, url=url, weight=weight)

    async def _call(
        self,
        method: str,
        endpoint: str,
        *,
        params: Mapping[str, str | int] | None = None,
        data: bytes | None = None,
        url: str | None = None,
        weight: float = 1.0,
    ) -> bytes:
        wait = self.blocked_for_s()
        if wait > 0:
            raise RateLimited(self.venue, endpoint, f"backing off for {wait:.0f} s more", self.blocked_until_ms)
        await self.budget.acquire(endpoint, weight)
        target = (url.rstrip("/") if url else self.base_url) + endpoint
        headers = {"Content-Type": "application/json"} if data is not None else None
        try:
            async with self._client().request(method, target, params=params, data=data, headers=headers) as response:
                body = await response.read()
                status = response.status
                response_headers = response.headers
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise VenueUnavailable(self.venue, endpoint, f"{type(exc).__name__}: {exc}") from exc
        if status in (429, 418):
            raise self.block(endpoint, retry_after_s(response_headers, DEFAULT_BACKOFF_S[status]), f"HTTP {status}")
        if status == 403:
            raise self.block(endpoint, retry_after_s(response_headers, self.policy.forbidden_backoff_s), "HTTP 403")
        if status >= 500:
            raise VenueUnavailable(self.venue, endpoint, f"HTTP {status}: {_snippet(body)}")
        if status >= 400:
            raise VenueRejected(self.venue, endpoint, f"HTTP {status}: {_snippet(body)}")
        if body.lstrip()[:1] == b"<":
            raise BadPayload(self.venue, endpoint, f"an HTML page instead of JSON: {_snippet(body.lstrip())}")
        return body


def _snippet(body: bytes) -> str:
    return body[:_MAX_BODY_SNIPPET].decode("utf-8", "replace").replace("\n", " ")
