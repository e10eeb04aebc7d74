"""What an API process keeps of the frames it served: the newest generation, not every one."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from service.collect.round import Collection
from service.collect.synthetic import SyntheticMarket
from service.compute.ondemand import FrameService
from service.settings import Settings
from service.store.writer import Store
from tests.integration.conftest import NOW_MS, in_process

pytestmark = pytest.mark.integration

MINUTE = 60_000
BASE = "/v1/heatmaps/synthetic/BTCUSDT"


async def until(condition, what: str, timeout_s: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, what
        await asyncio.sleep(0.02)


async def test_a_served_newest_frame_is_forgotten_once_a_newer_one_is_announced(redis: Redis, redis_url: str) -> None:
    settings = Settings(redis_url=redis_url, ranges=("12h", "24h"), backfill_days=1.0, frame_rows=60)
    collection = Collection.create(Store(redis), settings, [SyntheticMarket(seed=4, symbols={"BTCUSDT": 77_000.0})])
    await collection.collect_once(NOW_MS)
    async with in_process(settings) as client:
        frames: FrameService = client.app.state.ondemand
        listed = await client.get(f"{BASE}/frames", params={"range": "24h", "limit": 1})
        old_id = listed.json()["items"][0]["id"]
        for fmt in ("json", "msgpack"):
            for range_name in ("12h", "24h"):
                assert (await client.get(f"{BASE}/latest", params={"range": range_name, "format": fmt})).status_code == 200
        assert (await client.get(f"{BASE}/levels", params={"range": "24h"})).status_code == 200
        one_generation = frames.kept()
        assert one_generation >= 7  # 2 frames, 4 forms, the levels

        for minutes in (1, 2, 3):
            await collection.collect_once(NOW_MS + minutes * MINUTE)  # a new bar: newer frames announced
            await until(lambda: frames.kept() < one_generation, "the superseded frames forgotten")
            newest = await client.get(f"{BASE}/latest", params={"range": "24h"})
            assert newest.json()["id"] != old_id
            for fmt in ("json", "msgpack"):
                for range_name in ("12h", "24h"):
                    assert (await client.get(f"{BASE}/latest", params={"range": range_name, "format": fmt})).status_code == 200
            assert (await client.get(f"{BASE}/levels", params={"range": "24h"})).status_code == 200
            assert frames.kept() == one_generation  # the new generation in place of the old, not beside it

