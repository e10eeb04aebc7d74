"""Collect → store → recompute, against a real store."""

from __future__ import annotations

import numpy as np
import pytest
from redis.asyncio import Redis

from service.collect.round import Collection
from service.settings import Settings
from service.collect.source import Batch
from service.collect.synthetic import SyntheticMarket
from service.store.writer import Store

pytestmark = pytest.mark.integration

NOW_MS = 1_780_000_000_000
MINUTE = 60_000


def settings(redis_url: str) -> Settings:
    return Settings(redis_url=redis_url, ranges=("12h", "24h"), backfill_days=1.0, frame_rows=120)


async def test_rounds_store_new_bars_and_recompute_only_changed_markets(redis: Redis, redis_url: str) -> None:
    store = Store(redis)
    source = SyntheticMarket(seed=11, symbols={"BTCUSDT": 77_000.0, "ETHUSDT": 3_000.0})
    pipeline = Collection.create(store, settings(redis_url), [source])

    assert sorted(await pipeline.collect_once(NOW_MS)) == [("synthetic", "BTCUSDT"), ("synthetic", "ETHUSDT")]
    bars = len(await store.read_candles("synthetic", "BTCUSDT"))
    assert bars == pytest.approx(24 * 60, abs=2)
    first = await store.latest_packed("synthetic", "BTCUSDT", "model1", "24h")

    # Same instant again: nothing new, nothing recomputed.
    assert await pipeline.collect_once(NOW_MS) == []
    assert len(await store.read_candles("synthetic", "BTCUSDT")) == bars

    # Ten minutes later (two columns of the 24h range on): ten more bars and a newer frame.
    assert len(await pipeline.collect_once(NOW_MS + 10 * MINUTE)) == 2
    assert len(await store.read_candles("synthetic", "BTCUSDT")) == bars + 10
    second = await store.latest_packed("synthetic", "BTCUSDT", "model1", "24h")
    assert first is not None and second is not None and second[0] != first[0]
    assert await store.frame_ids("synthetic", "BTCUSDT", "model1", "24h") == [second[0], first[0]]
    meta = await store.market_meta("synthetic", "BTCUSDT")
    assert int(meta["data_until_ms"]) <= NOW_MS + 10 * MINUTE


async def test_a_restarted_process_backfills_only_what_is_missing(redis: Redis, redis_url: str) -> None:
    store = Store(redis)
    await Collection.create(store, settings(redis_url), [SyntheticMarket(seed=5, symbols={"BTCUSDT": 77_000.0})]).collect_once(NOW_MS)
    before = await store.read_candles("synthetic", "BTCUSDT")

    restarted = Collection.create(store, settings(redis_url), [SyntheticMarket(seed=5, symbols={"BTCUSDT": 77_000.0})])
    await restarted.collect_once(NOW_MS + 10 * MINUTE)
    after = await store.read_candles("synthetic", "BTCUSDT")
    assert len(after) == len(before) + 10
    np.testing.assert_array_equal(after[: len(before)], before)


class BrokenSymbolSource(SyntheticMarket):
    """A source whose one symbol always fails, as a venue with a bad payload would."""

    async def backfill(self, symbol: str, start_ms: int, end_ms: int) -> Batch:
        if symbol == "ETHUSDT":
            raise ValueError("malformed payload")
        return await super().backfill(symbol, start_ms, end_ms)


async def test_one_failing_market_does_not_stop_the_others(redis: Redis, redis_url: str) -> None:
    store = Store(redis)
    source = BrokenSymbolSource(seed=2, symbols={"ETHUSDT": 3_000.0, "BTCUSDT": 77_000.0})
    changed = await Collection.create(store, settings(redis_url), [source]).collect_once(NOW_MS)
    assert changed == [("synthetic", "BTCUSDT")]
    assert await store.latest_packed("synthetic", "BTCUSDT", "model1", "12h") is not None
    assert await store.latest_packed("synthetic", "ETHUSDT", "model1", "12h") is None
    assert (await store.read_candles("synthetic", "ETHUSDT")).size == 0
