"""The application factory: nothing opens a socket at import."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig

from service.store.access import Access
from service.api.auth import AccessMiddleware
from service.api.catalog import CatalogController
from service.api.coinglass.futures import CoinglassFuturesController
from service.api.coinglass.liquidation import CoinglassController, CoinglassMarketsController
from service.api.coinglass.stream import liquidation_stream
from service.api.docs import docs_assets_router, docs_render_plugins
from service.api.errors import EXCEPTION_HANDLERS
from service.api.feed import LiquidationFeed
from service.api.newest import LatestFrames
from service.api.health import MetricsController, health, ready
from service.api.heatmaps import HeatmapController
from service.api.images import HeatmapImageController, RenderCache
from service.api.liquidations import LiquidationsController
from service.api.observe import RequestMetricsMiddleware
from service.api.semantics import ApiApp
from service.api.open_interest import OpenInterestController
from service.api.viewer import viewer_routes
from service.store.client import open_redis
from service.store.migrate import migrate
from service.clock import Clock, now_ms
from service.compute.ondemand import FrameService
from service.compute.pool import EnginePool
from service.settings import Settings
from service.store.reader import StoreReader

log = logging.getLogger(__name__)

# How long shutdown waits for the store followers (frame announcements, feed, key changes) to end, seconds.
FOLLOWERS_STOP_S = 2.0


API_DESCRIPTION = """Liquidation heatmaps for crypto perpetual futures.

* **Native v1** (`/v1/...`): newest frame with ETag polling, msgpack, history by model
  version, frames by id, server-sent events, markets and models with their scores.
* **Coinglass-compatible** (`/api/futures/...`): same paths, parameters and shapes as
  Coinglass's v4 API for liquidations and the market data around them (open interest,
  funding, price, taker volume, account ratios); existing clients work by changing only
  the base URL.
  Its liquidation websocket is at `/ws-api?cg-api-key=KEY` (not listed below: OpenAPI
  describes HTTP only): text `ping` → `pong`, `{"method":"subscribe","channels":["liquidationOrders"]}`,
  then `{"channel":"liquidationOrders","data":[{"baseAsset","exName","price","side","symbol","time","volUsd"}]}`
  as events are collected (`side` 1 = long liquidated, 2 = short).

Authentication: an API key in `X-API-Key` (or `CG-API-KEY`); anonymous access when the
operator allows it. Every response of a data route carries `API-KEY-MAX-LIMIT` and
`API-KEY-USE-LIMIT`; over the limit the answer is 429 with `Retry-After`.
Errors carry the real HTTP status: `{"error": {...}}` on v1, the Coinglass envelope with
`code` set to the status on compatible routes.
"""


def create_app(settings: Settings, *, warm_engine: bool = False, clock: Clock = now_ms) -> Litestar:
    """Build the API. ``warm_engine``: start the engine pool at once (servers; tests start it when first used);
    ``clock``: what "now" is to routes whose windows end now (tests pin it).
    """

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        async with open_redis(settings) as redis:
            await migrate(redis)
            store = StoreReader(redis)
            app.state.store = store
            app.state.settings = settings
            app.state.access = Access(redis)
            pool = EnginePool(settings.api_engine_processes, settings.engine_nice)
            if warm_engine:
                pool.warm()
            app.state.ondemand = FrameService(store, settings, pool)
            app.state.frames = LatestFrames(store, app.state.ondemand)
            app.state.renders = RenderCache()
            app.state.liquidation_feed = LiquidationFeed(store)
            followers = [
                asyncio.create_task(app.state.frames.listen(), name="frame-announcements"),
                asyncio.create_task(app.state.liquidation_feed.follow(), name="liquidation-feed"),
                asyncio.create_task(app.state.access.hear_changes(store.frame_announcements), name="api-key-changes"),
            ]
            try:
                yield
            finally:
                app.state.access.stop_hearing()
                app.state.frames.stop()
                app.state.liquidation_feed.stop()
                for follower in followers:
                    follower.cancel()
                # Bounded: a store client can swallow a cancellation that lands while it reads.
                _, stuck = await asyncio.wait(followers, timeout=FOLLOWERS_STOP_S)
                for follower in stuck:
                    log.warning("%s did not stop within %.0f s of shutdown; left behind", follower.get_name(), FOLLOWERS_STOP_S)
                await asyncio.to_thread(pool.close)
                await store.close_listeners()

    def provide_store(state: State) -> StoreReader:
        return state.store

    def provide_settings() -> Settings:
        return settings

    def provide_clock() -> Clock:
        return clock

    def provide_frame_service(state: State) -> FrameService:
        return state.ondemand

    return ApiApp(
        route_handlers=[HeatmapController, HeatmapImageController, LiquidationsController, OpenInterestController, CatalogController, CoinglassController, CoinglassMarketsController, CoinglassFuturesController, liquidation_stream, health, ready, MetricsController, *viewer_routes(), docs_assets_router()],
        middleware=[RequestMetricsMiddleware(), AccessMiddleware(settings)],
        lifespan=[lifespan],
        dependencies={
            "store": Provide(provide_store, sync_to_thread=False),
            "settings": Provide(provide_settings, sync_to_thread=False),
            "clock": Provide(provide_clock, sync_to_thread=False),
            "frame_service": Provide(provide_frame_service, sync_to_thread=False),
        },
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        openapi_config=OpenAPIConfig(
            title="liqmap",
            version="0.1.0",
            description=API_DESCRIPTION,
            path="/docs",
            render_plugins=docs_render_plugins(),
            use_handler_docstrings=True,
        ),
        debug=False,
    )
