"""Operations routes: liveness, readiness, metrics."""

from __future__ import annotations

import asyncio

from litestar import Response, get
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.plugins.prometheus import PrometheusController
from redis.exceptions import RedisError

from service.clock import Clock
from service.wire.schemas import Health, Readiness
from service.settings import Settings
from service.store.reader import StoreReader


# How long the probes wait for the store before saying it is unreachable, seconds.
STORE_PROBE_TIMEOUT_S = 1.0


@get("/health", operation_id="health", tags=["operations"])
async def health(store: NamedDependency[StoreReader]) -> Health:
    """Liveness: 200 while the process serves, whatever its store does (``store`` says whether it answers).

    An orchestrator restarts a process whose liveness fails; a store outage is no reason to, so it
    is reported here but answered 200. Whether to send traffic is ``/ready``'s question.
    """
    try:
        async with asyncio.timeout(STORE_PROBE_TIMEOUT_S):
            await store.ping()
            version = await store.schema_version()
    except (RedisError, OSError, TimeoutError):
        return Health(status="ok", store="unreachable", schema_version=None)
    return Health(status="ok", store="reachable", schema_version=version)


@get("/ready", operation_id="ready", tags=["operations"], responses={503: ResponseSpec(data_container=Readiness, description="Not ready: `problems` says why")})
async def ready(store: NamedDependency[StoreReader], settings: NamedDependency[Settings], clock: NamedDependency[Clock]) -> Response[Readiness]:
    """Readiness: the store answers and every market's frames are fresh (503 otherwise, saying why)."""
    now_ms = clock()
    problems: list[str] = []
    try:
        async with asyncio.timeout(STORE_PROBE_TIMEOUT_S):
            markets = await store.markets()
            metas = await store.market_metas(markets)
    except (RedisError, OSError, TimeoutError):
        return Response(Readiness(status="not_ready", markets=0, problems=["the data store is unreachable"]), status_code=503)
    if not markets:
        problems.append("no market has data yet")
    for (exchange, symbol), meta in zip(markets, metas):
        updated = int(meta.get("last_update_ms", 0))
        age_s = (now_ms - updated) / 1000
        if age_s > settings.ready_max_age_s:
            problems.append(f"{exchange}:{symbol} frames are {age_s:.0f} s old (limit {settings.ready_max_age_s:.0f} s)")
    status = "ready" if not problems else "not_ready"
    return Response(Readiness(status=status, markets=len(markets), problems=problems), status_code=200 if not problems else 503)


class MetricsController(PrometheusController):
    """Prometheus metrics of this process."""

    path = "/metrics"
    tags = ["operations"]
    include_in_schema = False
