"""The Coinglass-compatible market-data routes against a real store: the shapes Coinglass documents
(docs/coinglass.md), numbers recomputed here from the stored rows with plain loops, defaults,
aliases, ETags and the error answers.

Data: two synthetic venues of one simulated market (binance: BTCUSDT + ETHUSDT, okx:
BTCUSDT), two days of rows stored the way a collection round stores them, up to NOW, which
is also the API's "now".
"""

from __future__ import annotations

import msgspec
import numpy as np
import pytest
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from engine.rollup import roll_up
from engine.series import MarketSeries
from service.clock import Clock
from service.compute.frames import rollup_rows
from service.collect.round import Collection
from service.collect.synthetic import SyntheticMarket
from service.settings import Settings
from service.markets import SYNTHETIC_META
from service.store import keys
from service.store.chunks import CANDLES, FUNDING, LONG_SHORT, OPEN_INTEREST, ROLLUPS, TAKER
from service.store.writer import Store
from service.store.access import Access
from tests.integration.conftest import NOW_MS, in_process

pytestmark = pytest.mark.integration

API = "/api/futures"
MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR
NOW = NOW_MS + 17 * MINUTE + 23_456  # not on a bucket boundary
START = NOW - 2 * DAY
MARKETS = [("binance", "BTCUSDT"), ("binance", "ETHUSDT"), ("okx", "BTCUSDT")]
OKX_NEXT_FUNDING = NOW - NOW % (4 * HOUR) + 4 * HOUR
TWO_HOURS = 2 * HOUR
ROLLUPS_FROM = NOW - NOW % DAY - 6 * DAY

SOURCES = {
    "binance": SyntheticMarket(seed=3, symbols={"BTCUSDT": 77_000.0, "ETHUSDT": 3_000.0}, exchange="binance", venue="binance"),
    "okx": SyntheticMarket(seed=3, symbols={"BTCUSDT": 77_000.0}, exchange="okx", venue="okx"),
}


@pytest.fixture
async def seeded(redis: Redis, redis_url: str) -> Settings:
    settings = Settings(redis_url=redis_url, models=("model1",), ranges=("12h",))
    store = Store(redis)
    collection = Collection.create(store, settings, list(SOURCES.values()))
    for exchange, symbol in MARKETS:
        await store.add_market(exchange, symbol)
        await collection.store_batch(exchange, symbol, await SOURCES[exchange].backfill(symbol, START, NOW))
    await store.set_market_meta("okx", "BTCUSDT", funding_interval_h=4, next_funding_ms=OKX_NEXT_FUNDING)
    # Older history of binance BTCUSDT only as the 2h roll-ups the long ranges keep (its 1m rows begin at START).
    older = SOURCES["binance"].rows("BTCUSDT", ROLLUPS_FROM, START)
    columns = {name: older.candles[name].astype(np.float64) for name in ("open", "high", "low", "close", "volume_usd", "taker_buy_usd")}
    bars = MarketSeries(MINUTE, older.candles["ts_ms"], **columns, open_interest_usd=older.open_interest["open_interest_usd"])
    await store.upsert_rows(ROLLUPS[TWO_HOURS], "binance", "BTCUSDT", rollup_rows(roll_up(bars)[TWO_HOURS]))
    return settings


@pytest.fixture
def api_clock() -> Clock:
    return lambda: NOW


async def _rows(redis: Redis, kind, exchange: str, symbol: str):  # noqa: ANN001, ANN202
    return (await Store(redis).read_rows(kind, exchange, symbol)).tolist()


