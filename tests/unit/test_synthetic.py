"""The synthetic market: canonical rows, determinism, continuity, and that it behaves like a market."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.store.rows import CANDLE_DTYPE, LIQUIDATION_DTYPE, OPEN_INTEREST_DTYPE, SIDE_LONG, SIDE_SHORT
from service.collect.source import Batch
from service.collect.synthetic import (
    DAY_MS,
    DEFAULT_PROFILES,
    EPOCH_MS,
    MINUTE_MS,
    VENUE_FLAVOURS,
    MarketProfile,
    SyntheticMarket,
    _Simulator,
    ar1,
    synthetic_batch,
    synthetic_series,
)

# A Thursday 00:00 UTC; windows below start a few days earlier, so they cross weekends and midnights.
DAY0 = 1_780_000_000_000 - 1_780_000_000_000 % DAY_MS
WEEK_START = DAY0 - 7 * DAY_MS


@pytest.fixture(scope="module")
def week() -> dict[str, Batch]:
    """Seven days of every default symbol, seed 7."""
    return {symbol: synthetic_batch(WEEK_START, DAY0, symbol) for symbol in DEFAULT_PROFILES}


@pytest.fixture(scope="module", params=[("BTCUSDT", 11), ("SOLUSDT", 5)], ids=lambda p: f"{p[0]}-seed{p[1]}")
def month(request: pytest.FixtureRequest) -> Batch:
    """Thirty days of one market, enough bars for the statistical checks to be sharp."""
    symbol, seed = request.param
    return synthetic_batch(DAY0 - 30 * DAY_MS, DAY0, symbol, seed=seed)


def assert_same(a: Batch, b: Batch) -> None:
    assert a.candles.tobytes() == b.candles.tobytes()
    assert a.open_interest.tobytes() == b.open_interest.tobytes()
    assert a.liquidations.tobytes() == b.liquidations.tobytes()


def concat(*batches: Batch) -> Batch:
    return Batch(
        np.concatenate([b.candles for b in batches]),
        np.concatenate([b.open_interest for b in batches]),
        np.concatenate([b.liquidations for b in batches]),
    )


def log_returns(candles: np.ndarray) -> np.ndarray:
    return np.log(candles["close"] / candles["open"])


# Canonical rows


def test_dtypes_are_exactly_canonical(week: dict[str, Batch]) -> None:
    for batch in week.values():
        assert batch.candles.dtype == CANDLE_DTYPE
        assert batch.open_interest.dtype == OPEN_INTEREST_DTYPE
        assert batch.liquidations.dtype == LIQUIDATION_DTYPE


@pytest.mark.parametrize("symbol", list(DEFAULT_PROFILES))
def test_candle_invariants(week: dict[str, Batch], symbol: str) -> None:
    c = week[symbol].candles
    assert len(c) == 7 * 1440
    assert c["ts_ms"][0] == WEEK_START
    assert np.all(c["ts_ms"] % MINUTE_MS == 0)
    assert np.all(np.diff(c["ts_ms"]) == MINUTE_MS)
    # Exact equality, across midnights too: the next bar opens where the last closed.
    assert np.array_equal(c["open"][1:], c["close"][:-1])
    assert np.all(c["high"] >= np.maximum(c["open"], c["close"]))
    assert np.all(c["low"] <= np.minimum(c["open"], c["close"]))
    assert np.all(c["low"] > 0)
    assert np.all(c["volume_usd"] > 0)
    assert np.all((c["taker_buy_usd"] >= 0) & (c["taker_buy_usd"] <= c["volume_usd"]))
    assert np.all(np.isfinite(c["taker_buy_usd"]))


@pytest.mark.parametrize("symbol", list(DEFAULT_PROFILES))
def test_scales_match_the_profile(week: dict[str, Batch], symbol: str) -> None:
    profile = DEFAULT_PROFILES[symbol]
    close = week[symbol].candles["close"]
    oi = week[symbol].open_interest["open_interest_usd"]
    assert 0.6 < np.median(close) / profile.base_price < 1.6
    assert 0.5 < np.median(oi) / profile.open_interest_usd < 2.0
    assert np.all(oi > 0)


def test_open_interest_has_one_row_per_bar(week: dict[str, Batch]) -> None:
    for batch in week.values():
        assert np.array_equal(batch.open_interest["ts_ms"], batch.candles["ts_ms"] + 60_000)


def test_liquidations_lie_inside_their_bar(week: dict[str, Batch]) -> None:
    for batch in week.values():
        c, liq = batch.candles, batch.liquidations
        assert len(liq) > 1000
        assert np.all(np.diff(liq["ts_ms"]) >= 0)
        bar = (liq["ts_ms"] - c["ts_ms"][0]) // MINUTE_MS
        assert np.all((bar >= 0) & (bar < len(c)))
        assert np.all(c["ts_ms"][bar] <= liq["ts_ms"]) and np.all(liq["ts_ms"] < c["ts_ms"][bar] + MINUTE_MS)
        assert np.all((liq["price"] >= c["low"][bar]) & (liq["price"] <= c["high"][bar]))
        assert set(np.unique(liq["side"])) == {SIDE_LONG, SIDE_SHORT}
        assert np.all(liq["quantity"] > 0)
        np.testing.assert_allclose(liq["usd"], liq["quantity"] * liq["price"], rtol=1e-12)


# Determinism and chunking


def test_same_seed_same_rows_and_different_seed_different() -> None:
    a = synthetic_batch(DAY0 - DAY_MS, DAY0, "ETHUSDT", seed=5)
    assert_same(a, synthetic_batch(DAY0 - DAY_MS, DAY0, "ETHUSDT", seed=5))
    other = synthetic_batch(DAY0 - DAY_MS, DAY0, "ETHUSDT", seed=6)
    assert not np.array_equal(a.candles["close"], other.candles["close"])
    assert not np.array_equal(a.open_interest["open_interest_usd"], other.open_interest["open_interest_usd"])


def test_symbols_are_distinct_markets() -> None:
    btc = synthetic_batch(DAY0 - DAY_MS, DAY0, "BTCUSDT", profile=100.0)
    eth = synthetic_batch(DAY0 - DAY_MS, DAY0, "ETHUSDT", profile=100.0)
    assert np.corrcoef(log_returns(btc.candles), log_returns(eth.candles))[0, 1] < 0.2


@settings(max_examples=15, deadline=None)
@given(
    split=st.integers(1, 3 * 1440 - 1),
    offset_ms=st.integers(0, MINUTE_MS - 1),
)
def test_chunking_does_not_change_the_path(split: int, offset_ms: int) -> None:
    start, end = DAY0 - 2 * DAY_MS, DAY0 + DAY_MS
    whole = SyntheticMarket(seed=3).rows("SOLUSDT", start, end)
    # An unaligned split point: the bar it falls in closes before the first part's end, so it belongs there.
    middle = start + split * MINUTE_MS - offset_ms
    market = SyntheticMarket(seed=3)
    parts = concat(market.rows("SOLUSDT", start, middle + MINUTE_MS - 1), market.rows("SOLUSDT", middle, end))
    assert_same(whole, parts)


def test_days_do_not_depend_on_what_was_generated_before() -> None:
    fresh = SyntheticMarket(seed=3).rows("BTCUSDT", DAY0, DAY0 + DAY_MS)
    market = SyntheticMarket(seed=3, cache_days=1)
    market.rows("BTCUSDT", DAY0 - 40 * DAY_MS, DAY0 - 35 * DAY_MS)
    market.rows("BTCUSDT", DAY0 + 3 * DAY_MS, DAY0 + 4 * DAY_MS)
    assert_same(fresh, market.rows("BTCUSDT", DAY0, DAY0 + DAY_MS))


def test_unaligned_bounds_return_only_whole_closed_bars() -> None:
    batch = SyntheticMarket().rows("BTCUSDT", DAY0 + 1, DAY0 + 10 * MINUTE_MS + 59_999)
    assert batch.candles["ts_ms"][0] == DAY0 + MINUTE_MS
    assert batch.candles["ts_ms"][-1] == DAY0 + 9 * MINUTE_MS
    assert batch.liquidations["ts_ms"].min() >= DAY0 + MINUTE_MS
    assert batch.liquidations["ts_ms"].max() < DAY0 + 10 * MINUTE_MS


def test_before_the_epoch_is_refused_and_unknown_symbols_named() -> None:
    market = SyntheticMarket()
    with pytest.raises(ValueError, match="starts at"):
        market.rows("BTCUSDT", EPOCH_MS - MINUTE_MS, EPOCH_MS + MINUTE_MS)
    with pytest.raises(KeyError, match="DOGEUSDT"):
        market.rows("DOGEUSDT", DAY0, DAY0 + MINUTE_MS)
    assert len(market.rows("BTCUSDT", EPOCH_MS, EPOCH_MS + MINUTE_MS).candles) == 1


# The MarketSource protocol


async def test_poll_continues_backfill_without_gap_or_duplicate() -> None:
    market = SyntheticMarket(seed=9)
    now = DAY0 + 5 * MINUTE_MS + 30_000  # inside the bar opening at +5 min, not yet closed
    backfill = await market.backfill("ETHUSDT", DAY0 - DAY_MS, now)
    assert backfill.candles["ts_ms"][-1] == DAY0 + 4 * MINUTE_MS

    assert not await market.poll("ETHUSDT", now)
    assert not await market.poll("ETHUSDT", now + 29_999)
    one = await market.poll("ETHUSDT", now + 30_000)
    assert one.candles["ts_ms"].tolist() == [DAY0 + 5 * MINUTE_MS]
    assert not await market.poll("ETHUSDT", now + 30_000)

    later = now + 30_000 + 3 * DAY_MS  # across midnights
    rest = await market.poll("ETHUSDT", later)
    assert rest.candles["ts_ms"][-1] + MINUTE_MS <= later
    collected = concat(backfill, one, rest)
    assert_same(collected, synthetic_batch(DAY0 - DAY_MS, later, "ETHUSDT", seed=9))


async def test_backfilling_older_history_does_not_rewind_polls() -> None:
    market = SyntheticMarket()
    await market.backfill("SOLUSDT", DAY0 - DAY_MS, DAY0)
    await market.poll("SOLUSDT", DAY0 + 10 * MINUTE_MS)
    older = await market.backfill("SOLUSDT", DAY0 - 3 * DAY_MS, DAY0 - 2 * DAY_MS)
    assert len(older.candles) == 1440
    assert not await market.poll("SOLUSDT", DAY0 + 10 * MINUTE_MS)
    next_bar = await market.poll("SOLUSDT", DAY0 + 11 * MINUTE_MS)
    assert next_bar.candles["ts_ms"].tolist() == [DAY0 + 10 * MINUTE_MS]


async def test_first_poll_without_backfill_returns_the_last_closed_bar() -> None:
    market = SyntheticMarket()
    batch = await market.poll("BTCUSDT", DAY0 + 90_000)
    assert batch.candles["ts_ms"].tolist() == [DAY0]
    assert batch.open_interest["ts_ms"].tolist() == [DAY0 + 60_000]


async def test_backfill_is_the_same_rows_as_the_pure_helpers() -> None:
    market = SyntheticMarket(symbols={"BTCUSDT": 77_000.0})
    assert market.symbols() == ["BTCUSDT"]
    assert market.exchange == "synthetic" and market.step_ms == MINUTE_MS
    batch = await market.backfill("BTCUSDT", DAY0, DAY0 + DAY_MS)
    assert_same(batch, synthetic_batch(DAY0, DAY0 + DAY_MS, "BTCUSDT"))
    columns = synthetic_series(DAY0, DAY0 + DAY_MS, "BTCUSDT")
    assert np.array_equal(columns["close"], batch.candles["close"])
    assert np.array_equal(columns["open_interest_usd"], batch.open_interest["open_interest_usd"])
    assert set(columns) == {*CANDLE_DTYPE.names, "open_interest_usd"}


def test_default_symbols_and_custom_profiles() -> None:
    assert SyntheticMarket().symbols() == ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
    market = SyntheticMarket(symbols={"XYZUSDT": 2.0, "ETHUSDT": MarketProfile(1_000.0, 1e9, 0.02)})
    assert market.profile("XYZUSDT").base_price == 2.0
    assert market.profile("ETHUSDT").open_interest_usd == 1e9
    close = market.rows("XYZUSDT", DAY0, DAY0 + DAY_MS).candles["close"]
    assert 1.0 < np.median(close) < 4.0


# It behaves like a market


def test_volatility_clusters(month: Batch) -> None:
    r = log_returns(month.candles)
    magnitude = np.abs(r - r.mean())
    autocorrelation = [np.corrcoef(magnitude[:-lag], magnitude[lag:])[0, 1] for lag in range(1, 11)]
    assert min(autocorrelation) > 0.1, autocorrelation
    # Directions stay close to unpredictable (cascades aside, whose bars all go one way).
    sign = np.sign(r)
    assert abs(np.corrcoef(sign[:-1], sign[1:])[0, 1]) < 0.05


def test_short_term_volatility_carries_over_midnight() -> None:
    # Internal, but the one place where days meet: each day rebuilds its volatility state
    # from the previous day's shocks, so it must pick up where that day left off.
    simulator = _Simulator(7, "BTCUSDT", DEFAULT_PROFILES["BTCUSDT"])
    first_day = (WEEK_START - EPOCH_MS) // DAY_MS
    paths = [simulator._log_vol(day, simulator._cascades(day)) for day in range(first_day, first_day + 15)]
    at_midnight = np.array([later[0] - earlier[-1] for earlier, later in zip(paths, paths[1:], strict=False)])
    within_day = np.concatenate([np.diff(path) for path in paths])
    assert np.abs(at_midnight).mean() < 2 * np.abs(within_day).mean()


def test_returns_have_fat_tails(month: Batch) -> None:
    r = log_returns(month.candles)
    kurtosis = np.mean((r - r.mean()) ** 4) / np.var(r) ** 2
    assert kurtosis > 6


def test_open_interest_flushes_in_violent_bars_and_builds_in_quiet_ones(month: Batch) -> None:
    r = log_returns(month.candles)
    oi_change = np.diff(np.log(month.open_interest["open_interest_usd"]))
    r = r[1:]
    violent = np.abs(r) >= np.quantile(np.abs(r), 0.995)
    quiet = np.abs(r) <= np.quantile(np.abs(r), 0.5)
    assert oi_change[violent].mean() < -0.002
    assert oi_change[quiet].mean() > 0
    # The sharpest down bars all shed open interest.
    crashes = r <= np.quantile(r, 0.001)
    assert np.all(oi_change[crashes] < 0)


def liquidation_usd_per_bar(batch: Batch, side: int) -> np.ndarray:
    liq = batch.liquidations[batch.liquidations["side"] == side]
    bar = (liq["ts_ms"] - batch.candles["ts_ms"][0]) // MINUTE_MS
    return np.bincount(bar, weights=liq["usd"], minlength=len(batch.candles))


def test_liquidation_sides_follow_the_move(month: Batch) -> None:
    r = log_returns(month.candles)
    long_usd = liquidation_usd_per_bar(month, SIDE_LONG)
    short_usd = liquidation_usd_per_bar(month, SIDE_SHORT)
    down = r <= np.quantile(r, 0.002)
    up = r >= np.quantile(r, 0.998)
    assert long_usd[down].sum() > 5 * short_usd[down].sum()
    assert short_usd[up].sum() > 5 * long_usd[up].sum()
    assert np.mean(long_usd[down] > short_usd[down]) > 0.75
    # Cascades dwarf the background: the top 1 % of bars carry most of the liquidated notional.
    total = long_usd + short_usd
    assert np.sort(total)[-len(total) // 100 :].sum() > 0.5 * total.sum()
    # Yet liquidations trickle in most hours.
    hourly = total.reshape(-1, 60).sum(axis=1)
    assert np.mean(hourly > 0) > 0.9


def test_taker_buys_lean_with_the_bar(month: Batch) -> None:
    c = month.candles
    share = c["taker_buy_usd"] / c["volume_usd"]
    r = log_returns(c)
    assert share[r > 0].mean() > 0.55 > 0.45 > share[r < 0].mean()


def test_volume_rises_with_the_move(month: Batch) -> None:
    c = month.candles
    r = np.abs(log_returns(c))
    assert np.median(c["volume_usd"][r >= np.quantile(r, 0.99)]) > 3 * np.median(c["volume_usd"])


# The vectorised AR(1) against its definition


@settings(max_examples=30, deadline=None)
@given(
    noise=st.lists(st.floats(-5, 5), min_size=1, max_size=3000),
    decay=st.floats(0.5, 0.9999),
    start=st.floats(-3, 3),
)
def test_ar1_matches_the_recursion(noise: list[float], decay: float, start: float) -> None:
    expected = []
    state = start
    for value in noise:
        state = decay * state + value
        expected.append(state)
    np.testing.assert_allclose(ar1(np.array(noise), decay, start), expected, rtol=1e-9, atol=1e-9)


# venues, funding and account ratios ---------------------------------------------------------


@pytest.fixture(scope="module")
def venues() -> dict[str, Batch]:
    """Two days of BTCUSDT as each demo venue sees it (one seed), and the whole market."""
    out = {venue: SyntheticMarket(7, exchange=venue, venue=venue).rows("BTCUSDT", DAY0 - 2 * DAY_MS, DAY0) for venue in VENUE_FLAVOURS}
    out["whole"] = synthetic_batch(DAY0 - 2 * DAY_MS, DAY0, "BTCUSDT")
    return out


def test_venues_trade_at_about_one_price_with_their_own_flows(venues: dict[str, Batch]) -> None:
    whole = venues["whole"]
    venues = {name: batch for name, batch in venues.items() if name != "whole"}
    closes = np.array([batch.candles["close"] for batch in venues.values()])
    assert np.all(np.abs(closes / whole.candles["close"] - 1) < 1e-3)  # a few basis points of basis
    assert len({batch.candles["close"][-1] for batch in venues.values()}) == len(venues)  # but not one price
    open_interest = np.array([batch.open_interest["open_interest_usd"] for batch in venues.values()])
    share = open_interest.sum(axis=0) / whole.open_interest["open_interest_usd"]
    assert 0.9 < share.min() and share.max() < 1.1  # the venues' shares make about the whole
    sizes = {venue: float(batch.liquidations["usd"].sum()) for venue, batch in venues.items()}
    assert sizes["binance"] > sizes["bybit"] > sizes["okx"] > 0
    times = [set(batch.liquidations["ts_ms"].tolist()) for batch in venues.values()]
    assert len(times[0] & times[1]) < 0.1 * len(times[0])  # their own events, not copies


def test_funding_and_account_ratios_are_per_bar_and_per_period(venues: dict[str, Batch]) -> None:
    for batch in venues.values():
        assert np.array_equal(batch.funding["ts_ms"], batch.candles["ts_ms"] + MINUTE_MS)
        assert np.all(np.abs(batch.funding["funding_rate"]) < 0.001)
        assert np.ptp(batch.funding["funding_rate"]) > 0
        ratio = batch.long_short
        assert len(ratio) == 2 * 288 and np.all(ratio["ts_ms"] % (5 * MINUTE_MS) == 0)
        assert np.allclose(ratio["long_account"] + ratio["short_account"], 1.0)
        assert np.all((ratio["long_account"] > 0.05) & (ratio["long_account"] < 0.95))
    # The crowd fades the move: the long share falls where the funding (the price's excursion) rises.
    whole = venues["whole"]
    at_period_end = np.isin(whole.funding["ts_ms"], whole.long_short["ts_ms"])
    assert np.corrcoef(whole.funding["funding_rate"][at_period_end], whole.long_short["long_account"])[0, 1] < -0.9


def test_chunking_keeps_funding_and_ratios() -> None:
    market = SyntheticMarket(3, exchange="okx", venue="okx")
    split = DAY0 - DAY_MS // 3 + 7 * MINUTE_MS
    parts = [market.rows("ETHUSDT", DAY0 - DAY_MS, split), market.rows("ETHUSDT", split, DAY0)]
    whole = market.rows("ETHUSDT", DAY0 - DAY_MS, DAY0)
    assert np.array_equal(np.concatenate([p.funding for p in parts]), whole.funding)
    assert np.array_equal(np.concatenate([p.long_short for p in parts]), whole.long_short)
