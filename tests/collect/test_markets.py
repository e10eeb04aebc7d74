"""A venue's whole market list (LIQMAP_MARKETS=all / top:N) and candles over kline streams, against the fake exchange."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator

import numpy as np
import pytest
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from service.collect.round import Collection
from service.collect.venues.base import ExchangeCollector
from service.fakeexchange import FakeExchange
from service.settings import Settings
from service.store.writer import Store
from tests.collect.conftest import MINUTE, Clock, assert_candles_exact, collector_settings, truth, venue_collector

KLINE_PATHS = {"binance": "/fapi/v1/klines", "bybit": "/v5/market/kline", "okx": "/api/v5/market/candles"}


@pytest.fixture
async def listed(clock: Clock) -> AsyncIterator[FakeExchange]:
    exchange = FakeExchange(seed=5, instruments=300, clock=clock)
    await exchange.start()
    yield exchange
    await exchange.stop()


def market_collector(fake: FakeExchange, clock: Clock, venue: str, markets: str, **extra: object) -> ExchangeCollector:
    return venue_collector(venue, collector_settings(fake, markets=(markets,), **extra), clock)


def by_volume(fake: FakeExchange, venue: str) -> list[str]:
    trading = fake[venue].trading()
    return sorted(trading, key=lambda s: (-fake[venue].quote_volume(s), s))


@pytest.mark.parametrize("value", ["top:x", "top:0", "top", "all,BTCUSDT", "btc-usdt", ""])
def test_a_bad_markets_setting_names_the_variable_and_the_allowed_forms(value: str) -> None:
    with pytest.raises(ValueError, match="LIQMAP_MARKETS") as caught:
        Settings.from_env({"LIQMAP_MARKETS": value})
    assert "all" in str(caught.value) and "top:N" in str(caught.value)


async def test_all_follows_every_trading_usdt_perpetual_and_nothing_else(listed: FakeExchange, clock: Clock, venue: str) -> None:
    fake = listed[venue]
    fake.halted = set(fake.listed[10:13])  # listed, not trading
    fake.instruments_page = 70  # Bybit pages its list: five pages here
    source = market_collector(listed, clock, venue, "all")
    assert source.symbols() == []
    assert await source.refresh_markets()
    expected = sorted(fake.trading())
    assert len(expected) == 297 and source.symbols() == expected
    if venue == "bybit":
        assert fake.requests["/v5/market/instruments-info"] == math.ceil(302 / 70)
    await source.close()


async def test_top_n_follows_the_largest_by_24h_quote_volume(listed: FakeExchange, clock: Clock, venue: str) -> None:
    source = market_collector(listed, clock, venue, "top:25")
    await source.refresh_markets()
    expected = by_volume(listed, venue)[:25]
    assert source.symbols() == expected
    # Volume, not the alphabet, chose them; the two largest are BTC and ETH.
    assert set(expected) != set(sorted(listed[venue].trading())[:25]) and expected[:2] == ["BTCUSDT", "ETHUSDT"]
    await source.close()


async def test_a_refresh_adds_and_removes_markets_only_when_due(listed: FakeExchange, clock: Clock, venue: str) -> None:
    fake = listed[venue]
    newcomer, leaving = fake.listed[5], fake.listed[6]
    fake.delist(newcomer)
    source = market_collector(listed, clock, venue, "all", markets_refresh_s=3600.0)
    await source.refresh_markets()
    assert newcomer not in source.symbols() and leaving in source.symbols()
    fake.relist(newcomer)
    fake.delist(leaving)
    requests = sum(fake.requests.values())
    assert not await source.refresh_markets(clock.advance(30 * MINUTE))  # not due: nothing asked
    assert sum(fake.requests.values()) == requests
    assert await source.refresh_markets(clock.advance(31 * MINUTE))
    assert newcomer in source.symbols() and leaving not in source.symbols()
    assert source.symbols() == sorted(fake.trading())
    await source.close()


async def test_klines_of_300_markets_arrive_over_a_few_connections_within_the_venues_limits(
    listed: FakeExchange, clock: Clock, venue: str
) -> None:
    fake = listed[venue]
    source = market_collector(listed, clock, venue, "all")
    await source.refresh_markets()
    symbols = source.symbols()
    assert len(symbols) == 300
    counted = REGISTRY.get_sample_value("liqmap_streamed_bars_total", {"exchange": venue}) or 0.0
    source.follow(symbols)
    await asyncio.wait_for(fake.wait_until(lambda: sum(fake.kline_connections()) == 300), 20)
    per_connection = source.kline_limits.topics_per_connection
    expected = [min(per_connection, 300 - i) for i in range(0, 300, per_connection)]
    assert fake.kline_connections() == expected and len(expected) <= 2
    assert source.klines is not None and sorted(source.klines.subscribed(), reverse=True) == expected
    assert fake.kline_violations == []

    closing = clock.now - clock.now % MINUTE
    clock.advance(MINUTE)
    await asyncio.wait_for(source.wait_streamed(lambda: all(len(source.streamed(s)) for s in symbols)), 20)
    for symbol in symbols:
        assert_candles_exact(source.streamed(symbol), truth(listed, venue, symbol, closing, closing + MINUTE), venue)
    # Bars in progress (sent too) were not taken, and nothing was asked over REST for candles.
    assert source.streamed_bars == 300 and fake.requests[KLINE_PATHS[venue]] == 0
    assert REGISTRY.get_sample_value("liqmap_streamed_bars_total", {"exchange": venue}) == counted + 300
    assert REGISTRY.get_sample_value("liqmap_kline_connections", {"exchange": venue}) == len(expected)
    assert not source.bad_payloads
    await source.close()


async def test_followed_markets_change_on_the_live_connections(listed: FakeExchange, clock: Clock, venue: str) -> None:
    fake = listed[venue]
    source = market_collector(listed, clock, venue, "all")
    await source.refresh_markets()
    first, more = source.symbols()[:30], source.symbols()[30:45]
    source.follow(first)
    await asyncio.wait_for(fake.wait_until(lambda: fake.kline_connections() == [30]), 20)
    source.follow(first[10:] + more)  # ten gone, fifteen new: the same connection
    await asyncio.wait_for(fake.wait_until(lambda: fake.kline_connections() == [35]), 20)
    assert source.klines is not None and source.klines.connections[0].feed.stats.connects == 1
    assert fake.kline_violations == []
    await source.close()


async def test_closed_bars_are_stored_without_gap_or_duplicate_and_a_cut_is_filled_over_rest(clock: Clock, venue: str, redis: Redis) -> None:
    listed = FakeExchange(seed=5, instruments=40, clock=clock)
    await listed.start()
    fake = listed[venue]
    store = Store(redis)
    source = market_collector(listed, clock, venue, "top:12", backfill_days=0.02)
    collection = Collection.queued(store, source.settings, [source], clock=clock)
    start = clock.now
    await collection.collect_once()  # the list, the backfill of each market, their streams
    symbols = source.symbols()
    assert len(symbols) == 12
    await asyncio.wait_for(fake.wait_until(lambda: sum(fake.kline_connections()) == 12), 20)

    closes: list[int] = []

    async def minute() -> None:
        streamed = source.streamed_bars
        now = clock.advance(MINUTE)
        closes.append(now - now % MINUTE)
        await asyncio.wait_for(source.wait_streamed(lambda: source.streamed_bars >= streamed + 12), 20)
        await collection.collect_once()

    rest_before = fake.requests[KLINE_PATHS[venue]]
    for _ in range(3):
        await minute()
    assert fake.requests[KLINE_PATHS[venue]] == rest_before  # streamed: no candle asked over REST

    # The venue cuts the streams and keeps them down for three bar closes.
    assert await fake.cut_klines(hold=True) >= 1
    await asyncio.wait_for(fake.wait_until(lambda: not fake.kline_connections()), 20)
    gone = clock.advance(3 * MINUTE)
    await asyncio.wait_for(fake.wait_until(lambda: fake.klines_closed_ms == gone - gone % MINUTE), 20)  # closed unheard
    fake.resume_klines()
    await asyncio.wait_for(fake.wait_until(lambda: sum(fake.kline_connections()) == 12), 20)
    await minute()  # the first bar after the cut streams in; the three before it come over REST
    assert fake.requests[KLINE_PATHS[venue]] == rest_before + 12
    await minute()

    # The bars closed by the test's own steps (a venue's request budget may sleep on the test
    # clock during a round, and a bar closing in that sleep is the next round's).
    end = closes[-1]
    first = end - 7 * MINUTE
    for symbol in symbols:
        stored = await store.read_candles(venue, symbol, start - 30 * MINUTE, end)
        assert len(np.unique(stored["ts_ms"])) == len(stored)
        assert np.all(np.diff(stored["ts_ms"]) == MINUTE)
        assert_candles_exact(stored[stored["ts_ms"] >= first], truth(listed, venue, symbol, first, end), venue)
    assert fake.kline_violations == [] and not source.bad_payloads
    await source.close()
    await listed.stop()


async def test_binance_takes_mark_prices_from_its_stream_and_polls_open_interest_alone(listed: FakeExchange, clock: Clock) -> None:
    fake = listed["binance"]
    source = market_collector(listed, clock, "binance", "top:5")
    await source.refresh_markets()
    slow = source.snapshot_interval_s()
    await source.start()
    await asyncio.wait_for(fake.wait_until(lambda: any(c.marks for c in fake._connections)), 20)
    clock.advance(MINUTE)
    await asyncio.wait_for(source.wait_marks(lambda: len(source.marks) == 300 and source.marks["BTCUSDT"]["state_ms"] == clock.now), 20)
    batch = await source.backfill("BTCUSDT", clock.now - 5 * MINUTE, clock.now)
    assert fake.requests["/fapi/v1/premiumIndex"] == 0 and fake.requests["/fapi/v1/openInterest"] == 1
    assert batch.meta["mark_price"] == fake.market.mark_price("BTCUSDT", clock.now)
    oi = batch.open_interest[-1]
    assert oi["open_interest_usd"] == pytest.approx(fake.market.open_interest_at("BTCUSDT", np.array([clock.now - clock.now % MINUTE]))["open_interest_usd"][0])
    # Half the weight per market while the marks stream: many markets are polled twice as often.
    assert source.state_weight() == 1 and slow == source.snapshot_interval_s()
    source._followed = 2400  # 2,400 weight a pass: two minutes at half of 40 weight/s
    streaming = source.snapshot_interval_s()
    await source.close()
    assert source.state_weight() == 2 and source.snapshot_interval_s() == 2 * streaming


async def test_okx_polls_the_state_of_every_market_with_two_calls_a_round(clock: Clock) -> None:
    listed = FakeExchange(seed=5, instruments=60, clock=clock)
    await listed.start()
    fake = listed["okx"]
    source = market_collector(listed, clock, "okx", "top:40")
    await source.refresh_markets()
    calls = ("/api/v5/public/open-interest", "/api/v5/public/mark-price", "/api/v5/public/funding-rate")
    for expected_funding in (40, 0):  # funding rates hourly, per market
        now = clock.advance(MINUTE)
        before = [fake.requests[path] for path in calls]
        snapshots = {symbol: await source.fetch_snapshot(symbol) for symbol in source.symbols()}
        assert [fake.requests[path] - b for path, b in zip(calls, before, strict=True)] == [1, 1, expected_funding]
        for symbol in ("BTCUSDT", source.symbols()[-1]):
            truth_oi = fake.market.open_interest_at(symbol, np.array([now - now % MINUTE]))["open_interest_usd"][0]
            assert snapshots[symbol].open_interest["open_interest_usd"][0] == pytest.approx(truth_oi, rel=1e-9)
            assert snapshots[symbol].meta["mark_price"] == fake.market.mark_price(symbol, now)
    source._followed = 250  # OKX's whole list: every market every round
    assert source.snapshot_interval_s() == source.settings.collect_interval_s
    await source.close()
    await listed.stop()


async def test_a_bad_kline_message_is_counted_and_skipped_never_buffered(listed: FakeExchange, clock: Clock, venue: str) -> None:
    from service.fakeexchange import formats as fmt

    source = market_collector(listed, clock, venue, "BTCUSDT")
    source.follow(["BTCUSDT"])
    bar = tuple(listed[venue].market.rows("BTCUSDT", clock.now - 2 * MINUTE, clock.now).candles.tolist()[0])
    broken = (bar[0], bar[1], min(bar[1:5]) / 2, *bar[3:])  # high under the open
    message = {"binance": fmt.binance_kline, "bybit": fmt.bybit_kline}.get(venue)

    def text(values: tuple, closed: bool) -> str:
        if message is not None:
            return fmt.dumps(message("BTCUSDT", values, closed, clock.now)).decode()
        return fmt.dumps(fmt.okx_candle("BTC-USDT-SWAP", values, 0.01, closed)).decode()

    assert source.handle_kline_message(text(broken, True)) == 0
    assert source.handle_kline_message("{truncated") == 0
    assert source.handle_kline_message(text(bar, False)) == 0  # in progress: not a bar yet
    assert sum(source.bad_payloads.values()) == 2 and len(source.streamed("BTCUSDT")) == 0
    assert source.handle_kline_message(text(bar, True)) == 1
    assert_candles_exact(source.streamed("BTCUSDT"), truth(listed, venue, "BTCUSDT", bar[0], bar[0] + MINUTE), venue)
    await source.close()


async def test_a_collection_picks_up_listed_and_delisted_markets_without_a_restart(clock: Clock, venue: str, redis: Redis) -> None:
    listed = FakeExchange(seed=5, instruments=12, clock=clock)
    await listed.start()
    fake = listed[venue]
    newcomer, leaving = fake.listed[-1], fake.listed[-2]
    fake.delist(newcomer)
    store = Store(redis)
    source = market_collector(listed, clock, venue, "all", backfill_days=0.02, markets_refresh_s=600.0)
    collection = Collection.queued(store, source.settings, [source], clock=clock)
    await collection.collect_once()
    await asyncio.wait_for(fake.wait_until(lambda: sum(fake.kline_connections()) == 11), 20)
    assert await store.last_candle_ts(venue, newcomer) is None and await store.last_candle_ts(venue, leaving) is not None

    fake.relist(newcomer)
    fake.delist(leaving)
    clock.advance(11 * MINUTE)
    changed = await collection.collect_once()
    assert (venue, newcomer) in changed and (venue, leaving) not in changed
    assert await store.last_candle_ts(venue, newcomer) == clock.now - clock.now % MINUTE - MINUTE  # backfilled on sight
    await asyncio.wait_for(fake.wait_until(lambda: any(newcomer in c.klines for c in fake._connections)), 20)
    assert not any(leaving in c.klines for c in fake._connections) and sum(fake.kline_connections()) == 11
    await source.close()
    await listed.stop()


async def test_bybit_liquidation_topics_of_every_market_are_packed_and_follow_the_list(listed: FakeExchange, clock: Clock) -> None:
    fake = listed["bybit"]
    source = market_collector(listed, clock, "bybit", "all")
    await source.start()  # the stream opens before the list is known, as the collect role does
    await source.refresh_markets()
    topics = lambda: sorted(len(c.topics) for c in fake._connections if c.topics)  # noqa: E731
    await asyncio.wait_for(fake.wait_until(lambda: topics() == [100, 200]), 20)
    gone = fake.listed[0]
    fake.delist(gone)
    await source.refresh_markets(clock.advance(61 * MINUTE))
    await asyncio.wait_for(fake.wait_until(lambda: sum(topics()) == 299), 20)
    assert not any(f"allLiquidation.{gone}" in c.topics for c in fake._connections)
    assert fake.kline_violations == [] and len(topics()) == 2
    await source.close()
