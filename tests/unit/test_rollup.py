"""Roll-ups: long-range frames built from them equal frames built from the 1m bars, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from engine.build import build_frames
from engine.frame import Frame
from engine.ranges import DAY_MS, MINUTE_MS, RANGES, base_step_ms
from engine.rollup import COMMON_STEP_MS, ROLLUP_STEPS_MS, roll_up
from engine.series import MarketSeries
from tests.unit.market_strategies import make_series

LONG_RANGES = tuple(name for name, spec in RANGES.items() if base_step_ms(spec, MINUTE_MS) != MINUTE_MS)
MODELS = ("model1", "model2", "model3")


def random_walk(days: float, end_ms: int, seed: int = 11, drop: float = 0.01) -> MarketSeries:
    """1m bars ending at ``end_ms`` with volume, taker flow, open interest and a few missing bars."""
    rng = np.random.default_rng(seed)
    n = int(days * DAY_MS // MINUTE_MS)
    ts = end_ms - MINUTE_MS * np.arange(n, 0, -1, dtype=np.int64)
    close = 30_000 * np.exp(np.cumsum(rng.normal(0, 1e-3, n)))
    open_ = np.r_[close[0], close[:-1]]
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 8e-4, n))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 8e-4, n))
    volume = rng.uniform(1e5, 1e7, n)
    oi = 5e8 * np.exp(np.cumsum(rng.normal(0, 6e-4, n)))
    keep = rng.uniform(size=n) > drop
    keep[-1] = True
    series = make_series(ts, open_, high, low, close, oi, volume, volume * rng.uniform(0.2, 0.8, n))
    return series.slice(0, n) if keep.all() else _take(series, np.flatnonzero(keep))


def _take(series: MarketSeries, index: np.ndarray) -> MarketSeries:
    return MarketSeries(series.step_ms, *(getattr(series, name)[index] for name in ("ts_ms", "open", "high", "low", "close", "volume_usd", "taker_buy_usd", "open_interest_usd")))


def until(series: MarketSeries, end_ms: int) -> MarketSeries:
    return series.slice(0, int(np.searchsorted(series.ts_ms, end_ms, side="left")))


def assert_same_frame(a: Frame, b: Frame) -> None:
    assert (a.model, a.range, a.data_until_ms, a.coverage_start_ms) == (b.model, b.range, b.data_until_ms, b.coverage_start_ms)
    for name in ("x_ms", "y", "long_usd", "short_usd"):
        left, right = getattr(a, name), getattr(b, name)
        assert left.dtype == right.dtype and left.shape == right.shape
        assert left.tobytes() == right.tobytes(), name
    for name in ("ts_ms", "open", "high", "low", "close", "volume_usd"):
        assert getattr(a.candles, name).tobytes() == getattr(b.candles, name).tobytes(), name
    assert a.stats == b.stats and a.clusters == b.clusters and a.frame_id == b.frame_id


def test_rollup_steps_are_the_long_ranges_bases() -> None:
    assert set(ROLLUP_STEPS_MS) == {base_step_ms(RANGES[name], MINUTE_MS) for name in LONG_RANGES}
    assert all(step % COMMON_STEP_MS == 0 for step in ROLLUP_STEPS_MS)


@pytest.mark.parametrize("offset_days", [0.0, 0.75])
def test_long_range_frames_from_rollups_equal_frames_from_1m_bars(offset_days: float) -> None:
    """The frame at a day boundary, with roll-ups made from data that goes on after it (as the store keeps them)."""
    boundary = 1_780_012_800_000 - 1_780_012_800_000 % DAY_MS
    series = random_walk(40.0, boundary + int(offset_days * DAY_MS))
    at_boundary = until(series, boundary)
    expected = build_frames(at_boundary, models=MODELS, ranges=LONG_RANGES, exchange="x", symbol="BTCUSDT", generated_at_ms=5, rows=120)
    rollups = roll_up(series)
    got = build_frames(at_boundary.slice(len(at_boundary) - 1, len(at_boundary)), models=MODELS, ranges=LONG_RANGES, exchange="x", symbol="BTCUSDT", generated_at_ms=5, rows=120, rollups=rollups)
    assert len(got) == len(expected) == len(MODELS) * len(LONG_RANGES)
    for a, b in zip(expected, got, strict=True):
        assert_same_frame(a, b)


def test_coverage_starts_at_the_first_input_bar_inside_a_bucket() -> None:
    boundary = 1_780_012_800_000 - 1_780_012_800_000 % DAY_MS
    series = random_walk(3.0, boundary)
    late = series.slice(7, len(series))  # starts 7 minutes into a 10m bucket
    expected = build_frames(late, models=["model1"], ranges=["30d"], exchange="x", symbol="S", generated_at_ms=0, rows=50)[0]
    got = build_frames(late.slice(len(late) - 1, len(late)), models=["model1"], ranges=["30d"], exchange="x", symbol="S", generated_at_ms=0, rows=50, rollups=roll_up(late))[0]
    assert got.coverage_start_ms == int(late.ts_ms[0]) != got.x_ms[0]
    assert_same_frame(expected, got)


def test_only_buckets_that_have_ended_are_rolled_up() -> None:
    end = 1_780_012_800_000 - 1_780_012_800_000 % DAY_MS + 25 * MINUTE_MS  # 25 minutes into a day
    rollups = roll_up(random_walk(1.0, end))
    for step, rollup in rollups.items():
        assert len(rollup)
        assert int(rollup.series.ts_ms[-1]) + step <= end
        assert int(rollup.series.ts_ms[-1]) + 2 * step > end - end % step  # and none that has ended is missing
    with pytest.raises(ValueError, match="made from"):
        roll_up(MarketSeries(300_000, *([np.zeros(1)] * 8)))
