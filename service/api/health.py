"""Operations routes: liveness, readiness, metrics."""

from __future__ import annotations

from litestar import Response, get
from litestar.di import NamedDependency
from litestar.plugins.prometheus import PrometheusController

from service.clock import Clock
from service.wire.schemas import Health, Readiness
from service.settings import Settings
from service.store.reader import StoreReader


@get("/health", operation_id="health", tags=["operations"])
async def health(store: NamedDependency[StoreReader]) -> Health:
    """The process is up and can reach its store."""
    await store.ping()
    return Health(status="ok", store="reachable", schema_version=await store.schema_version())


@get("/ready", operation_id="ready", tags=["operations"])
async def ready(store: NamedDependency[StoreReader], settings: NamedDependency[Settings], clock: NamedDependency[Clock]) -> Response[Readiness]:
    """Ready to serve: the store answers and every market's frames are fresh (503 otherwise)."""
    now_ms = clock()
    problems: list[str] = []
    markets = await store.markets()
    if not markets:
        problems.append("no market has data yet")
    for (exchange, symbol), meta in zip(markets, await store.market_metas(markets)):
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
