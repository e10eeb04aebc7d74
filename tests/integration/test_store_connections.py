"""How many connections an API process opens to the store: its commands share a bounded pool
(LIQMAP_REDIS_MAX_CONNECTIONS), whatever the number of requests at once; each live event
stream listens on a connection of its own, so streams never starve the commands."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

import httpx
import msgspec
import pytest
from redis.asyncio import Redis

from service.collect.round import Collection
from service.settings import Settings
from tests.integration.conftest import served
from tests.integration.test_api_v1 import _subscribed

pytestmark = pytest.mark.integration

BOUND = 4
LISTENERS = 2  # newest-frame announcements and key changes, each on its own connection
STREAMS = 6  # more than the commands' bound
PATHS = [
    "/v1/heatmaps/synthetic/BTCUSDT/latest?range=24h",
    "/v1/heatmaps/synthetic/BTCUSDT/frames?range=12h&limit=5",
    "/v1/liquidations/synthetic/BTCUSDT?interval=5m",
    "/api/futures/liquidation/heatmap/model1?exchange=synthetic&symbol=BTCUSDT&range=24h",
    "/v1/markets",
]


async def connections(redis: Redis) -> int:
    """Clients on this test's database (other test processes may share the server, on other
    databases), this test's own connection apart."""
    db = redis.connection_pool.connection_kwargs.get("db", 0)
    return sum(1 for client in await redis.client_list() if int(client["db"]) == db) - 1


def test_settings_refuse_a_bound_too_small_to_work() -> None:
    with pytest.raises(ValueError, match="redis_max_connections must be at least 4"):
        Settings(redis_max_connections=2)


async def test_requests_at_once_share_a_bounded_pool_and_event_streams_do_not_take_from_it(seeded: Settings, redis: Redis, pipeline: Collection) -> None:
    before = await connections(redis)
    settings = msgspec.structs.replace(seeded, redis_max_connections=BOUND)
    with served(settings) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http, AsyncExitStack() as streams:
            peak = 0
            done = False

            async def watch() -> None:
                nonlocal peak
                while not done:
                    peak = max(peak, await connections(redis) - before)
                    await asyncio.sleep(0.005)

            watcher = asyncio.create_task(watch())
            answers = await asyncio.gather(*(http.get(PATHS[i % len(PATHS)]) for i in range(80)))
            assert [a.status_code for a in answers] == [200] * 80
            busy = peak
            assert 1 <= busy <= BOUND + LISTENERS, busy  # 80 requests at once, at most the bound (and the listeners)

            # More event streams than the bound, each subscribed: the commands still answer.
            for _ in range(STREAMS):
                response = await streams.enter_async_context(http.stream("GET", "/v1/heatmaps/synthetic/BTCUSDT/stream", params={"range": "24h"}))
                await asyncio.wait_for(_subscribed(response.aiter_lines()), 10)
            answers = await asyncio.gather(*(http.get(PATHS[i % len(PATHS)]) for i in range(40)))
            assert [a.status_code for a in answers] == [200] * 40
            done = True
            await watcher
            assert peak <= BOUND + LISTENERS + STREAMS, peak
