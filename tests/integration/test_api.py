"""The API against a real store holding frames computed from the synthetic market."""

from __future__ import annotations

import msgspec
import numpy as np
import pytest
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from engine.ranges import RANGES
from service.collect.round import Collection
from service.settings import Settings
from service.collect.synthetic import SyntheticMarket
from service.store.writer import Store
from tests.conftest import latest_field
from service.store.rows import CANDLE_DTYPE
from tests.integration.conftest import NOW_MS, in_process

pytestmark = pytest.mark.integration

RANGES_UNDER_TEST = ("12h", "24h", "3d")


@pytest.fixture
async def seeded(redis: Redis, redis_url: str) -> Settings:
    settings = Settings(redis_url=redis_url, ranges=RANGES_UNDER_TEST, backfill_days=1.0, frame_rows=200)
    source = SyntheticMarket(seed=3, symbols={"BTCUSDT": 77_000.0})
    changed = await Collection.create(Store(redis), settings, [source]).collect_once(NOW_MS)
    assert changed == [("synthetic", "BTCUSDT")]
    return settings


async def test_native_latest_frame_shape(client: AsyncTestClient) -> None:
    response = await client.get("/v1/heatmaps/synthetic/BTCUSDT/latest", params={"model": "model1", "range": "24h"})
    assert response.status_code == 200, response.text
    frame = response.json()
    spec = RANGES["24h"]
    assert frame["model"] == "model1" and frame["range"] == "24h"
    assert len(frame["x"]) == spec.columns
    assert np.all(np.diff(frame["x"]) == spec.column_ms)
    assert len(frame["y"]) == 200 and np.all(np.diff(frame["y"]) > 0)
    long = np.array(frame["long"], dtype=float)
    short = np.array(frame["short"], dtype=float)
    assert long.shape == short.shape == (spec.columns, 200)
    assert long.sum() > 0 and short.sum() > 0
    assert frame["data_until"] <= NOW_MS
    assert frame["stats"]["max_cell_usd"] >= long.max() - 1


async def test_longs_sit_below_price_and_shorts_above(client: AsyncTestClient) -> None:
    frame = (await client.get("/v1/heatmaps/synthetic/BTCUSDT/latest", params={"range": "12h"})).json()
    y = np.array(frame["y"])
    last_close = [c for c in frame["candles"] if c[4] is not None][-1][4]
    long_last = np.array(frame["long"][-1], dtype=float)
    short_last = np.array(frame["short"][-1], dtype=float)
    assert long_last.sum() > 0 and short_last.sum() > 0
    assert long_last[y > last_close].sum() == 0
    assert short_last[y < last_close].sum() == 0


