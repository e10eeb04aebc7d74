"""The Coinglass-compatible surface against a real store: shapes as Coinglass documents them,
totals checked against the stored events (summed here with plain loops), validation errors.

Data: the synthetic market under two exchange ids (binance: BTCUSDT + ETHUSDT, okx:
BTCUSDT) and the per-coin aggregates the pipeline builds from them (``all:BTC``,
``all:ETH``), collected up to NOW, which is also the API's "now" (the routes' windows
end now, as Coinglass's do): every answer is the same on every run.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import httpx
import numpy as np
import pytest
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from engine.models import MODELS
from service.clock import Clock
from service.collect.round import Collection
from service.settings import Settings
from service.collect.synthetic import SyntheticMarket
from service.store.writer import Store
from tests.conftest import latest_field
from tests.integration.conftest import NOW_MS

pytestmark = pytest.mark.integration

CG = "/api/futures/liquidation"
MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR
MARKETS = [("binance", "BTCUSDT"), ("binance", "ETHUSDT"), ("okx", "BTCUSDT")]
NOW = NOW_MS + 17 * MINUTE + 23_456  # not on a bucket boundary


# Shared by the tests so that generated days are cached between them.
SOURCES = [
    SyntheticMarket(seed=3, symbols={"BTCUSDT": 77_000.0, "ETHUSDT": 3_000.0}, exchange="binance"),
    SyntheticMarket(seed=5, symbols={"BTCUSDT": 77_000.0}, exchange="okx"),
]


@pytest.fixture
async def seeded(redis: Redis, redis_url: str) -> Settings:
    settings = Settings(redis_url=redis_url, models=("model1",), ranges=("12h", "24h"), backfill_days=1.0, frame_rows=60, aggregate=True)
    changed = await Collection.create(Store(redis), settings, SOURCES).collect_once(NOW)
    assert sorted(changed) == sorted([*MARKETS, ("all", "BTC"), ("all", "ETH")])
    return settings


@pytest.fixture
def api_clock() -> Clock:
    return lambda: NOW


async def _events(redis: Redis, exchange: str, symbol: str) -> list[tuple[int, int, float, float, float]]:
    """Stored events as plain tuples ``(ts_ms, side, price, quantity, usd)``."""
    return (await Store(redis).read_liquidations(exchange, symbol)).tolist()


def _sums(events: list[tuple], low: int, high: int) -> tuple[float, float]:
    """Long and short USD of events with ``low <= ts < high``, one event at a time."""
    long_usd = short_usd = 0.0
    for ts, side, _price, _qty, usd in events:
        if low <= ts < high:
            if side == 1:
                long_usd += usd
            else:
                short_usd += usd
    return long_usd, short_usd


async def _data(client: AsyncTestClient, path: str, **params: object) -> object:
    response = await client.get(path, params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["code"] == "0" and body["msg"] == "success"
    return body["data"]


# realized liquidations ------------------------------------------------------------------


@pytest.mark.parametrize(("interval", "width"), [("5m", 5 * MINUTE), ("1h", HOUR), ("4h", 4 * HOUR)])
async def test_pair_history_totals_are_the_stored_events_of_each_bucket(client: AsyncTestClient, redis: Redis, interval: str, width: int) -> None:
    events = await _events(redis, "binance", "BTCUSDT")
    end = NOW
    rows = await _data(client, f"{CG}/history", exchange="Binance", symbol="BTCUSDT", interval=interval, end_time=end)
    assert isinstance(rows, list) and len(rows) > 2
    times = [row["time"] for row in rows]
    assert all(t % width == 0 for t in times) and np.all(np.diff(times) == width)
    assert times[-1] <= end < times[-1] + width
    first_event = min(e[0] for e in events)
    assert times[0] <= first_event < times[0] + width  # starts where the stored events do
    for row in rows:
        assert set(row) == {"time", "long_liquidation_usd", "short_liquidation_usd"}
        assert isinstance(row["long_liquidation_usd"], str) and isinstance(row["short_liquidation_usd"], str)
        long_usd, short_usd = _sums(events, row["time"], row["time"] + width)
        assert float(row["long_liquidation_usd"]) == pytest.approx(long_usd, abs=1e-4)
        assert float(row["short_liquidation_usd"]) == pytest.approx(short_usd, abs=1e-4)
    total_long = sum(float(row["long_liquidation_usd"]) for row in rows)
    assert total_long == pytest.approx(_sums(events, times[0], times[-1] + width)[0], rel=1e-9) and total_long > 0


async def test_history_limit_start_time_and_weekly_buckets(client: AsyncTestClient, redis: Redis) -> None:
    events = await _events(redis, "okx", "BTCUSDT")
    end = NOW
    newest = await _data(client, f"{CG}/history", exchange="okx", symbol="btcusdt", interval="15m", limit=3, end_time=end)
    assert [row["time"] for row in newest] == [end - end % (15 * MINUTE) - k * 15 * MINUTE for k in (2, 1, 0)]

    start = end - 10 * HOUR
    oldest = await _data(client, f"{CG}/history", exchange="OKX", symbol="BTCUSDT", interval="1h", limit=4, start_time=start, end_time=end)
    assert [row["time"] for row in oldest] == [start - start % HOUR + k * HOUR for k in range(4)]

    weekly = await _data(client, f"{CG}/history", exchange="OKX", symbol="BTCUSDT", interval="1w", end_time=end)
    assert weekly
    for row in weekly:
        monday = datetime.fromtimestamp(row["time"] / 1000, UTC)
        assert (monday.weekday(), monday.hour, monday.minute) == (0, 0, 0)
    assert sum(float(row["long_liquidation_usd"]) + float(row["short_liquidation_usd"]) for row in weekly) == pytest.approx(
        sum(_sums(events, 0, end + 1)), rel=1e-9
    )

    before_any = await _data(client, f"{CG}/history", exchange="OKX", symbol="BTCUSDT", interval="1h", end_time=min(e[0] for e in events) - DAY)
    assert before_any == []
    reversed_span = await client.get(f"{CG}/history", params={"exchange": "OKX", "symbol": "BTCUSDT", "interval": "1h", "start_time": end, "end_time": end - DAY})
    assert reversed_span.status_code == 400 and "start_time" in reversed_span.json()["msg"]


async def test_aggregated_history_sums_the_listed_exchanges_only(client: AsyncTestClient, redis: Redis) -> None:
    binance, okx = await _events(redis, "binance", "BTCUSDT"), await _events(redis, "okx", "BTCUSDT")
    end = NOW
    both = await _data(client, f"{CG}/aggregated-history", exchange_list="Binance, OKX", symbol="BTC", interval="1h", end_time=end)
    one = await _data(client, f"{CG}/aggregated-history", exchange_list="binance", symbol="btc", interval="1h", end_time=end)
    assert len(both) > 2
    for row in both:
        assert set(row) == {"time", "aggregated_long_liquidation_usd", "aggregated_short_liquidation_usd"}
        assert isinstance(row["aggregated_long_liquidation_usd"], float | int)
        long_usd, short_usd = np.add(_sums(binance, row["time"], row["time"] + HOUR), _sums(okx, row["time"], row["time"] + HOUR))
        assert row["aggregated_long_liquidation_usd"] == pytest.approx(long_usd, abs=1e-4)
        assert row["aggregated_short_liquidation_usd"] == pytest.approx(short_usd, abs=1e-4)
    assert [row["time"] for row in one] == [row["time"] for row in both][-len(one) :] and one
    for row in one:
        assert row["aggregated_long_liquidation_usd"] == pytest.approx(_sums(binance, row["time"], row["time"] + HOUR)[0], abs=1e-4)


async def test_coin_list_totals_per_coin_over_trailing_windows(client: AsyncTestClient, redis: Redis) -> None:
    events = {symbol: await _events(redis, "binance", symbol) for symbol in ("BTCUSDT", "ETHUSDT")}
    rows = await _data(client, f"{CG}/coin-list", exchange="BINANCE")
    assert {row["symbol"] for row in rows} == {"BTC", "ETH"}
    assert [row["liquidation_usd_24h"] for row in rows] == sorted((row["liquidation_usd_24h"] for row in rows), reverse=True)
    for row in rows:
        assert len(row) == 13
        for name, width in (("24h", DAY), ("12h", 12 * HOUR), ("4h", 4 * HOUR), ("1h", HOUR)):
            # The window ends at the API's now, both ends included.
            expected = _sums(events[row["symbol"] + "USDT"], NOW - width, NOW + 1)
            for side, index in (("long_", 0), ("short_", 1)):
                assert row[f"{side}liquidation_usd_{name}"] == pytest.approx(expected[index], abs=1e-4)
            assert row[f"liquidation_usd_{name}"] == pytest.approx(row[f"long_liquidation_usd_{name}"] + row[f"short_liquidation_usd_{name}"], abs=1e-4)
        assert row["liquidation_usd_1h"] <= row["liquidation_usd_4h"] <= row["liquidation_usd_12h"] <= row["liquidation_usd_24h"]
        assert row["liquidation_usd_24h"] > 0


async def test_exchange_list_puts_all_first_and_filters_by_coin(client: AsyncTestClient, redis: Redis) -> None:
    events = {market: await _events(redis, *market) for market in MARKETS}
    for symbol, markets in (("", MARKETS), ("BTC", [m for m in MARKETS if m[1] == "BTCUSDT"])):
        rows = await _data(client, f"{CG}/exchange-list", range="4h", symbol=symbol)
        assert rows[0]["exchange"] == "All"
        assert sorted(row["exchange"] for row in rows[1:]) == ["Binance", "OKX"]  # the aggregate "all" is not an exchange
        for field in ("liquidation_usd", "long_liquidation_usd", "short_liquidation_usd"):
            assert rows[0][field] == pytest.approx(sum(row[field] for row in rows[1:]), abs=1e-3)
        for row in rows[1:]:
            mine = [events[m] for m in markets if m[0] == row["exchange"].lower()]
            long_usd, short_usd = np.sum([_sums(e, NOW - 4 * HOUR, NOW + 1) for e in mine], axis=0)
            assert row["long_liquidation_usd"] == pytest.approx(long_usd, abs=1e-4)
            assert row["short_liquidation_usd"] == pytest.approx(short_usd, abs=1e-4)
        assert [row["liquidation_usd"] for row in rows[1:]] == sorted((row["liquidation_usd"] for row in rows[1:]), reverse=True)


async def test_orders_are_the_newest_large_events_with_documented_sides(client: AsyncTestClient, redis: Redis) -> None:
    events = await _events(redis, "okx", "BTCUSDT")
    threshold = float(np.percentile([e[4] for e in events], 50))
    rows = await _data(client, f"{CG}/order", exchange="OKX", symbol="BTC", min_liquidation_amount=str(threshold))
    expected = sorted((e for e in events if e[4] >= threshold), key=lambda e: -e[0])[:200]
    assert len(rows) == len(expected) and 0 < len(rows) <= 200
    for row, (ts, side, price, _qty, usd) in zip(rows, expected):
        assert set(row) == {"exchange_name", "symbol", "base_asset", "price", "usd_value", "side", "time", "position_side"}
        assert (row["exchange_name"], row["symbol"], row["base_asset"]) == ("OKX", "BTCUSDT", "BTC")
        assert row["time"] == ts and row["price"] == price and row["usd_value"] == pytest.approx(usd, abs=1e-4)
        # Coinglass REST convention: 2 = Sell = a long was liquidated, 1 = Buy = a short was.
        assert (row["side"], row["position_side"]) == ((2, "long") if side == 1 else (1, "short"))
    assert {row["side"] for row in rows} == {1, 2}

    start, end = expected[-1][0], expected[len(expected) // 2][0]
    window = await _data(client, f"{CG}/order", exchange="okx", symbol="btc", min_liquidation_amount=str(threshold), start_time=start, end_time=end)
    assert [row["time"] for row in window] == [e[0] for e in expected if start <= e[0] <= end]
    binance = await _data(client, f"{CG}/order", exchange="Binance", symbol="BTC", min_liquidation_amount="0")
    assert len(binance) == 200 and {row["exchange_name"] for row in binance} == {"BINANCE"}


async def test_supported_exchange_pairs_lists_the_stored_markets(client: AsyncTestClient) -> None:
    data = await _data(client, "/api/futures/supported-exchange-pairs")
    assert set(data) == {"Binance", "OKX"}
    assert {(exchange.lower(), pair["instrument_id"]) for exchange, pairs in data.items() for pair in pairs} == set(MARKETS)
    eth = next(pair for pair in data["Binance"] if pair["instrument_id"] == "ETHUSDT")
    assert (eth["base_asset"], eth["quote_asset"]) == ("ETH", "USDT")
    assert set(eth) >= {"instrument_id", "base_asset", "quote_asset", "settlement_currency", "max_leverage", "funding_interval", "price_tick_size"}
    assert set(await _data(client, "/api/futures/supported-exchange-pairs", exchange="okx")) == {"OKX"}


# maps and heatmaps ------------------------------------------------------------------------


async def _native_book(redis: Redis, exchange: str, symbol: str, range_name: str) -> tuple[list[float], list[int], list[int], float]:
    """Price rows, last-column long and short USD, and last close of the newest native JSON frame."""
    frame = json.loads(await latest_field(Store(redis), exchange, symbol, "model1", range_name, "v1"))
    last_close = [candle[4] for candle in frame["candles"] if candle[4] is not None][-1]
    return frame["y"], frame["long"][-1], frame["short"][-1], last_close


async def test_pair_map_is_the_per_tier_book_of_the_newest_frame(client: AsyncTestClient, redis: Redis) -> None:
    y, long_last, short_last, close = await _native_book(redis, "binance", "BTCUSDT", "24h")
    data = (await _data(client, f"{CG}/map", exchange="Binance", symbol="BTCUSDT", range="1d"))["data"]
    book = (await client.get("/v1/heatmaps/binance/BTCUSDT/levels", params={"model": "model1", "range": "24h"})).json()["map"]
    tiers = [tier["leverage"] for tier in book["tiers"]]
    assert tiers == list(MODELS["model1"].tiers)
    # Every (tier, row, side) with USD is one entry [price, usd, tier, null] under its price.
    expected = {}
    for tier in book["tiers"]:
        for side, values in (("long", tier["long"]), ("short", tier["short"])):
            for row, usd in enumerate(values):
                if usd > 0:
                    expected.setdefault(book["y"][row], []).append((tier["leverage"], usd, side))
    assert len({lev for entries in expected.values() for lev, _, _ in entries}) > 1  # more than one tier holds positions
    assert len(data) == len(expected) > 0
    for key, entries in data.items():
        price = float(key)
        assert all(len(entry) == 4 and entry[0] == price and entry[3] is None for entry in entries)
        assert all(isinstance(entry[2], int) for entry in entries)  # 25, not 25.0 or null
        assert sorted((entry[2], entry[1]) for entry in entries) == sorted((lev, usd) for lev, usd, _ in expected[price])
        # Longs below the price, shorts above; the tiers of a row sum to the frame's cell (whole USD per tier).
        sides = {side for _, _, side in expected[price]}
        assert price > close or sides == {"long"}
        assert price < close or sides == {"short"}
        row = y.index(price)
        assert sum(entry[1] for entry in entries) == pytest.approx(long_last[row] + short_last[row], abs=len(tiers))


async def test_aggregated_map_is_the_outstanding_book_of_the_newest_frame(client: AsyncTestClient, redis: Redis) -> None:
    y, long_last, short_last, _ = await _native_book(redis, "all", "BTC", "24h")
    data = (await _data(client, f"{CG}/aggregated-map", symbol="BTC", range="1d"))["data"]
    expected: dict[float, list[float]] = {}
    for price, long_usd, short_usd in zip(y, long_last, short_last):
        for usd in (long_usd, short_usd):
            if usd > 0:
                expected.setdefault(price, []).append(usd)
    assert len(data) == len(expected) > 0
    for key, entries in data.items():
        price = min(expected, key=lambda p: abs(p - float(key)))
        assert price == pytest.approx(float(key), rel=1e-12)
        assert all(len(entry) == 4 and entry[0] == float(key) for entry in entries)
        assert all(entry[2] is None and entry[3] is None for entry in entries)  # leverage unknown: frames sum the tiers
        assert sorted(entry[1] for entry in entries) == pytest.approx(sorted(expected[price]))


async def test_max_pain_is_the_largest_level_per_side(client: AsyncTestClient, redis: Redis) -> None:
    rows = await _data(client, f"{CG}/max-pain")
    by_coin = {row["symbol"]: row for row in rows}
    assert set(by_coin) == {"BTC", "ETH"}
    for coin in by_coin:
        y, long_last, short_last, close = await _native_book(redis, "all", coin, "24h")  # the coin's book over every exchange
        row = by_coin[coin]
        assert row["range"] == "24h" and row["price"] == close
        long_best, short_best = int(np.argmax(long_last)), int(np.argmax(short_last))
        assert row["long_max_pain_liq_level"] == pytest.approx(long_last[long_best])
        assert row["long_max_pain_liq_price"] == pytest.approx(y[long_best])
        assert row["short_max_pain_liq_level"] == pytest.approx(short_last[short_best])
        assert row["short_max_pain_liq_price"] == pytest.approx(y[short_best])
        assert row["long_max_pain_liq_price"] < close < row["short_max_pain_liq_price"]
    twelve = await _data(client, f"{CG}/max-pain", range="12h")
    assert {row["range"] for row in twelve} == {"12h"}


async def test_aggregated_heatmap_serves_the_all_market(client: AsyncTestClient, redis: Redis) -> None:
    response = await client.get(f"{CG}/aggregated-heatmap/model1", params={"symbol": "btc", "range": "12h"}, headers={"Accept-Encoding": "gzip"})
    assert response.status_code == 200
    assert response.headers["content-encoding"] == "gzip"  # the stored bytes, as they are
    assert response.content == await latest_field(Store(redis), "all", "BTC", "model1", "12h", "cg")
    data = response.json()["data"]
    assert set(data) == {"y_axis", "liquidation_leverage_data", "price_candlesticks"} and data["liquidation_leverage_data"]


# validation -------------------------------------------------------------------------------

PAIR = {"exchange": "Binance", "symbol": "BTCUSDT"}


BAD_REQUESTS = [
    (f"{CG}/history", {**PAIR, "interval": "2h"}, 400, "interval must be one of 1m, 3m, 5m, 15m, 30m, 1h, 4h, 6h, 8h, 12h, 1d, 1w"),
    (f"{CG}/history", PAIR, 400, "interval is required"),
    (f"{CG}/history", {**PAIR, "interval": "1h", "limit": 1001}, 400, "limit must be 1..1000"),
    (f"{CG}/history", {**PAIR, "interval": "1h", "limit": 0}, 400, "limit must be 1..1000"),
    (f"{CG}/history", {**PAIR, "interval": "1h", "limit": "ten"}, 400, "limit"),
    (f"{CG}/history", {**PAIR, "interval": "1h", "end_time": 1_780_000_000_000_000}, 400, "end_time must be epoch milliseconds"),
    (f"{CG}/history", {"exchange": "Kraken", "symbol": "BTCUSDT", "interval": "1h"}, 404, "kraken"),
    (f"{CG}/history", {"exchange": "Binance", "symbol": "DOGEUSDT", "interval": "1h"}, 404, "DOGEUSDT"),
    (f"{CG}/aggregated-history", {"exchange_list": "Binance,Kraken", "symbol": "BTC", "interval": "1h"}, 404, "known exchanges: Binance, OKX"),
    (f"{CG}/aggregated-history", {"exchange_list": " , ", "symbol": "BTC", "interval": "1h"}, 400, "exchange_list"),
    (f"{CG}/aggregated-history", {"exchange_list": "OKX", "symbol": "ETH", "interval": "1h"}, 404, "coins: BTC"),
    (f"{CG}/coin-list", {}, 400, "exchange is required"),
    (f"{CG}/coin-list", {"exchange": "all"}, 404, "unknown exchange"),
    (f"{CG}/exchange-list", {"range": "2d"}, 400, "range must be one of 1h, 4h, 12h, 24h"),
    (f"{CG}/exchange-list", {"range": "1h", "symbol": "XRP"}, 404, "XRP"),
    (f"{CG}/order", {"exchange": "Binance", "symbol": "BTC"}, 400, "min_liquidation_amount is required"),
    (f"{CG}/order", {"exchange": "Binance", "symbol": "BTC", "min_liquidation_amount": "lots"}, 400, "USD amount >= 0"),
    (f"{CG}/order", {"exchange": "Binance", "symbol": "BTC", "min_liquidation_amount": "-5"}, 400, "USD amount >= 0"),
    (f"{CG}/order", {"exchange": "Binance", "symbol": "BTC", "min_liquidation_amount": "1e4"}, 400, "in digits"),
    (f"{CG}/map", {**PAIR, "range": "7d"}, 404, "range 7d is not computed by this deployment; it computes 1d"),
    (f"{CG}/map", {**PAIR, "range": "2d"}, 400, "range must be one of 1d; got '2d'"),
    (f"{CG}/map", {"exchange": "Binance", "symbol": "SOLUSDT", "range": "1d"}, 404, "SOLUSDT"),
    (f"{CG}/aggregated-map", {"symbol": "DOGE", "range": "1d"}, 404, "coins with one: BTC, ETH"),
    (f"{CG}/max-pain", {"range": "48h"}, 404, "range 48h is not computed by this deployment; it computes 12h, 24h"),
    (f"{CG}/max-pain", {"range": "1h"}, 400, "range must be one of 12h, 24h; got '1h'"),
    (f"{CG}/aggregated-heatmap/model1", {"symbol": "DOGE", "range": "12h"}, 404, "no aggregate over all exchanges for coin 'DOGE'"),
    (f"{CG}/aggregated-heatmap/model9", {"symbol": "BTC", "range": "12h"}, 400, "model must be one of model1; got 'model9'"),
    (f"{CG}/aggregated-heatmap/model1", {"symbol": "BTC", "range": "3d"}, 404, "range 3d is not computed by this deployment; it computes 12h, 24h"),
    (f"{CG}/aggregated-heatmap/model1", {"symbol": "BTC", "range": "5y"}, 400, "range must be one of 12h, 24h"),
    ("/api/futures/supported-exchange-pairs", {"exchange": "Kraken"}, 404, "known exchanges"),
]


async def test_bad_parameters_answer_in_the_envelope(client: AsyncTestClient) -> None:
    cases = list(BAD_REQUESTS)
    spare_model = next((model for model in sorted(MODELS) if model != "model1"), None)
    if spare_model is not None:  # a model the engine has but this deployment does not compute
        cases.append((f"{CG}/aggregated-heatmap/{spare_model}", {"symbol": "BTC", "range": "12h"}, 404, f"model {spare_model} is not computed by this deployment"))
    # One seeded store for every case: seeding is the slow part.
    for path, params, status, says in cases:
        response = await client.get(path, params=params)
        assert response.status_code == status, (path, params, response.text)
        body = response.json()
        assert body["code"] == str(status) and body["data"] is None, body
        assert says in body["msg"], (path, params, body["msg"])


async def test_a_known_market_without_frames_is_503_on_map_routes(client: AsyncTestClient, redis: Redis) -> None:
    await Store(redis).add_market("binance", "XRPUSDT")
    response = await client.get(f"{CG}/map", params={"exchange": "Binance", "symbol": "XRPUSDT", "range": "1d"})
    assert response.status_code == 503 and response.headers["retry-after"] == "5"
    assert response.json()["code"] == "503"
    history = await client.get(f"{CG}/history", params={"exchange": "Binance", "symbol": "XRPUSDT", "interval": "1h"})
    assert history.status_code == 200 and history.json()["data"] == []  # no events stored: no buckets claimed


async def test_every_compatible_route_is_documented_with_an_example(client: AsyncTestClient) -> None:
    schema = (await client.get("/docs/openapi.json")).json()
    paths = {
        "/api/futures/liquidation/heatmap/{model}", "/api/futures/liquidation/aggregated-heatmap/{model}",
        "/api/futures/liquidation/history", "/api/futures/liquidation/aggregated-history",
        "/api/futures/liquidation/coin-list", "/api/futures/liquidation/exchange-list", "/api/futures/liquidation/order",
        "/api/futures/liquidation/map", "/api/futures/liquidation/aggregated-map", "/api/futures/liquidation/max-pain",
        "/api/futures/supported-exchange-pairs",
    }
    assert paths <= set(schema["paths"])
    operation_ids = set()
    for path in paths:
        operation = schema["paths"][path]["get"]
        operation_ids.add(operation["operationId"])
        assert operation["description"].strip()
        ok = operation["responses"]["200"]["content"]["application/json"]
        assert ok["examples"], path
        assert {"400", "404"} <= set(operation["responses"])
    assert len(operation_ids) == len(paths)


# a Coinglass user's client, unchanged but for the base URL ---------------------------------


class CoinglassClient:
    """What a Coinglass v4 user writes: a base URL, the CG-API-KEY header, code "0" means success."""

    def __init__(self, base_url: str, api_key: str) -> None:
        self.http = httpx.AsyncClient(base_url=base_url, headers={"CG-API-KEY": api_key, "accept": "application/json"}, timeout=10)

    async def get(self, path: str, **params: object) -> object:
        response = await self.http.get(path, params=params)
        body = response.json()
        if body["code"] != "0":
            raise RuntimeError(f"coinglass error {body['code']}: {body['msg']}")
        return body["data"]


async def test_a_coinglass_client_works_by_changing_only_the_base_url(live_url: str) -> None:
    client = CoinglassClient(live_url, api_key="a-coinglass-key")
    try:
        pairs = await client.get("/api/futures/supported-exchange-pairs")
        exchange, pair = "Binance", pairs["Binance"][0]["instrument_id"]
        coin = pairs["Binance"][0]["base_asset"]
        history = await client.get("/api/futures/liquidation/history", exchange=exchange, symbol=pair, interval="1h")
        assert history and sum(float(row["long_liquidation_usd"]) + float(row["short_liquidation_usd"]) for row in history) > 0
        aggregated = await client.get("/api/futures/liquidation/aggregated-history", exchange_list="Binance,OKX", symbol=coin, interval="1d")
        assert aggregated and sum(row["aggregated_long_liquidation_usd"] + row["aggregated_short_liquidation_usd"] for row in aggregated) > 0
        coins = await client.get("/api/futures/liquidation/coin-list", exchange=exchange)
        assert coin in {row["symbol"] for row in coins}
        exchanges = await client.get("/api/futures/liquidation/exchange-list", symbol=coin, range="24h")
        assert exchanges[0]["exchange"] == "All"
        orders = await client.get("/api/futures/liquidation/order", exchange=exchange, symbol=coin, min_liquidation_amount="10000")
        assert orders and all(row["usd_value"] >= 10000 and row["side"] in (1, 2) for row in orders)
        heatmap = await client.get("/api/futures/liquidation/heatmap/model1", exchange=exchange, symbol=pair, range="24h")
        assert len(heatmap["y_axis"]) == 60
        assert await client.get("/api/futures/liquidation/aggregated-heatmap/model1", symbol="BTC", range="24h")
        assert (await client.get("/api/futures/liquidation/map", exchange=exchange, symbol=pair, range="1d"))["data"]
        assert (await client.get("/api/futures/liquidation/aggregated-map", symbol="BTC", range="1d"))["data"]
        assert {row["symbol"] for row in await client.get("/api/futures/liquidation/max-pain", range="24h")} == {"BTC", "ETH"}
        with pytest.raises(RuntimeError, match="coinglass error 400: interval must be one of"):
            await client.get("/api/futures/liquidation/history", exchange=exchange, symbol=pair, interval="2h")
    finally:
        await client.http.aclose()
