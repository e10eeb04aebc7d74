"""model4: against its slow reference, entries from the open interest's own readings, a book anchored to open interest, the market's margin table."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from engine import kernels
from engine.build import build_frame, run_model
from engine.grid import display_grid, price_grid
from engine.models import MODELS, get_model, model4_spec
from engine.models.common import OPEN_INTEREST_CADENCES_MS, open_interest_readings, open_interest_step_ms, open_interest_steps
from engine.models.margin import MarginTable, shipped_binance_table
from engine.models.model4 import REFERENCE_VOLATILITY, Model4Params, tier_columns
from engine.series import MarketSeries
from market_strategies import STEP_MS, coarse_open_interest, make_series, margin_tables, markets, model4_params
from reference_models import reference_cadence, reference_model4

HOUR_MS = 3_600_000
IMPLEMENTATIONS = [True, False] if kernels.HAVE_NUMBA else [False]


def reference_for(series, grid, starts, column_ms, params: Model4Params, table: MarginTable):
    return reference_model4(
        series,
        grid,
        starts,
        column_ms,
        leverages=params.leverages,
        weights=params.weights,
        brackets=table.brackets,
        min_position=params.min_position_usd,
        points=params.size_points,
        turnover_rate=params.turnover_rate,
        turnover_per_hour_unknown=params.turnover_per_hour_unknown,
        leveraged_share=params.leveraged_share,
        volatility_exponent=params.volatility_exponent,
        volatility_half_life_hours=params.volatility_half_life_hours,
        max_volatility_factor=params.max_volatility_factor,
        reference_volatility=REFERENCE_VOLATILITY,
        cadences_ms=OPEN_INTEREST_CADENCES_MS,
    )


@st.composite
def model4_markets(draw) -> MarketSeries:
    series = draw(markets(flow=True))
    return draw(coarse_open_interest(series)) if draw(st.booleans()) else series


@pytest.mark.parametrize("use_numba", IMPLEMENTATIONS)
@settings(max_examples=40, deadline=None)
@given(series=model4_markets(), params=model4_params(), table=margin_tables(), rows=st.integers(5, 60), column_steps=st.integers(1, 4), narrow=st.booleans())
def test_model4_matches_the_reference(series, params, table, rows, column_steps, narrow, use_numba):
    column_ms = column_steps * STEP_MS
    starts = np.arange((int(series.ts_ms[0]) // column_ms - 1) * column_ms, (int(series.ts_ms[-1]) // column_ms + 1) * column_ms, column_ms, dtype=np.int64)
    reach = params.reach(table)
    low, high = float(series.low.min()), float(series.high.max())
    grid = display_grid(low, high, rows=rows) if narrow else price_grid(low, high, rows=rows, reach=reach)
    assert_matches_reference(series, params, table, grid, starts, column_ms, use_numba)


def assert_matches_reference(series, params, table, grid, starts, column_ms, use_numba):
    fast = run_model(series, model4_spec(params), grid, starts, column_ms, use_numba=use_numba, margin_table=table)
    slow = reference_for(series, grid, starts, column_ms, params, table)
    assert open_interest_step_ms(series) == reference_cadence(series, OPEN_INTEREST_CADENCES_MS)
    scale = float(np.nanmax(series.open_interest_usd, initial=1.0)) * 10
    for name in ("long_usd", "short_usd", "consumed_long_usd", "consumed_short_usd", "final_long_usd", "final_short_usd"):
        np.testing.assert_allclose(getattr(fast, name), getattr(slow, name), rtol=1e-6, atol=1e-9 * scale, err_msg=name)
    assert fast.beyond_long_usd == pytest.approx(slow.beyond_long_usd, rel=1e-6, abs=1e-9 * scale)
    assert fast.beyond_short_usd == pytest.approx(slow.beyond_short_usd, rel=1e-6, abs=1e-9 * scale)


@pytest.mark.parametrize("use_numba", IMPLEMENTATIONS)
@pytest.mark.parametrize("kind", ["interpolated", "carried"])
def test_model4_matches_the_reference_on_a_feed_read_every_5_bars(kind, use_numba):
    rng = np.random.default_rng(11)
    n = 90
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.004, n)))
    open_ = np.concatenate(([100.0], close[:-1]))
    readings = 1e8 * np.cumprod(1 + rng.normal(0, 0.05, n // 5 + 2))
    bar_close = (np.arange(n) + 1) * STEP_MS
    times = np.arange(len(readings)) * 5 * STEP_MS
    oi = np.interp(bar_close, times, readings) if kind == "interpolated" else readings[bar_close // (5 * STEP_MS)]
    volume = np.where(rng.uniform(size=n) < 0.1, np.nan, rng.uniform(1e5, 1e7, n))
    series = make_series(np.arange(n) * STEP_MS, open_, np.maximum(open_, close) * 1.002, np.minimum(open_, close) * 0.998, close, oi, volume=volume)
    assert open_interest_step_ms(series) == 5 * STEP_MS
    params = Model4Params(leverages=(10.0, 25.0, 100.0), weights=(0.2, 0.5, 0.3), turnover_rate=4.0, leveraged_share=0.02)
    table = shipped_binance_table("ETHUSDT")
    grid = price_grid(float(series.low.min()), float(series.high.max()), rows=120, reach=params.reach(table))
    starts = np.arange(0, n * STEP_MS, 10 * STEP_MS, dtype=np.int64)
    assert_matches_reference(series, params, table, grid, starts, 10 * STEP_MS, use_numba)


def hourly(open_interest, volume=None, hours=None) -> MarketSeries:
    n = len(open_interest)
    ts = np.arange(n, dtype=np.int64) * HOUR_MS if hours is None else np.asarray(hours, dtype=np.int64) * HOUR_MS
    close = 100.0 * (1 + 0.01 * np.sin(np.arange(n)))
    series = make_series(ts, close, close * 1.002, close * 0.998, close, open_interest, volume=volume)
    return MarketSeries(HOUR_MS, *[getattr(series, name) for name in ("ts_ms", "open", "high", "low", "close", "volume_usd", "taker_buy_usd", "open_interest_usd")])


READINGS = np.array([1.0e9, 1.2e9, 1.1e9, 1.4e9, 1.4e9, 1.3e9])


def four_hourly(kind: str) -> np.ndarray:
    """Hourly bars' open interest (at each bar's close) from readings every 4h, the way feeds deliver it."""
    close_hours = np.arange(1, 21)
    if kind == "interpolated":
        return np.interp(close_hours, np.arange(0, 24, 4), READINGS)
    return READINGS[close_hours // 4]


def test_the_readings_cadence_is_found_for_interpolated_and_carried_feeds():
    for kind in ("interpolated", "carried"):
        assert open_interest_step_ms(hourly(four_hourly(kind))) == 4 * HOUR_MS
    rng = np.random.default_rng(1)
    assert open_interest_step_ms(hourly(1e9 * (1 + rng.uniform(0, 0.1, 20)))) == HOUR_MS
    assert open_interest_step_ms(hourly(np.full(20, 1e9))) == HOUR_MS  # nothing says it is coarser
    # A value off the line by more than rounding: the feed is hourly after all.
    broken = four_hourly("interpolated")
    broken[5] += 1e3
    assert open_interest_step_ms(hourly(broken)) == HOUR_MS


def test_a_steps_rise_opens_over_its_bars_by_volume_and_a_fall_shrinks_evenly():
    volume = np.tile([1.0, 2.0, 3.0, 4.0], 5)
    readings = open_interest_readings(hourly(four_hourly("interpolated"), volume=volume))
    assert readings.cadence_ms == 4 * HOUR_MS
    # The bars closing at 9..12h form the step from the 8h reading (1.1e9) to the 12h one (1.4e9).
    rise = readings.new_usd[8:12]
    np.testing.assert_allclose(rise, 0.3e9 * volume[8:12] / volume[8:12].sum())
    np.testing.assert_allclose(readings.level_usd[8:12], 1.1e9)
    # The step from 1.2e9 (4h) to 1.1e9 (8h) shrinks the book over its four bars, a fourth root each.
    np.testing.assert_allclose(readings.scale[4:8], (1.1 / 1.2) ** 0.25)
    assert np.all(readings.new_usd[4:8] == 0)
    # With the bar width as cadence the readings are the per-bar steps every model used so far.
    rng = np.random.default_rng(2)
    per_bar = hourly(1e9 * (1 + rng.uniform(0, 0.1, 20)), volume=np.ones(20))
    new_usd, scale = open_interest_steps(per_bar.open_interest_usd)
    readings = open_interest_readings(per_bar)
    np.testing.assert_allclose(readings.new_usd, new_usd)
    np.testing.assert_allclose(readings.scale, scale)


@settings(max_examples=30, deadline=None)
@given(series=markets(flow=True, min_bars=20), params=model4_params(), cadence_bars=st.sampled_from([5, 15]), moves=st.lists(st.floats(-0.2, 0.2), min_size=20, max_size=20))
def test_entries_come_from_the_readings_not_from_values_smeared_between_them(series, params, cadence_bars, moves):
    # One feed of readings, delivered to consecutive bars interpolated or carried forward.
    cadence = cadence_bars * STEP_MS
    series = make_series(STEP_MS * (7 + np.arange(len(series))), series.open, series.high, series.low, series.close, series.open_interest_usd, series.volume_usd)
    close = series.ts_ms + series.step_ms
    times = (int(close[0]) // cadence) * cadence + cadence * np.arange(len(moves))
    readings = 1e8 * np.cumprod(1.0 + np.asarray(moves))
    at_reading = close % cadence == 0
    assume(times[-1] >= close[-1] and at_reading.sum() >= 2)
    feeds = [np.interp(close, times, readings), readings[np.searchsorted(times, close, side="right") - 1]]
    interpolated, carried = (make_series(series.ts_ms, series.open, series.high, series.low, series.close, oi, series.volume_usd) for oi in feeds)
    assume(open_interest_step_ms(interpolated) == open_interest_step_ms(carried) == cadence)
    grid = price_grid(float(series.low.min()), float(series.high.max()), rows=50, reach=params.reach(shipped_binance_table()))
    last = np.asarray([series.ts_ms[-1]])
    runs = [run_model(s, model4_spec(params), grid, last, STEP_MS) for s in (interpolated, carried)]
    # Up to the last reading: a step cut short by the end of the data has no reading yet.
    upto = int(np.flatnonzero(at_reading)[-1]) + 1
    np.testing.assert_allclose(runs[0].consumed_long_usd[:upto], runs[1].consumed_long_usd[:upto], rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(runs[0].consumed_short_usd[:upto], runs[1].consumed_short_usd[:upto], rtol=1e-9, atol=1e-6)
    assert np.any(feeds[0] != feeds[1])


def test_the_book_settles_at_the_leveraged_share_of_open_interest():
    # Flat market: nothing is crossed, open interest and volume constant.
    n = 400
    ts = np.arange(n, dtype=np.int64) * STEP_MS
    price = np.full(n, 100.0)
    params = Model4Params(leverages=(10.0, 25.0), weights=(0.5, 0.5), turnover_rate=2.0, leveraged_share=0.05, volatility_exponent=1.0, max_volatility_factor=10.0)
    series = make_series(ts, price, price * 1.0001, price * 0.9999, price, np.full(n, 1e9), volume=np.full(n, 5e7))
    grid = price_grid(99.0, 101.0, rows=400, reach=params.reach(shipped_binance_table()))
    run = run_model(series, model4_spec(params), grid, np.asarray([ts[-1]]), STEP_MS)
    sigma = np.log(1.0001 / 0.9999) / np.sqrt(4 * np.log(2) / 60)  # per √hour of 1m bars
    share = 0.05 * min(REFERENCE_VOLATILITY / sigma, 10.0)
    book = run.final_long_usd.sum() + run.beyond_long_usd
    assert run.consumed_long_usd.sum() == 0 and book == pytest.approx(share * 1e9, rel=1e-3)
    assert run.final_short_usd.sum() + run.beyond_short_usd == pytest.approx(book)


def test_frames_of_model4_record_the_margin_table_they_used_and_follow_it():
    rng = np.random.default_rng(4)
    n = 600
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.002, n)))
    open_ = np.concatenate(([100.0], close[:-1]))
    series = make_series(np.arange(n) * STEP_MS, open_, np.maximum(open_, close) * 1.001, np.minimum(open_, close) * 0.999, close, 1e8 * (1 + 0.01 * np.sin(np.arange(n) / 7)), volume=np.full(n, 1e6))
    options = {"model": "model4", "range_name": "12h", "exchange": "okx", "symbol": "SOLUSDT", "generated_at_ms": 0, "rows": 200}
    default = build_frame(series, **options)
    assert default.margin_table == {"source": shipped_binance_table("SOLUSDT").source, "brackets": shipped_binance_table("SOLUSDT").to_json()}
    venue = MarginTable(((50_000.0, 0.02, 20.0), (1e7, 0.05, 10.0)), "okx position-tiers")
    own = build_frame(series, margin_table=venue, **options)
    assert own.margin_table == {"source": "okx position-tiers", "brackets": venue.to_json()}
    assert own.frame_id == default.frame_id and not np.array_equal(own.long_usd, default.long_usd)
    # Models whose tiers are their parameters ignore a market's table: old versions compute the same frames.
    for name in ("model1", "model2", "model3"):
        plain = build_frame(series, **{**options, "model": name})
        with_table = build_frame(series, margin_table=venue, **{**options, "model": name})
        assert plain.margin_table is None and with_table.margin_table is None
        np.testing.assert_array_equal(plain.long_usd, with_table.long_usd)
        np.testing.assert_array_equal(plain.short_usd, with_table.short_usd)
        assert plain.stats == with_table.stats


@settings(max_examples=30, deadline=None)
@given(series=markets(flow=True), params=model4_params())
def test_without_open_interest_model4_opens_nothing(series, params):
    unknown = make_series(series.ts_ms, series.open, series.high, series.low, series.close, np.full(len(series), np.nan), series.volume_usd)
    grid = display_grid(float(series.low.min()), float(series.high.max()), rows=40)
    run = run_model(unknown, model4_spec(params), grid, np.asarray([series.ts_ms[-1]]), STEP_MS)
    assert not run.long_usd.any() and not run.short_usd.any() and run.beyond_long_usd == run.beyond_short_usd == 0.0


def test_a_tier_above_the_markets_highest_leverage_opens_at_the_highest():
    table = MarginTable(((1e5, 0.01, 50.0), (1e7, 0.02, 20.0)))
    high, capped = (tier_columns(leverages, table, 1_000.0, 2) for leverages in ((125.0,), (50.0,)))
    np.testing.assert_array_equal(high[0], capped[0])
    np.testing.assert_array_equal(high[1], capped[1])


def test_model4_is_registered_with_the_markets_table_and_refuses_bad_parameters():
    spec = get_model("model4")
    assert spec.takes_margin_table and not MODELS["model3"].takes_margin_table
    assert spec.metadata()["margin_table"] == "the market's"
    btc = shipped_binance_table("BTCUSDT")
    assert spec.reach_under(btc) == spec.margin_reach(btc) != MODELS["model3"].reach_under(btc) == MODELS["model3"].reach
    with pytest.raises(ValueError, match="turnover_rate must be a positive number"):
        Model4Params(turnover_rate=0.0)
    with pytest.raises(ValueError, match="volatility_exponent must be at least 0"):
        Model4Params(volatility_exponent=-1.0)