async def test_coinglass_heatmap_shape(client: AsyncTestClient) -> None:
    response = await client.get(
        "/api/futures/liquidation/heatmap/model1",
        params={"exchange": "Synthetic", "symbol": "BTCUSDT", "range": "24h"},
        headers={"CG-API-KEY": "anything"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["code"] == "0" and body["msg"] == "success"
    data = body["data"]
    y_axis, triplets, sticks = data["y_axis"], data["liquidation_leverage_data"], data["price_candlesticks"]
    assert len(y_axis) == 200 and 0 < len(sticks) <= RANGES["24h"].columns and len(triplets) > 0
    for x, y, usd in triplets:
        assert isinstance(x, int) and isinstance(y, int) and usd > 0
        assert 0 <= x < len(sticks) and 0 <= y < len(y_axis)
    for ts, *numbers in sticks:
        assert isinstance(ts, int) and ts < NOW_MS // 1000
        assert all(isinstance(n, str) for n in numbers) and len(numbers) == 5
        o, h, low, c, _ = map(float, numbers)
        assert low <= min(o, c) <= max(o, c) <= h


async def test_unknown_market_is_404_in_each_envelope(client: AsyncTestClient) -> None:
    response = await client.get("/v1/heatmaps/nowhere/BTCUSDT/latest")
    assert response.status_code == 404
    error = response.json()["error"]
    assert "nowhere" in error["message"] and "synthetic" in error["message"]

    response = await client.get("/v1/heatmaps/synthetic/DOGEUSDT/latest")
    assert response.status_code == 404
    assert "BTCUSDT" in response.json()["error"]["allowed"]

    response = await client.get("/api/futures/liquidation/heatmap/model1", params={"exchange": "synthetic", "symbol": "NOPE", "range": "24h"})
    assert response.status_code == 404
    assert response.json()["code"] == "404" and "NOPE" in response.json()["msg"]


@pytest.mark.parametrize(
    ("path", "params", "named"),
    [
        ("/v1/heatmaps/synthetic/BTCUSDT/latest", {"range": "2h"}, "12h, 24h, 3d"),
        ("/v1/heatmaps/synthetic/BTCUSDT/latest", {"model": "model9"}, "model1"),
        ("/api/futures/liquidation/heatmap/model1", {"exchange": "synthetic", "symbol": "BTCUSDT", "range": "5y"}, "12h, 24h, 3d"),
        ("/api/futures/liquidation/heatmap/model7", {"exchange": "synthetic", "symbol": "BTCUSDT", "range": "24h"}, "model1"),
        ("/api/futures/liquidation/heatmap/model1", {"exchange": "synthetic", "range": "24h"}, "symbol is required"),
    ],
)
async def test_bad_parameters_are_400_naming_allowed_values(client: AsyncTestClient, path: str, params: dict, named: str) -> None:
    response = await client.get(path, params=params)
    assert response.status_code == 400
    body = response.json()
    message = body["msg"] if path.startswith("/api/") else body["error"]["message"]
    if path.startswith("/api/"):
        assert body["code"] == "400" and body["data"] is None
    assert named in message


async def test_unknown_route_is_404_in_the_envelope(client: AsyncTestClient) -> None:
    response = await client.get("/api/futures/liquidation/nothing-here")
    assert response.status_code == 404
    assert response.json()["code"] == "404"


async def test_health_and_schema(client: AsyncTestClient) -> None:
    health = (await client.get("/health")).json()
    assert health["status"] == "ok" and health["schema_version"] >= 1
    schema = (await client.get("/docs/openapi.json")).json()
    assert "/v1/heatmaps/{exchange}/{symbol}/latest" in schema["paths"]
    assert "/api/futures/liquidation/heatmap/{model}" in schema["paths"]


async def test_frames_are_served_as_the_stored_bytes(client: AsyncTestClient, redis: Redis) -> None:
    stored = await latest_field(Store(redis), "synthetic", "BTCUSDT", "model1", "12h", "v1")
    response = await client.get("/v1/heatmaps/synthetic/BTCUSDT/latest", params={"range": "12h"})
    assert response.content == stored
    assert msgspec.json.decode(stored)["range"] == "12h"


async def test_a_known_market_without_frames_is_503_with_retry_after(client: AsyncTestClient, redis: Redis) -> None:
    await Store(redis).add_market("synthetic", "XRPUSDT")
    response = await client.get("/v1/heatmaps/synthetic/XRPUSDT/latest")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert "being computed" in response.json()["error"]["message"]


async def test_markets_lists_hundreds_of_markets_in_one_answer(redis: Redis, redis_url: str) -> None:
    """One read for every market's span and metadata: a few hundred markets must not open a connection each."""
    store = Store(redis)
    rows = np.zeros(3, dtype=CANDLE_DTYPE)
    rows["ts_ms"] = [60_000, 120_000, 180_000]
    rows["open"] = rows["high"] = rows["low"] = rows["close"] = 1.0
    symbols = [f"C{i:03d}USDT" for i in range(250)]
    for symbol in symbols:
        await store.add_market("okx", symbol)
        await store.upsert_candles("okx", symbol, rows)
        await store.set_market_meta("okx", symbol, last_update_ms=5)
    async with in_process(Settings(redis_url=redis_url)) as client:
        response = await client.get("/v1/markets")
    assert response.status_code == 200
    listed = response.json()["markets"]
    assert [m["symbol"] for m in listed] == symbols
    assert all((m["coverage_start"], m["bars"], m["last_update"]) == (60_000, 3, 5) for m in listed)
