"""build_frame: window and column alignment, candles, stats, agreement with the reference, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import RANGES, build_frame, kernels
from engine.build import base_step_ms, frame_stats
from engine.frame import Frame
from engine.grid import DISPLAY_REACH, display_grid
from engine.models import get_model
from engine.percentiles import cell_stats, positive_percentiles
from engine.ranges import DAY_MS, HOUR_MS, MINUTE_MS
from engine.series import MarketSeries
from reference_models import reference_model1

GENERATED_AT = 1_700_000_000_000


def synthetic_series(
    n: int,
    step_ms: int,
    *,
    start_ms: int = 1_699_000_000_000,
    seed: int = 0,
    gap: tuple[int, int] | None = None,
) -> MarketSeries:
    """Random-walk bars; ``gap=(i, bars)`` removes ``bars`` bars after bar ``i``."""
    rng = np.random.default_rng(seed)
    ts = (start_ms // step_ms) * step_ms + np.arange(n, dtype=np.int64) * step_ms
    if gap is not None:
        at, bars = gap
        ts[at:] += bars * step_ms
    close = 30_000 * np.exp(np.cumsum(rng.normal(0, 0.002, n)))
    open_ = np.concatenate((close[:1], close[:-1]))
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 0.001, n)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 0.001, n)))
    oi = 1e9 * np.cumprod(1 + rng.normal(0, 0.002, n))
    volume = rng.uniform(1e5, 1e6, n)
    return MarketSeries(step_ms, ts, open_, high, low, close, volume, volume / 2, oi)


def build(series: MarketSeries, range_name: str, **kwargs) -> Frame:
    options = {"model": "model1", "exchange": "binance", "symbol": "BTCUSDT", "generated_at_ms": GENERATED_AT}
    options.update(kwargs)
    return build_frame(series, range_name=range_name, **options)


def series_for(range_name: str) -> MarketSeries:
    spec = RANGES[range_name]
    if spec.span_ms <= 7 * DAY_MS:
        # 1m bars a little longer than the range, with a 3h hole in the middle.
        n = spec.span_ms // MINUTE_MS + 120
        return synthetic_series(n - 180, MINUTE_MS, start_ms=1_699_000_123_000, gap=(n // 2, 180))
    if range_name == "30d":
        # 5m bars: resampled to a 10m base.
        return synthetic_series(spec.span_ms // (5 * MINUTE_MS) + 50, 5 * MINUTE_MS)
    # Hourly bars for 20 days: shorter than the range.
    return synthetic_series(20 * 24, HOUR_MS)


def candles_by_loop(series: MarketSeries, x_ms: np.ndarray, column_ms: int) -> dict[int, dict[str, float]]:
    columns: dict[int, dict[str, float]] = {}
    for i in range(len(series)):
        column = (int(series.ts_ms[i]) - int(x_ms[0])) // column_ms
        if not 0 <= column < len(x_ms):
            continue
        if column not in columns:
            columns[column] = {
                "open": series.open[i],
                "high": series.high[i],
                "low": series.low[i],
                "close": series.close[i],
                "volume_usd": 0.0,
            }
        candle = columns[column]
        candle["high"] = max(candle["high"], series.high[i])
        candle["low"] = min(candle["low"], series.low[i])
        candle["close"] = series.close[i]
        candle["volume_usd"] += series.volume_usd[i]
    return columns


def assert_stats_match_arrays(frame: Frame) -> None:
    stats = frame.stats
    combined = frame.long_usd.astype(np.float64) + frame.short_usd.astype(np.float64)
    assert stats.total_long_usd == pytest.approx(float(frame.long_usd[-1].sum(dtype=np.float64)))
    assert stats.total_short_usd == pytest.approx(float(frame.short_usd[-1].sum(dtype=np.float64)))
    assert stats.max_long_usd == float(frame.long_usd.max())
    assert stats.max_short_usd == float(frame.short_usd.max())
    assert stats.max_cell_usd == pytest.approx(combined.max())
    # Percentiles are of the float32 cells long + short, as a picture shows them.
    cells = frame.long_usd + frame.short_usd
    non_zero = np.sort(cells[cells > 0])
    if non_zero.size:
        assert non_zero[0] <= stats.percentiles["p50"] <= stats.percentiles["p90"] <= stats.percentiles["p99"]
        assert stats.percentiles["p99"] <= stats.max_cell_usd
        # p50 splits the non-zero cells in half.
        assert np.mean(non_zero <= stats.percentiles["p50"]) >= 0.5
        assert np.mean(non_zero >= stats.percentiles["p50"]) >= 0.5
    else:
        assert stats.percentiles == {"p50": 0.0, "p90": 0.0, "p99": 0.0}


@pytest.mark.parametrize("range_name", list(RANGES))
def test_frame_layout_for_every_range(range_name):
    spec = RANGES[range_name]
    series = series_for(range_name)
    rows = 64
    frame = build(series, range_name, rows=rows)
    model = get_model("model1")

    assert (frame.model, frame.model_version, frame.params_hash) == ("model1", model.version, model.params_hash)
    assert (frame.range, frame.exchange, frame.symbol, frame.generated_at_ms) == (
        range_name,
        "binance",
        "BTCUSDT",
        GENERATED_AT,
    )

    x = frame.x_ms
    assert x.shape == (spec.columns,) and x.dtype == np.int64
    assert np.all(x % spec.column_ms == 0) and np.all(np.diff(x) == spec.column_ms)
    last_ts = int(series.ts_ms[-1])
    assert x[-1] <= last_ts < x[-1] + spec.column_ms
    assert frame.data_until_ms == last_ts + series.step_ms
    in_window = series.ts_ms[series.ts_ms >= x[0]]
    assert frame.coverage_start_ms == int(in_window[0])

    assert frame.y.shape == (rows,) and np.all(np.diff(frame.y) > 0)
    half_row = (frame.y[1] - frame.y[0]) / 2
    window = series.slice(len(series) - len(in_window), len(series))
    # The display range: the traded range plus DISPLAY_REACH, not the 5x tier's reach.
    assert frame.y[0] - half_row <= window.low.min() * (1 - DISPLAY_REACH)
    assert frame.y[-1] + half_row >= window.high.max() * (1 + DISPLAY_REACH)
    assert frame.y[0] - half_row > window.low.min() * model.reach[0]

    for side in (frame.long_usd, frame.short_usd):
        assert side.shape == (spec.columns, rows) and side.dtype == np.float32
        assert np.all(np.isfinite(side)) and np.all(side >= 0)
    assert frame.long_usd.any() and frame.short_usd.any()
    before_data = x + spec.column_ms <= frame.coverage_start_ms
    assert not frame.long_usd[before_data].any() and not frame.short_usd[before_data].any()

    expected = candles_by_loop(series, x, spec.column_ms)
    candles = frame.candles
    assert np.array_equal(candles.ts_ms, x)
    for column in range(spec.columns):
        if column in expected:
            for name, value in expected[column].items():
                assert getattr(candles, name)[column] == pytest.approx(value), (column, name)
        else:
            for name in ("open", "high", "low", "close", "volume_usd"):
                assert math.isnan(getattr(candles, name)[column])
            if column > 0:
                # No bars: the book stands as it was.
                assert np.array_equal(frame.long_usd[column], frame.long_usd[column - 1])
                assert np.array_equal(frame.short_usd[column], frame.short_usd[column - 1])
    if spec.span_ms <= 7 * DAY_MS:
        assert len(expected) < spec.columns  # the 3h hole is inside the window

    assert_stats_match_arrays(frame)
    # The 5x tier (~20 % away) opens beyond the grid: accounted for, not drawn.
    assert frame.stats.out_of_grid_usd > 0 and frame.stats.beyond_long_usd > 0 and frame.stats.beyond_short_usd > 0
    assert frame.leverage == "all" and frame.tiers == model.tiers and frame.sources is None


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 200),
    seed=st.integers(0, 2**32 - 1),
    gap=st.tuples(st.integers(0, 200), st.integers(0, 40)),
    rows=st.integers(2, 60),
    nan_oi=st.booleans(),
)
def test_frame_matches_the_reference_on_its_window(n, seed, gap, rows, nan_oi):
    series = synthetic_series(n, 5 * MINUTE_MS, seed=seed, gap=gap)
    if nan_oi:
        series.open_interest_usd[::3] = np.nan
    frame = build(series, "12h", rows=rows)
    spec = RANGES["12h"]

    first = int(np.searchsorted(series.ts_ms, frame.x_ms[0]))
    window = series.slice(first, len(series))
    grid = display_grid(float(window.low.min()), float(window.high.max()), rows=rows)
    expected = reference_model1(window, grid, frame.x_ms, spec.column_ms)

    np.testing.assert_array_equal(frame.y, grid.centres)
    scale = max(float(np.nansum(np.abs(np.diff(window.open_interest_usd)))), 1.0)
    np.testing.assert_allclose(frame.long_usd, expected.long_usd, rtol=1e-6, atol=1e-9 * scale)
    np.testing.assert_allclose(frame.short_usd, expected.short_usd, rtol=1e-6, atol=1e-9 * scale)
    assert frame.stats.out_of_grid_usd == pytest.approx(expected.out_of_grid_usd, rel=1e-9, abs=1e-6)
    assert frame.coverage_start_ms == int(window.ts_ms[0])
    assert_stats_match_arrays(frame)


def test_frame_id_depends_on_data_not_on_when_it_was_built():
    series = synthetic_series(300, 5 * MINUTE_MS)
    first = build(series, "24h", generated_at_ms=1)
    again = build(series, "24h", generated_at_ms=2)
    assert first.frame_id == again.frame_id
    assert np.array_equal(first.long_usd, again.long_usd)
    later = build(series.slice(0, 299), "24h")
    assert later.frame_id != first.frame_id


@pytest.mark.parametrize(
    ("range_name", "series_step", "expected"),
    [
        ("12h", MINUTE_MS, MINUTE_MS),
        ("7d", MINUTE_MS, MINUTE_MS),
        ("30d", MINUTE_MS, 10 * MINUTE_MS),  # 2h / 12
        ("90d", MINUTE_MS, 30 * MINUTE_MS),  # 6h / 12
        ("180d", MINUTE_MS, HOUR_MS),  # 12h / 12
        ("1y", MINUTE_MS, 2 * HOUR_MS),  # 1d / 12
        ("30d", 5 * MINUTE_MS, 10 * MINUTE_MS),
        ("30d", HOUR_MS, HOUR_MS),  # already coarser than 10m
        ("1y", 7 * MINUTE_MS, 7 * MINUTE_MS),  # no multiple of 7m divides 1d
    ],
)
def test_base_step(range_name, series_step, expected):
    assert base_step_ms(RANGES[range_name], series_step) == expected


def test_nan_open_interest_opens_and_closes_nothing():
    series = synthetic_series(100, 5 * MINUTE_MS)
    series.open_interest_usd[:] = np.nan
    frame = build(series, "12h", rows=40)
    assert not frame.long_usd.any() and not frame.short_usd.any()
    assert frame.stats.max_cell_usd == 0.0


def test_frame_stats_of_an_empty_book():
    zeros = np.zeros((3, 4), dtype=np.float32)
    stats = frame_stats(zeros, zeros)
    assert stats.total_long_usd == stats.max_cell_usd == 0.0
    assert stats.percentiles == {"p50": 0.0, "p90": 0.0, "p99": 0.0}


def test_unknown_range_lists_the_allowed_ones():
    with pytest.raises(ValueError) as caught:
        build(synthetic_series(10, MINUTE_MS), "2d")
    for name in RANGES:
        assert name in str(caught.value)


def test_unknown_model_lists_the_allowed_ones():
    with pytest.raises(ValueError, match="model1"):
        build(synthetic_series(10, MINUTE_MS), "24h", model="model7")


def test_empty_series_is_refused():
    with pytest.raises(ValueError, match="empty"):
        build(synthetic_series(0, MINUTE_MS), "24h")


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [("close", math.nan, "finite and positive"), ("low", -1.0, "finite and positive"), ("open_interest_usd", -5.0, "negative")],
)
def test_bad_values_in_the_window_are_refused(column, value, message):
    series = synthetic_series(50, MINUTE_MS)
    getattr(series, column)[-3] = value
    with pytest.raises(ValueError, match=message):
        build(series, "24h")


def test_bad_values_before_the_window_are_ignored():
    series = synthetic_series(2 * 24 * 60, MINUTE_MS)
    series.close[0] = math.nan
    frame = build(series, "24h", rows=20)
    assert frame.coverage_start_ms > int(series.ts_ms[0])


def test_malformed_series_is_refused():
    series = synthetic_series(50, MINUTE_MS)
    shuffled = MarketSeries(
        series.step_ms,
        series.ts_ms[::-1].copy(),
        series.open,
        series.high,
        series.low,
        series.close,
        series.volume_usd,
        series.taker_buy_usd,
        series.open_interest_usd,
    )
    with pytest.raises(ValueError, match="increasing"):
        build(shuffled, "24h")
    with pytest.raises(ValueError, match="rows"):
        build(series, "24h", rows=1)


@pytest.mark.skipif(not kernels.HAVE_NUMBA, reason="numba not installed")
@settings(max_examples=60, deadline=None)
@given(
    cells=st.lists(st.one_of(st.just(0.0), st.floats(0.5, 2.0**40, width=32)), min_size=1, max_size=300),
    percentiles=st.lists(st.floats(0.0, 100.0), min_size=1, max_size=4),
)
def test_radix_select_percentiles_equal_numpy(cells, percentiles):
    values = np.asarray(cells, dtype=np.float32)
    other = np.roll(values, 1)
    fast = cell_stats(values, other, percentiles, use_numba=True)
    slow = cell_stats(values, other, percentiles, use_numba=False)
    assert (fast.max_long, fast.max_short, fast.max_cell) == (slow.max_long, slow.max_short, slow.max_cell)
    fast, slow = fast.percentiles, slow.percentiles
    assert positive_percentiles(values, percentiles) == pytest.approx(np.percentile(values[values > 0], percentiles) if (values > 0).any() else None)
    if slow is None:
        assert fast is None
    else:
        np.testing.assert_allclose(fast, slow, rtol=1e-12)
