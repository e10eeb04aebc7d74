"""History is records, frames are built again on request: the same bytes for the same id, as long as it is listed."""

from __future__ import annotations

import numpy as np
import pytest
from redis.asyncio import Redis

from engine.ranges import RANGES
from service.collect.round import Collection
from service.collect.source import Batch
from service.collect.synthetic import SyntheticMarket
from service.settings import Settings
from service.store.writer import Store
from tests.integration.conftest import in_process

pytestmark = pytest.mark.integration

MINUTE = 60_000
NOW_MS = 1_780_000_000_000 - 1_780_000_000_000 % (2 * 3_600_000) + 7 * MINUTE  # just past a 2h column's end
BASE = "/v1/heatmaps/synthetic/BTCUSDT"


def settings(redis_url: str) -> Settings:
    # One engine process: frames built on request go through the real pool.
    return Settings(redis_url=redis_url, ranges=("24h", "7d", "30d"), backfill_days=2.0, frame_rows=60, api_engine_processes=1)


async def test_a_frame_of_history_is_built_again_to_the_bytes_it_was_served_with(redis: Redis, redis_url: str) -> None:
    collection = Collection.create(Store(redis), settings(redis_url), [SyntheticMarket(seed=21, symbols={"BTCUSDT": 64_000.0})])
    await collection.collect_once(NOW_MS)
    async with in_process(collection.settings) as client:
        first = await client.get(f"{BASE}/latest", params={"range": "24h"})
        first_msgpack = await client.get(f"{BASE}/latest", params={"range": "24h", "format": "msgpack"})
        long_range = await client.get(f"{BASE}/latest", params={"range": "30d"})
        week = await client.get(f"{BASE}/latest", params={"range": "7d", "model": "model3"})
    await collection.collect_once(NOW_MS + 11 * MINUTE)
    async with in_process(collection.settings) as client:  # a new process would know nothing either
        newer = (await client.get(f"{BASE}/latest", params={"range": "24h"})).json()
        assert newer["id"] != first.json()["id"]
        again = await client.get(f"{BASE}/frames/{first.json()['id']}")
        again_msgpack = await client.get(f"{BASE}/frames/{first.json()['id']}", params={"format": "msgpack"})
        long_again = await client.get(f"{BASE}/frames/{long_range.json()['id']}")
        listed = (await client.get(f"{BASE}/frames", params={"range": "30d"})).json()["items"]
    assert first.status_code == again.status_code == 200
    assert again.content == first.content and again_msgpack.content == first_msgpack.content
    # Long ranges: built on request at the end of their newest column, from roll-ups.
    frame = long_range.json()
    assert long_range.status_code == 200 and frame["data_until"] % RANGES["30d"].column_ms == 0
    assert np.asarray(frame["long"]).sum() > 0 and frame["coverage_start"] < frame["data_until"] - 47 * 3_600_000
    assert long_again.content == long_range.content
    assert [item["id"] for item in listed] == [frame["id"]]
    assert week.status_code == 200 and week.json()["data_until"] % RANGES["7d"].column_ms == 0


async def test_a_bar_filled_in_late_drops_the_frames_built_without_it(redis: Redis, redis_url: str) -> None:
    store = Store(redis)
    collection = Collection.create(store, settings(redis_url), [SyntheticMarket(seed=22, symbols={"BTCUSDT": 64_000.0})])
    for minutes in (0, 6, 12):
        await collection.collect_once(NOW_MS + minutes * MINUTE)
    ids = await store.frame_ids("synthetic", "BTCUSDT", "model1", "24h")
    before = await store.records("synthetic", "BTCUSDT", "model1", "24h", ids)
    assert len(ids) == 3 and all(before)
    # A bar between the second and third frames' ends arrives again, changed (a venue's correction).
    bars = await store.read_candles("synthetic", "BTCUSDT", NOW_MS + 8 * MINUTE, NOW_MS + 9 * MINUTE)
    assert len(bars) == 1
    bars["high"] *= 1.02  # a new high of the window: the price grid changes
    await collection.store_batch("synthetic", "BTCUSDT", Batch(candles=bars))
    assert int((await store.market_meta("synthetic", "BTCUSDT"))["revised_from_ms"]) == int(bars["ts_ms"][0])
    await collection.refresher.refresh("synthetic", "BTCUSDT", NOW_MS + 12 * MINUTE)
    after = await store.records("synthetic", "BTCUSDT", "model1", "24h", await store.frame_ids("synthetic", "BTCUSDT", "model1", "24h"))
    # The two frames that end before the bar are kept as they were; the newest was built again,
    # from the corrected bar: same id, other bytes.
    assert [r.id for r in after] == ids
    assert after[1:] == before[1:]
    assert after[0].digest != before[0].digest
    assert "revised_from_ms" not in await store.market_meta("synthetic", "BTCUSDT")