async def _data(client: AsyncTestClient, path: str, **params: object) -> object:
    response = await client.get(f"{API}{path}", params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["code"] == "0" and body["msg"] == "success"
    return body["data"]


async def _error(client: AsyncTestClient, path: str, status: int, **params: object) -> str:
    response = await client.get(f"{API}{path}", params=params)
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == str(status) and body["data"] is None
    return body["msg"]


def _point_ohlc(points: list[tuple[int, float]], start: int, width: int) -> tuple[float, float, float, float] | None:
    """OHLC of one bucket, one observation at a time: inside are those in (start, start + width];
    open is the value standing at start (else the first inside)."""
    inside = [value for ts, value in points if start < ts <= start + width]
    if not inside:
        return None
    standing = [value for ts, value in points if ts <= start]
    open_ = standing[-1] if standing else inside[0]
    return open_, max([open_, *inside]), min([open_, *inside]), inside[-1]


def _assert_buckets(rows: list[dict], width: int, end: int = NOW) -> list[int]:
    assert isinstance(rows, list) and len(rows) > 2
    times = [row["time"] for row in rows]
    assert all(t % width == 0 for t in times) and times == sorted(times) and len(set(times)) == len(times)
    assert times[-1] <= end < times[-1] + width
    return times


# open interest -------------------------------------------------------------------------------


@pytest.mark.parametrize(("interval", "width"), [("15m", 15 * MINUTE), ("1h", HOUR), ("4h", 4 * HOUR)])
async def test_pair_open_interest_is_the_stored_series_per_bucket(client: AsyncTestClient, redis: Redis, interval: str, width: int) -> None:
    points = [(ts, usd) for ts, usd in await _rows(redis, OPEN_INTEREST, "okx", "BTCUSDT")]
    rows = await _data(client, "/open-interest/history", exchange="OKX", symbol="BTCUSDT", interval=interval)
    _assert_buckets(rows, width)
    for row in rows:
        assert set(row) == {"time", "open", "high", "low", "close"}
        assert all(isinstance(row[name], str) for name in ("open", "high", "low", "close"))
        expected = _point_ohlc(points, row["time"], width)
        assert expected is not None
        assert [float(row[name]) for name in ("open", "high", "low", "close")] == pytest.approx(expected, abs=1e-3)
    assert all(rows[i + 1]["open"] == rows[i]["close"] for i in range(len(rows) - 1))  # one bucket's close opens the next


async def test_open_interest_in_coins_divides_by_the_last_close(client: AsyncTestClient, redis: Redis) -> None:
    closes = {ts + MINUTE: close for ts, _o, _h, _l, close, _v, _t in await _rows(redis, CANDLES, "binance", "ETHUSDT")}
    points = [(ts, usd / closes[ts]) for ts, usd in await _rows(redis, OPEN_INTEREST, "binance", "ETHUSDT") if ts in closes]
    rows = await _data(client, "/open-interest/history", exchange="binance", symbol="ethusdt", interval="1h", unit="coin", limit=5)
    assert len(rows) == 5
    for row in rows:
        expected = _point_ohlc(points, row["time"], HOUR)
        assert [float(row[name]) for name in ("open", "high", "low", "close")] == pytest.approx(expected, abs=1e-5)
    usd = await _data(client, "/open-interest/history", exchange="binance", symbol="ETHUSDT", interval="1h", limit=5)
    assert float(usd[-1]["close"]) > 1000 * float(rows[-1]["close"])  # USD is coins times a price in the thousands


async def test_aggregated_open_interest_sums_every_exchange(client: AsyncTestClient, redis: Redis) -> None:
    venues = [dict(await _rows(redis, OPEN_INTEREST, exchange, "BTCUSDT")) for exchange in ("binance", "okx")]
    common = sorted(set(venues[0]) & set(venues[1]))
    points = [(ts, venues[0][ts] + venues[1][ts]) for ts in common]
    rows = await _data(client, "/open-interest/aggregated-history", symbol="btc", interval="4h")
    _assert_buckets(rows, 4 * HOUR)
    for row in rows:
        expected = _point_ohlc(points, row["time"], 4 * HOUR)
        assert [float(row[name]) for name in ("open", "high", "low", "close")] == pytest.approx(expected, abs=1e-3)
    single = await _data(client, "/open-interest/history", exchange="Binance", symbol="BTCUSDT", interval="4h")
    assert float(rows[-1]["close"]) > float(single[-1]["close"]) > 0


async def test_open_interest_exchange_list_is_the_newest_value_per_exchange(client: AsyncTestClient, redis: Redis) -> None:
    response = await client.get(f"{API}/open-interest/exchange-list", params={"symbol": "BTC"})
    assert response.status_code == 200 and response.headers["etag"]
    rows = response.json()["data"]
    assert [row["exchange"] for row in rows] == ["All", "Binance", "OKX"]  # All first, then largest first
    fields = {
        "exchange", "symbol", "open_interest_usd", "open_interest_quantity", "open_interest_by_stable_coin_margin",
        "open_interest_quantity_by_coin_margin", "open_interest_quantity_by_stable_coin_margin",
        *(f"open_interest_change_percent_{w}" for w in ("5m", "15m", "30m", "1h", "4h", "24h")),
    }
    by_name = {row["exchange"]: row for row in rows}
    for exchange, name in (("binance", "Binance"), ("okx", "OKX")):
        points = await _rows(redis, OPEN_INTEREST, exchange, "BTCUSDT")
        newest_ts, newest = points[-1]
        row = by_name[name]
        assert set(row) == fields and row["symbol"] == "BTC"
        assert row["open_interest_usd"] == pytest.approx(newest, abs=1e-3)
        hour_ago = [value for ts, value in points if ts <= newest_ts - HOUR][-1]
        assert row["open_interest_change_percent_1h"] == pytest.approx(round((newest / hour_ago - 1) * 100, 2))
        close = (await _rows(redis, CANDLES, exchange, "BTCUSDT"))[-1][4]
        assert row["open_interest_quantity"] == pytest.approx(newest / close, rel=1e-6)
        assert row["open_interest_quantity_by_coin_margin"] == 0
    assert by_name["All"]["open_interest_usd"] == pytest.approx(by_name["Binance"]["open_interest_usd"] + by_name["OKX"]["open_interest_usd"], abs=1e-3)
    again = await client.get(f"{API}/open-interest/exchange-list", params={"symbol": "BTC"}, headers={"If-None-Match": response.headers["etag"]})
    assert again.status_code == 304 and again.content == b""


# funding, price, taker volume, account ratio ---------------------------------------------------


async def test_funding_history_is_the_observed_rate_in_percent(client: AsyncTestClient, redis: Redis) -> None:
    points = [(ts, rate * 100) for ts, rate in await _rows(redis, FUNDING, "binance", "BTCUSDT")]
    rows = await _data(client, "/funding-rate/history", exchange="Binance", symbol="BTCUSDT", interval="1h")
    _assert_buckets(rows, HOUR)
    for row in rows:
        assert set(row) == {"time", "open", "high", "low", "close"}
        assert [float(row[name]) for name in ("open", "high", "low", "close")] == pytest.approx(_point_ohlc(points, row["time"], HOUR), abs=1e-9)
    assert len({row["close"] for row in rows}) > 1


async def test_funding_exchange_list_per_coin(client: AsyncTestClient, redis: Redis) -> None:
    response = await client.get(f"{API}/funding-rate/exchange-list")
    assert response.status_code == 200 and response.headers["etag"]
    data = response.json()["data"]
    assert [coin["symbol"] for coin in data] == ["BTC", "ETH"]
    btc = {row["exchange"]: row for row in data[0]["stablecoin_margin_list"]}
    assert set(btc) == {"Binance", "OKX"} and data[0]["token_margin_list"] == []
    for exchange, name in (("binance", "Binance"), ("okx", "OKX")):
        newest = (await _rows(redis, FUNDING, exchange, "BTCUSDT"))[-1][1]
        assert btc[name]["funding_rate"] == pytest.approx(newest * 100)
    assert (btc["OKX"]["funding_rate_interval"], btc["OKX"]["next_funding_time"]) == (4, OKX_NEXT_FUNDING)
    last_close = NOW - NOW % MINUTE
    assert (btc["Binance"]["funding_rate_interval"], btc["Binance"]["next_funding_time"]) == (8, last_close - last_close % (8 * HOUR) + 8 * HOUR)


async def test_price_history_merges_the_stored_bars_and_reaches_back_through_the_rollups(client: AsyncTestClient) -> None:
    # The truth: every 1m bar of the simulated venue, also those only kept as 2h roll-ups.
    truth = SOURCES["binance"].rows("BTCUSDT", ROLLUPS_FROM, NOW).candles.tolist()
    for interval, width in (("4h", 4 * HOUR), ("1d", DAY)):
        rows = await _data(client, "/price/history", exchange="Binance", symbol="BTCUSDT", interval=interval)
        times = _assert_buckets(rows, width)
        assert times[0] == ROLLUPS_FROM and times[0] < START - DAY  # the roll-ups answer where the 1m rows no longer reach
        for row in rows:
            assert set(row) == {"time", "open", "high", "low", "close", "volume_usd"}
            bars = [bar for bar in truth if row["time"] <= bar[0] < row["time"] + width]
            if row["time"] <= START - START % TWO_HOURS < row["time"] + width:
                continue  # the 2h bar where the 1m rows begin is in neither
            assert float(row["open"]) == pytest.approx(bars[0][1]) and float(row["close"]) == pytest.approx(bars[-1][4])
            assert float(row["high"]) == pytest.approx(max(b[2] for b in bars)) and float(row["low"]) == pytest.approx(min(b[3] for b in bars))
            assert float(row["volume_usd"]) == pytest.approx(sum(b[5] for b in bars), rel=1e-9)


async def test_open_interest_reaches_back_through_the_rollups(client: AsyncTestClient) -> None:
    older = SOURCES["binance"].rows("BTCUSDT", ROLLUPS_FROM, START)
    at = dict(zip(older.open_interest["ts_ms"].tolist(), older.open_interest["open_interest_usd"].tolist()))
    closes = dict(zip((older.candles["ts_ms"] + MINUTE).tolist(), older.candles["close"].tolist()))
    for unit, scale in (("usd", lambda ts: 1.0), ("coin", lambda ts: closes[ts])):
        rows = await _data(client, "/open-interest/history", exchange="Binance", symbol="BTCUSDT", unit=unit)  # 1d by default
        assert rows[0]["time"] == ROLLUPS_FROM
        for row in rows[1:4]:  # whole days inside the roll-ups: the value standing at each end, one 2h close at a time
            start, end = row["time"], row["time"] + DAY
            assert float(row["open"]) == pytest.approx(at[start] / scale(start), rel=1e-9)
            assert float(row["close"]) == pytest.approx(at[end] / scale(end), rel=1e-9)
            inside = [at[t] / scale(t) for t in range(start, end + 1, TWO_HOURS)]
            assert float(row["high"]) == pytest.approx(max(inside), rel=1e-9) and float(row["low"]) == pytest.approx(min(inside), rel=1e-9)


async def test_taker_volume_splits_each_bucket_at_the_taker_buys(client: AsyncTestClient, redis: Redis) -> None:
    candles = await _rows(redis, CANDLES, "okx", "BTCUSDT")
    rows = await _data(client, "/v2/taker-buy-sell-volume/history", exchange="OKX", symbol="BTCUSDT", interval="h1", limit=10)
    assert len(rows) == 10 and rows[-1]["time"] == NOW - NOW % HOUR
    for row in rows:
        assert set(row) == {"time", "taker_buy_volume_usd", "taker_sell_volume_usd"}
        bars = [bar for bar in candles if row["time"] <= bar[0] < row["time"] + HOUR]
        assert float(row["taker_buy_volume_usd"]) == pytest.approx(sum(b[6] for b in bars), abs=1e-2)
        assert float(row["taker_sell_volume_usd"]) == pytest.approx(sum(b[5] - b[6] for b in bars), abs=1e-2)
    first_path = await _data(client, "/taker-buy-sell-volume/history", exchange="OKX", symbol="BTCUSDT", interval="1h", limit=10)
    assert first_path == rows


async def test_taker_volume_of_a_venue_without_a_taker_split_in_its_bars_comes_from_its_periods(client: AsyncTestClient, redis: Redis) -> None:
    store = Store(redis)
    bars = SOURCES["okx"].rows("BTCUSDT", NOW - 6 * HOUR, NOW).candles
    bars["taker_buy_usd"] = np.nan  # as OKX's candles are
    periods = np.zeros(72, dtype=TAKER.dtype)
    periods["ts_ms"] = NOW - NOW % (5 * MINUTE) - np.arange(72, 0, -1) * 5 * MINUTE
    periods["buy_usd"], periods["sell_usd"] = np.arange(72) * 10.0 + 1, np.arange(72) * 7.0 + 2
    await store.add_market("bybit", "BTCUSDT")
    await store.upsert_candles("bybit", "BTCUSDT", bars)
    await store.upsert_taker("bybit", "BTCUSDT", periods)
    rows = await _data(client, "/taker-buy-sell-volume/history", exchange="Bybit", symbol="BTCUSDT", interval="1h")
    assert len(rows) >= 6
    for row in rows:
        inside = periods[(periods["ts_ms"] >= row["time"]) & (periods["ts_ms"] < row["time"] + HOUR)]
        assert len(inside) and float(row["taker_buy_volume_usd"]) == pytest.approx(inside["buy_usd"].sum())
        assert float(row["taker_sell_volume_usd"]) == pytest.approx(inside["sell_usd"].sum())


async def test_account_ratio_is_the_venue_share_at_each_interval_end(client: AsyncTestClient, redis: Redis) -> None:
    points = await _rows(redis, LONG_SHORT, "okx", "BTCUSDT")
    rows = await _data(client, "/global-long-short-account-ratio/history", exchange="OKX", symbol="BTCUSDT")  # interval: 4h, the documented default
    _assert_buckets(rows, 4 * HOUR)
    for row in rows:
        assert set(row) == {"time", "global_account_long_percent", "global_account_short_percent", "global_account_long_short_ratio"}
        _ts, long_share, short_share = [p for p in points if row["time"] < p[0] <= row["time"] + 4 * HOUR][-1]
        assert row["global_account_long_percent"] == pytest.approx(round(long_share * 100, 2))
        assert row["global_account_short_percent"] == pytest.approx(round(short_share * 100, 2))
        assert row["global_account_long_short_ratio"] == pytest.approx(round(long_share / short_share, 2))


# lists, defaults, errors ---------------------------------------------------------------------------


async def test_supported_coins_and_exchanges_with_etags(client: AsyncTestClient) -> None:
    for path, expected in (("/supported-coins", ["BTC", "ETH"]), ("/supported-exchanges", ["Binance", "OKX"])):
        response = await client.get(f"{API}{path}")
        assert response.status_code == 200 and response.json() == {"code": "0", "msg": "success", "data": expected}
        assert response.headers["cache-control"] == "no-cache"
        again = await client.get(f"{API}{path}", headers={"If-None-Match": response.headers["etag"]})
        assert again.status_code == 304


async def test_documented_defaults_and_ignored_parameters(client: AsyncTestClient) -> None:
    daily = await _data(client, "/open-interest/history", exchange="Binance", symbol="BTCUSDT")
    assert daily and all(row["time"] % DAY == 0 for row in daily)  # interval absent: 1d
    explicit = await _data(client, "/open-interest/history", exchange="Binance", symbol="BTCUSDT", interval="1d", limit=1000, unit="usd")
    assert explicit == daily
    ignored = await _data(client, "/open-interest/history", exchange="Binance", symbol="BTCUSDT", interval="1d", currency="EUR", page=3)
    assert ignored == daily
    hourly = await _data(client, "/price/history", exchange="Binance", symbol="BTCUSDT")
    assert hourly[-1]["time"] == NOW - NOW % HOUR and len(hourly) == 49  # 1h by default, from the first stored 1m bar (no 1h roll-ups here)
    newest = await _data(client, "/price/history", exchange="Binance", symbol="BTCUSDT", interval="1h", limit=3)
    assert newest == hourly[-3:]
    start = NOW - 10 * HOUR
    oldest = await _data(client, "/price/history", exchange="Binance", symbol="BTCUSDT", interval="1h", limit=2, start_time=start)
    assert [row["time"] for row in oldest] == [start - start % HOUR, start - start % HOUR + HOUR]


@pytest.mark.parametrize(
    ("path", "params", "status", "says"),
    [
        ("/open-interest/history", {"symbol": "BTCUSDT"}, 400, "exchange is required, e.g. exchange=Binance"),
        ("/open-interest/history", {"exchange": "Binance"}, 400, "symbol is required, e.g. symbol=BTCUSDT"),
        ("/open-interest/history", {"exchange": "Kraken", "symbol": "BTCUSDT"}, 404, "known exchanges: Binance, OKX"),
        ("/open-interest/history", {"exchange": "all", "symbol": "BTC"}, 404, "known exchanges: Binance, OKX"),
        ("/funding-rate/history", {"exchange": "OKX", "symbol": "ETHUSDT"}, 404, "known symbols: BTCUSDT"),
        ("/price/history", {"exchange": "Binance", "symbol": "BTCUSDT", "interval": "2h"}, 400, "interval must be one of 1m, 3m, 5m, 15m, 30m, 1h, 4h, 6h, 8h, 12h, 1d, 1w"),
        ("/price/history", {"exchange": "Binance", "symbol": "BTCUSDT", "limit": 0}, 400, "limit must be 1..1000"),
        ("/open-interest/history", {"exchange": "Binance", "symbol": "BTCUSDT", "unit": "eur"}, 400, "unit must be one of usd, coin"),
        ("/open-interest/aggregated-history", {}, 400, "symbol is required, e.g. symbol=BTC"),
        ("/open-interest/aggregated-history", {"symbol": "DOGE"}, 404, "coins: BTC, ETH"),
        ("/open-interest/exchange-list", {"symbol": "DOGE"}, 404, "coins: BTC, ETH"),
        ("/global-long-short-account-ratio/history", {"exchange": "Binance", "symbol": "BTCUSDT", "end_time": 10**16}, 400, "end_time must be epoch milliseconds"),
    ],
)
async def test_errors_say_what_is_allowed(client: AsyncTestClient, path: str, params: dict, status: int, says: str) -> None:
    assert says in await _error(client, path, status, **params)


async def test_nothing_stored_before_a_window_is_an_empty_list(client: AsyncTestClient) -> None:
    assert await _data(client, "/funding-rate/history", exchange="Binance", symbol="BTCUSDT", interval="1h", end_time=START - DAY) == []


# native: open interest by venue in one call ------------------------------------------------------


async def test_v1_open_interest_lists_every_venue_and_their_sum(client: AsyncTestClient, redis: Redis) -> None:
    response = await client.get("/v1/open-interest/btc", params={"interval": "1h", "limit": 6})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["coin"], body["interval"], body["synthetic"]) == ("BTC", "1h", True)
    assert [(v["exchange"], v["symbol"]) for v in body["venues"]] == [("binance", "BTCUSDT"), ("okx", "BTCUSDT")]
    for venue in body["venues"]:
        points = await _rows(redis, OPEN_INTEREST, venue["exchange"], "BTCUSDT")
        assert (venue["observed_at"], venue["open_interest_usd"]) == (points[-1][0], pytest.approx(points[-1][1], abs=0.01))
        assert len(venue["history"]) == 6
        for time, close in venue["history"]:
            assert close == pytest.approx([v for ts, v in points if ts <= time + HOUR][-1], abs=0.01)
    assert body["total_usd"] == pytest.approx(sum(v["open_interest_usd"] for v in body["venues"]), abs=0.02)
    assert [t for t, _ in body["total_history"]] == [t for t, _ in body["venues"][0]["history"]]
    for (_, total), (_, a), (_, b) in zip(body["total_history"], body["venues"][0]["history"], body["venues"][1]["history"]):
        assert total == pytest.approx(a + b, abs=0.02)
    missing = await client.get("/v1/open-interest/DOGE")
    assert missing.status_code == 404 and "coins: BTC, ETH" in missing.json()["error"]["message"]
    bad = await client.get("/v1/open-interest/BTC", params={"interval": "2h"})
    assert bad.status_code == 400 and "interval must be one of" in bad.json()["error"]["message"]


