"""Each venue's collector against the fake exchange, storing into a real Redis-protocol server."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from redis.asyncio import Redis

from engine.models.margin import shipped_binance_table
from service.fakeexchange.market import FUNDING_RATE
from service.store.chunks import LONG_SHORT, TAKER
from service.store.rows import LIQUIDATION_DTYPE
from service.collect.backfill import backfill_market
from service.collect.venues.binance_brackets import default_tiers
from service.store.tiers import META_FIELD, META_SOURCE_FIELD, decode
from service.collect.venues.base import ExchangeCollector
from service.fakeexchange import FakeExchange, Fault
from service.store.writer import Store
from tests.collect.conftest import MINUTE, NOW_MS, Clock, assert_candles_exact, collector_settings, truth, venue_collector

pytestmark = pytest.mark.integration

HOURS_3 = 3 * 60 * MINUTE
START = (NOW_MS - HOURS_3) // (5 * MINUTE) * 5 * MINUTE  # a 5-minute boundary about three hours back
BARS = (NOW_MS - NOW_MS % MINUTE - START) // MINUTE
# Where the venue's open-interest history lives and which endpoint each poll part calls.
KLINES = {"binance": "/fapi/v1/klines", "bybit": "/v5/market/kline", "okx": "candles"}
SNAPSHOT = {"binance": "/fapi/v1/openInterest", "bybit": "/v5/market/tickers", "okx": "/api/v5/public/open-interest"}


def collector(fake: FakeExchange, clock: Clock, venue: str, **extra: object) -> ExchangeCollector:
    return venue_collector(venue, collector_settings(fake, **extra), clock)


async def test_backfill_stores_exactly_the_venues_history_and_a_second_run_changes_nothing(
    fake: FakeExchange, clock: Clock, venue: str, redis: Redis
) -> None:
    store = Store(redis)
    source = collector(fake, clock, venue)
    first = await backfill_market(store, source, "BTCUSDT", START, NOW_MS, out=None)
    candles = await store.read_candles(venue, "BTCUSDT")
    assert_candles_exact(candles, truth(fake, venue, "BTCUSDT", START, NOW_MS), venue)
    assert first.candles == BARS

    # Open interest: the venue's 5-minute history, in USD, stamped at each observation.
    oi = await store.read_open_interest(venue, "BTCUSDT")
    expected_ts = np.arange(START, NOW_MS, 5 * MINUTE)
    assert oi["ts_ms"].tolist() == expected_ts.tolist()
    expected = fake[venue].market.open_interest_at("BTCUSDT", expected_ts)["open_interest_usd"]
    np.testing.assert_allclose(oi["open_interest_usd"], expected, rtol=1e-12)

    # The venue's public account ratio: its 5-minute periods, as shares of accounts long and short.
    ratios = await store.read_rows(LONG_SHORT, venue, "BTCUSDT")
    expected_ratios = fake[venue].market.long_short_at("BTCUSDT", START, NOW_MS - 1)
    assert len(ratios) == len(expected_ratios) > 30
    assert ratios["ts_ms"].tolist() == expected_ratios["ts_ms"].tolist()
    np.testing.assert_allclose(ratios["long_account"], expected_ratios["long_account"], rtol=1e-9)  # OKX: from its ratio alone
    np.testing.assert_allclose(ratios["short_account"], expected_ratios["short_account"], rtol=1e-9)

    # Taker volumes: OKX's candles do not split them, so its 5-minute taker volume is stored instead.
    taker = await store.read_rows(TAKER, venue, "BTCUSDT")
    if venue == "okx":
        expected_taker = fake[venue].market.taker_at("BTCUSDT", START, NOW_MS - NOW_MS % (5 * MINUTE) - 5 * MINUTE)
        assert taker["ts_ms"].tolist() == expected_taker["ts_ms"].tolist() and len(taker) > 30
        np.testing.assert_allclose(taker["buy_usd"], expected_taker["buy_usd"], rtol=1e-12)
        np.testing.assert_allclose(taker["sell_usd"], expected_taker["sell_usd"], rtol=1e-12)
    else:
        assert len(taker) == 0

    requests_before = sum(fake[venue].requests.values())
    keys_before = {key: await redis.dump(key) for key in await redis.keys("*")}
    again = await backfill_market(store, source, "BTCUSDT", START, NOW_MS, out=None)
    assert again.skipped == again.chunks == 1
    assert sum(fake[venue].requests.values()) == requests_before  # complete chunks are not fetched again
    assert {key: await redis.dump(key) for key in await redis.keys("*")} == keys_before
    await source.close()


async def test_polls_add_new_closed_bars_and_current_open_interest(fake: FakeExchange, clock: Clock, venue: str) -> None:
    source = collector(fake, clock, venue)
    batch = await source.backfill("BTCUSDT", NOW_MS - 30 * MINUTE, NOW_MS)
    last_bar = int(batch.candles["ts_ms"][-1])
    assert last_bar + MINUTE <= NOW_MS < last_bar + 2 * MINUTE
    assert {"mark_price", "funding_rate", "mm_tiers", "mm_tiers_source"} <= set(batch.meta)

    now = clock.advance(3 * MINUTE)
    polled = await source.poll("BTCUSDT", now)
    assert_candles_exact(polled.candles, truth(fake, venue, "BTCUSDT", last_bar + MINUTE, now), venue)
    assert len(polled.candles) == 3
    [(observed_ms, usd)] = polled.open_interest.tolist()
    assert observed_ms == now
    expected = fake[venue].market.open_interest_at("BTCUSDT", np.array([now - now % MINUTE]))["open_interest_usd"][0]
    assert usd == pytest.approx(expected, rel=1e-12)
    # The funding rate the venue shows, stamped with the snapshot; the account ratio of the period that ended.
    assert polled.funding.tolist() == [(now, pytest.approx(FUNDING_RATE))]
    assert len(polled.long_short) == 0  # no period has ended since the backfill
    # Nothing new, nothing returned.
    again = await source.poll("BTCUSDT", now)
    assert len(again.candles) == 0 and len(again.long_short) == 0
    later = clock.advance(2 * MINUTE)
    crossed = await source.poll("BTCUSDT", later)
    expected = fake[venue].market.long_short_at("BTCUSDT", later - later % (5 * MINUTE), later)
    assert crossed.long_short["ts_ms"].tolist() == [later - later % (5 * MINUTE)] == expected["ts_ms"].tolist()
    np.testing.assert_allclose(crossed.long_short["long_account"], expected["long_account"], rtol=1e-9)
    if venue == "okx":
        ended = later - later % (5 * MINUTE) - 5 * MINUTE
        assert crossed.taker["ts_ms"].tolist() == [ended]
        np.testing.assert_allclose(crossed.taker["buy_usd"], fake[venue].market.taker_at("BTCUSDT", ended, ended)["buy_usd"], rtol=1e-12)
    else:
        assert len(crossed.taker) == 0
    assert not source.errors
    await source.close()


@pytest.mark.parametrize(
    "fault",
    [
        Fault("status", 429, retry_after_s=0.3),
        Fault("status", 418, retry_after_s=0.3),
        Fault("status", 403, retry_after_s=0.3),
        Fault("venue_code"),
        Fault("html", 502),
        Fault("html", 200),
        Fault("truncated"),
        Fault("wrong_types"),
        Fault("status", 503, retry_after_s=None),
    ],
    ids=lambda f: f"{f.kind}-{f.status}",
)
async def test_a_failed_call_loses_nothing_and_the_next_poll_recovers(fake: FakeExchange, clock: Clock, venue: str, fault: Fault) -> None:
    source = collector(fake, clock, venue)
    source.rate_code_backoff_s = 0.3  # type: ignore[attr-defined]
    await source.backfill("BTCUSDT", NOW_MS - 10 * MINUTE, NOW_MS)
    first_new = NOW_MS - NOW_MS % MINUTE

    now = clock.advance(2 * MINUTE)
    fault.path = KLINES[venue]
    fake[venue].inject(fault)
    polled = await source.poll("BTCUSDT", now)
    assert len(polled.candles) == 0  # nothing half-written
    assert sum(source.errors.values()) >= 1
    malformed = fault.kind in ("truncated", "wrong_types") or (fault.kind == "html" and fault.status == 200)
    assert sum(source.bad_payloads.values()) == int(malformed)
    limited = fault.kind == "venue_code" or (fault.kind == "status" and fault.status in (429, 418, 403))
    assert (source.http.blocked_for_s() > 0) == limited
    if limited:
        # While backing off, no call reaches the venue.
        calls = sum(fake[venue].requests.values())
        assert len((await source.poll("BTCUSDT", now)).candles) == 0
        assert sum(fake[venue].requests.values()) == calls

    # A minute later (on the collector's clock, the fake exchange's) the back-off is over.
    now = clock.advance(MINUTE)
    assert source.http.blocked_for_s() == 0
    recovered = await source.poll("BTCUSDT", now)
    assert_candles_exact(recovered.candles, truth(fake, venue, "BTCUSDT", first_new, now), venue)
    assert len(recovered.candles) == 3
    await source.close()


async def test_a_venue_that_is_down_then_back_is_caught_up_with_open_interest_for_the_gap(
    fake: FakeExchange, clock: Clock, venue: str
) -> None:
    source = collector(fake, clock, venue)
    await source.backfill("BTCUSDT", NOW_MS - 10 * MINUTE, NOW_MS)
    first_new = NOW_MS - NOW_MS % MINUTE
    await fake[venue].stop()
    down = await source.poll("BTCUSDT", clock.advance(5 * MINUTE))
    assert not down and source.errors  # refused connections are counted, nothing raised

    await fake[venue].start()
    now = clock.advance(15 * MINUTE)
    back = await source.poll("BTCUSDT", now)
    assert_candles_exact(back.candles, truth(fake, venue, "BTCUSDT", first_new, now), venue)
    # The outage is longer than gap_fill_after_ms: its open interest comes from the history endpoint.
    history = back.open_interest[back.open_interest["ts_ms"] % (5 * MINUTE) == 0]
    assert len(history) >= 3
    await source.close()


def events(fake: FakeExchange, venue: str, symbol: str, count: int) -> np.ndarray:
    rows = fake[venue].market.liquidations(symbol, NOW_MS - 6 * 3_600_000, NOW_MS)
    assert len(rows) >= count
    return rows[:count]


def as_stored(rows: np.ndarray, venue: str, fake: FakeExchange, symbol: str) -> np.ndarray:
    """What the collector should derive from events the fake sent (OKX sizes pass through contracts)."""
    out = rows.copy()
    if venue == "okx":
        ct_val = fake[venue].market.contract_value(symbol)
        out["quantity"] = np.array([float(repr(q / ct_val)) for q in rows["quantity"].tolist()]) * ct_val
    out["usd"] = out["price"] * out["quantity"]
    return np.sort(out, order=["ts_ms", "side", "price", "quantity"])


async def test_streamed_liquidations_are_stored_once_each_despite_duplicates_disorder_noise_and_a_cut(
    fake: FakeExchange, clock: Clock, venue: str, redis: Redis
) -> None:
    store = Store(redis)
    source = collector(fake, clock, venue)
    await source.start(store.add_liquidations)
    venue_fake = fake[venue]
    await venue_fake.wait_subscribed(1)
    first, second = events(fake, venue, "BTCUSDT", 30)[:15], events(fake, venue, "BTCUSDT", 30)[15:]
    eth = events(fake, venue, "ETHUSDT", 5)

    await venue_fake.send_raw('{"this is": "not a venue message"}')
    await venue_fake.send_raw("{truncated")
    if venue == "binance":
        await venue_fake.push("BTCUSDT", first[:3], coin_margined=True)  # COIN-M: contracts, ignored
    await venue_fake.push("BTCUSDT", first, duplicate=True, shuffle=True)
    await venue_fake.push("ETHUSDT", eth)
    await asyncio.wait_for(source.wait_stored(20), 10)

    # The venue cuts the stream mid-way; the collector reconnects and resubscribes.
    venue_fake.drop_after(4)
    await venue_fake.push("BTCUSDT", second, duplicate=True, shuffle=True)
    await asyncio.wait_for(venue_fake.wait_subscribed(2), 10)
    await asyncio.wait_for(source.wait_stored(35), 10)

    stored = await store.read_liquidations(venue, "BTCUSDT")
    expected = as_stored(np.concatenate([first, second]), venue, fake, "BTCUSDT")
    got = np.sort(stored, order=["ts_ms", "side", "price", "quantity"])
    assert got["ts_ms"].tolist() == expected["ts_ms"].tolist()
    assert got["side"].tolist() == expected["side"].tolist()
    np.testing.assert_array_equal(got["price"], expected["price"])
    np.testing.assert_allclose(got["quantity"], expected["quantity"], rtol=1e-12)
    np.testing.assert_allclose(got["usd"], expected["usd"], rtol=1e-12)
    assert len(await store.read_liquidations(venue, "ETHUSDT")) == 5
    assert sum(source.bad_payloads.values()) == 2
    assert source.liquidations.stats.stored == 35
    assert source.feed is not None and source.feed.stats.connects >= 2
    await source.close()
    assert stored.dtype == LIQUIDATION_DTYPE


async def test_under_a_random_garbage_scenario_every_bar_arrives_exactly_once(fake: FakeExchange, clock: Clock, venue: str) -> None:
    from service.fakeexchange.server import SCENARIOS

    source = collector(fake, clock, venue)
    await source.backfill("BTCUSDT", NOW_MS - 5 * MINUTE, NOW_MS)
    first_new = NOW_MS - NOW_MS % MINUTE
    fake[venue].scenario = SCENARIOS["garbage"]
    parts = [(await source.poll("BTCUSDT", clock.advance(MINUTE))).candles for _ in range(12)]
    fake[venue].scenario = SCENARIOS["normal"]
    parts.append((await source.poll("BTCUSDT", clock.now)).candles)
    got = np.concatenate(parts)
    assert_candles_exact(got, truth(fake, venue, "BTCUSDT", first_new, clock.now), venue)
    assert sum(source.errors.values()) > 0
    await source.close()


@pytest.mark.parametrize("venue", ["bybit", "okx"])
async def test_the_stream_is_kept_alive_with_the_venues_application_ping(fake: FakeExchange, clock: Clock, venue: str) -> None:
    source = collector(fake, clock, venue, ws_ping_interval_s=0.05)
    await source.start()
    await asyncio.wait_for(fake[venue].wait_until(lambda: fake[venue].pings >= 3), 10)
    # The venue's pongs are not liquidations, nor bad payloads.
    assert not source.bad_payloads and source.liquidations.stats.received == 0
    await source.close()


async def test_binance_falls_back_to_the_dated_shipped_table_when_its_web_brackets_refuse(fake: FakeExchange, clock: Clock) -> None:
    fake["binance"].inject(Fault("html", 403, path="brackets"))
    source = collector(fake, clock, "binance")
    batch = await source.backfill("ETHUSDT", NOW_MS - 30 * MINUTE, NOW_MS)
    assert batch.meta[META_SOURCE_FIELD] == shipped_binance_table("ETHUSDT").source
    assert "as of" in batch.meta[META_SOURCE_FIELD] and decode(batch.meta[META_FIELD]) == default_tiers("ETHUSDT")
    await source.close()
