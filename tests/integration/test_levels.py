"""Leverage-filtered frames and /levels: built on demand from the newest frame's data."""

from __future__ import annotations

import numpy as np
import pytest
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from service.collect.round import Collection
from service.store import tiers
from service.settings import Settings
from service.collect.synthetic import SyntheticMarket
from service.store.writer import Store
from tests.integration.conftest import NOW_MS, in_process

pytestmark = pytest.mark.integration

BASE = "/v1/heatmaps/synthetic/BTCUSDT"


@pytest.fixture
async def seeded(redis: Redis, redis_url: str) -> Settings:
    settings = Settings(redis_url=redis_url, ranges=("12h", "24h"), backfill_days=1.0, frame_rows=120)
    await Collection.create(Store(redis), settings, [SyntheticMarket(seed=12, symbols={"BTCUSDT": 77_000.0})]).collect_once(NOW_MS)
    return settings


async def test_leverage_groups_split_the_full_frame(client: AsyncTestClient) -> None:
    full = (await client.get(f"{BASE}/latest", params={"range": "24h"})).json()
    parts = [(await client.get(f"{BASE}/latest", params={"range": "24h", "leverage": group})).json() for group in ("low", "mid", "high")]
    assert [p["leverage"] for p in parts] == ["low", "mid", "high"]
    assert all(p["id"] != full["id"] and p["id"].startswith(full["id"]) for p in parts)
    assert set().union(*(p["tiers"] for p in parts)) == set(full["tiers"])
    for side in ("long", "short"):
        summed = sum(np.array(p[side], dtype=float) for p in parts)
        # Cells are whole dollars: each part rounds on its own.
        np.testing.assert_allclose(summed, np.array(full[side], dtype=float), atol=2.0)
    high = parts[2]
    assert high["tiers"] and all(t >= 50 for t in high["tiers"])
    subset = (await client.get(f"{BASE}/latest", params={"range": "24h", "leverage": "25,50"})).json()
    assert subset["tiers"] == [25.0, 50.0]


async def test_bad_leverage_is_400_naming_what_is_allowed(client: AsyncTestClient) -> None:
    for value in ("huge", "7"):
        response = await client.get(f"{BASE}/latest", params={"leverage": value})
        assert response.status_code == 400
        assert "allowed: all, low, mid, high" in response.json()["error"]["message"]


async def test_levels_give_clusters_on_each_side_a_map_by_tier_and_max_pain(client: AsyncTestClient) -> None:
    frame = (await client.get(f"{BASE}/latest", params={"range": "24h"})).json()
    levels = (await client.get(f"{BASE}/levels", params={"range": "24h"})).json()
    assert levels["frame_id"] == frame["id"] and levels["data_until"] == frame["data_until"]
    price = levels["price"]
    above, below = levels["clusters"]["above"], levels["clusters"]["below"]
    assert above and below
    assert all(band["side"] == "short" and band["price_high"] > price for band in above)
    assert all(band["side"] == "long" and band["price_high"] < price * 1.001 for band in below)
    book = levels["map"]
    y = np.array(book["y"])
    long_by_row = sum(np.array(t["long"], dtype=float) for t in book["tiers"])
    # The map's book is the frame's last column, split by tier.
    np.testing.assert_allclose(y, frame["y"])
    np.testing.assert_allclose(long_by_row, np.array(frame["long"][-1], dtype=float), atol=len(book["tiers"]) + 1)
    assert levels["max_pain"]["long"]["price"] == pytest.approx(y[int(np.argmax(long_by_row))])
    assert levels["max_pain"]["long"]["price"] < price < levels["max_pain"]["short"]["price"]
    high = (await client.get(f"{BASE}/levels", params={"range": "24h", "leverage": "high"})).json()
    assert high["leverage"] == "high" and high["map"]["tiers"] and all(t["leverage"] >= 50 for t in high["map"]["tiers"])


async def test_leverage_and_levels_on_an_all_market(redis: Redis, redis_url: str) -> None:
    settings = Settings(redis_url=redis_url, ranges=("12h",), backfill_days=0.5, frame_rows=80, aggregate=True, models=("model1",))
    venues = [SyntheticMarket(seed=seed, symbols={"BTCUSDT": 77_000.0}, exchange=name) for seed, name in ((1, "binance"), (2, "okx"))]
    await Collection.create(Store(redis), settings, venues).collect_once(NOW_MS)
    async with in_process(settings) as client:
        full = (await client.get("/v1/heatmaps/all/BTC/latest", params={"range": "12h"})).json()
        assert set(full["sources"]) == {"binance", "okx"}
        high = (await client.get("/v1/heatmaps/all/BTC/latest", params={"range": "12h", "leverage": "high"})).json()
        assert high["id"] == full["id"] + "-high" and set(high["sources"]) == {"binance", "okx"}
        assert 0 < np.sum(high["long"]) < np.sum(full["long"])
        levels = (await client.get("/v1/heatmaps/all/BTC/levels", params={"range": "12h"})).json()
        assert levels["frame_id"] == full["id"] and levels["max_pain"]["long"]["price"] < levels["price"]


async def test_filtered_frames_and_levels_of_model4_use_the_markets_own_margin_tiers(redis: Redis, redis_url: str) -> None:
    settings = Settings(redis_url=redis_url, ranges=("12h",), models=("model4",), backfill_days=0.5, frame_rows=120)
    store = Store(redis)
    # The market's venue published its own tiers (as a collector stores them).
    own = tiers.from_caps([(50_000.0, 0.02, 20.0), (1e7, 0.05, 10.0)])
    await store.add_market("synthetic", "BTCUSDT")
    await store.set_market_meta("synthetic", "BTCUSDT", **{tiers.META_FIELD: tiers.encode(own), tiers.META_SOURCE_FIELD: "synthetic tiers"})
    await Collection.create(store, settings, [SyntheticMarket(seed=12, symbols={"BTCUSDT": 77_000.0})]).collect_once(NOW_MS)
    async with in_process(settings) as client:
        params = {"model": "model4", "range": "12h"}
        stored = (await client.get(f"{BASE}/latest", params=params)).json()
        filtered = (await client.get(f"{BASE}/latest", params={**params, "leverage": "high"})).json()
        expected = {"source": "synthetic tiers", "brackets": [[50_000.0, 0.02, 20.0], [1e7, 0.05, 10.0]]}
        assert stored["margin_table"] == filtered["margin_table"] == expected
        # The per-tier map is the stored frame's last column, split by tier: the same table placed it.
        levels = (await client.get(f"{BASE}/levels", params=params)).json()
        by_row = np.sum([tier["long"] for tier in levels["map"]["tiers"]], axis=0)
        np.testing.assert_allclose(by_row, np.array(stored["long"][-1], dtype=float), atol=len(levels["map"]["tiers"]))