async def test_v1_markets_say_the_data_is_synthetic(client: AsyncTestClient, redis: Redis) -> None:
    markets = (await client.get("/v1/markets")).json()["markets"]
    assert sorted((m["exchange"], m["symbol"]) for m in markets) == MARKETS and all(m["synthetic"] is True for m in markets)
    await redis.hdel(keys.market_meta("okx", "BTCUSDT"), SYNTHETIC_META)  # as a live venue's market has it
    markets = (await client.get("/v1/markets")).json()["markets"]
    assert {(m["exchange"], m["synthetic"]) for m in markets} == {("binance", True), ("okx", False)}


async def test_keys_and_limits_hold_as_on_every_data_route(seeded: Settings, redis: Redis, api_clock: Clock) -> None:
    async with in_process(msgspec.structs.replace(seeded, anonymous_access=False), api_clock) as closed:
        refused = await closed.get(f"{API}/supported-coins")
        assert refused.status_code == 401 and refused.json()["code"] == "401"
        _, plain = await Access(redis).create("bot", 2)
        for used in (1, 2):
            answer = await closed.get(f"{API}/price/history", params={"exchange": "Binance", "symbol": "BTCUSDT"}, headers={"CG-API-KEY": plain})
            assert answer.status_code == 200 and answer.headers["api-key-max-limit"] == "2" and answer.headers["api-key-use-limit"] == str(used)
        limited = await closed.get("/v1/open-interest/BTC", headers={"X-API-Key": plain})
        assert limited.status_code == 429 and "retry-after" in limited.headers
