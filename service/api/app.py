"""The application factory: nothing opens a socket at import."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.plugins.prometheus import PrometheusConfig

from service.access import Access
from service.api.auth import AccessMiddleware
from service.api.catalog import CatalogController
from service.api.coinglass import CoinglassController
from service.api.errors import EXCEPTION_HANDLERS
from service.api.health import MetricsController, health, ready
from service.api.heatmaps import HeatmapController
from service.connection import open_redis
from service.migrate import migrate
from service.pipeline import Pipeline
from service.scheduler import create_scheduler
from service.settings import Settings
from service.sources.base import MarketSource
from service.store import Store

log = logging.getLogger(__name__)

# Request metrics, grouped by route template so ids in paths do not explode cardinality.
PROMETHEUS = PrometheusConfig(app_name="liqmap", prefix="liqmap", group_path=True, exclude=["/metrics"])


def create_app(settings: Settings, sources: list[MarketSource] | None = None) -> Litestar:
    """Build the API. With ``sources``, this process also runs the scheduler that collects them."""

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        async with open_redis(settings) as redis:
            await migrate(redis)
            store = Store(redis)
            app.state.store = store
            app.state.access = Access(redis)
            scheduler = None
            if sources:
                pipeline = Pipeline(store, settings, list(sources))
                scheduler = create_scheduler(pipeline, settings.collect_interval_s, settings.job_timeout_s)
                scheduler.start()
            try:
                yield
            finally:
                if scheduler is not None:
                    scheduler.shutdown(wait=False)

    def provide_store(state: State) -> Store:
        return state.store

    def provide_settings() -> Settings:
        return settings

    return Litestar(
        route_handlers=[HeatmapController, CatalogController, CoinglassController, health, ready, MetricsController],
        middleware=[PROMETHEUS.middleware, AccessMiddleware(settings)],
        lifespan=[lifespan],
        dependencies={"store": Provide(provide_store, sync_to_thread=False), "settings": Provide(provide_settings, sync_to_thread=False)},
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        openapi_config=OpenAPIConfig(
            title="liqmap",
            version="0.1.0",
            description="Liquidation heatmaps for crypto perpetual futures: native v1 routes and a Coinglass-compatible surface.",
        ),
        debug=False,
    )
