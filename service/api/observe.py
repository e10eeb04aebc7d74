"""Request metrics, cheap enough for the hot path: one counter and one histogram per route."""

from __future__ import annotations

import time
from typing import Any

from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from service.metrics import REQUEST_SECONDS, REQUESTS


class RequestMetricsMiddleware(ASGIMiddleware):
    """Counts requests by method, route template and status, and times them by route template."""

    scopes = (ScopeType.HTTP,)

    def __init__(self) -> None:
        # Labelled children, looked up once: prometheus_client's label lookup is the slow part.
        self._counters: dict[tuple[str, str, int], Any] = {}
        self._timers: dict[str, Any] = {}

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        started = time.perf_counter()
        status = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await next_app(scope, receive, send_and_note)
        finally:
            path = scope.get("path_template") or "unmatched"
            key = (scope["method"], path, status)
            counter = self._counters.get(key)
            if counter is None:
                counter = self._counters[key] = REQUESTS.labels(*key)
            counter.inc()
            timer = self._timers.get(path)
            if timer is None:
                timer = self._timers[path] = REQUEST_SECONDS.labels(path)
            timer.observe(time.perf_counter() - started)
