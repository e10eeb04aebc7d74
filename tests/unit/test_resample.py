"""Resampling bars and the as-of join of open interest, against plain loops."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.resample import aggregate_bars, align_open_interest, resample
from engine.series import MarketSeries

STEP_MS = 60_000
EXAMPLES = settings(max_examples=80, deadline=None)


@st.composite
def bar_series(draw, max_bars: int = 60) -> MarketSeries:
    n = draw(st.integers(0, max_bars))
    gaps = draw(st.lists(st.integers(1, 7), min_size=n, max_size=n))
    ts = (draw(st.integers(-1_000, 100_000)) + np.cumsum(gaps, dtype=np.int64)) * STEP_MS
    floats = st.floats(1.0, 1e5)

    def column(elements=floats):
        return np.asarray(draw(st.lists(elements, min_size=n, max_size=n)), dtype=np.float64)

    low = column()
    high = low + column(st.floats(0.0, 100.0))
    taker = column(st.one_of(st.floats(0.0, 1e6), st.just(math.nan)))
    oi = column(st.one_of(st.floats(0.0, 1e9), st.just(math.nan)))
    return MarketSeries(
        step_ms=STEP_MS,
        ts_ms=ts.astype(np.int64),
        open=column(),
        high=high,
        low=low,
        close=column(),
        volume_usd=column(st.floats(0.0, 1e6)),
        taker_buy_usd=taker,
        open_interest_usd=oi,
    )


def grouped_by_loop(series: MarketSeries, step_ms: int) -> dict[int, list[int]]:
    groups: dict[int, list[int]] = {}
    for i, ts in enumerate(series.ts_ms.tolist()):
        groups.setdefault(math.floor(ts / step_ms) * step_ms, []).append(i)
    return groups


@EXAMPLES
@given(series=bar_series(), factor=st.integers(1, 12))
def test_resample_matches_a_plain_grouping(series, factor):
    step_ms = factor * STEP_MS
    out = resample(series, step_ms)
    groups = grouped_by_loop(series, step_ms)
    assert out.step_ms == step_ms
    assert out.ts_ms.tolist() == sorted(groups)
    out.validate()
    for b, (start, members) in enumerate(sorted(groups.items())):
        assert out.open[b] == series.open[members[0]]
        assert out.close[b] == series.close[members[-1]]
        assert out.high[b] == max(series.high[i] for i in members)
        assert out.low[b] == min(series.low[i] for i in members)
        assert out.volume_usd[b] == pytest.approx(sum(series.volume_usd[i] for i in members))
        np.testing.assert_equal(out.open_interest_usd[b], series.open_interest_usd[members[-1]])
        takers = [series.taker_buy_usd[i] for i in members]
        if any(math.isnan(v) for v in takers):
            assert math.isnan(out.taker_buy_usd[b])
        else:
            assert out.taker_buy_usd[b] == pytest.approx(sum(takers))


@EXAMPLES
@given(series=bar_series(), factor=st.integers(2, 12))
def test_resample_keeps_volume_and_extremes(series, factor):
    out = resample(series, factor * STEP_MS)
    assert len(out) <= len(series)
    assert out.volume_usd.sum() == pytest.approx(series.volume_usd.sum())
    if len(series):
        assert out.high.max() == series.high.max()
        assert out.low.min() == series.low.min()
        assert np.all(out.ts_ms % (factor * STEP_MS) == 0)


@pytest.mark.parametrize("step_ms", [0, -STEP_MS, 90_000, 30_000])
def test_resample_refuses_steps_that_are_not_multiples(step_ms):
    series = MarketSeries(STEP_MS, *([np.zeros(1, dtype=np.int64)] + [np.ones(1)] * 7))
    with pytest.raises(ValueError, match="multiple"):
        resample(series, step_ms)


def test_aggregate_bars_accepts_any_bucket():
    # 60s bars into 90s buckets: bars at 0 and 60s share bucket 0, 120s opens bucket 90s.
    series = MarketSeries(
        STEP_MS,
        np.array([0, 60_000, 120_000], dtype=np.int64),
        np.array([1.0, 2.0, 3.0]),
        np.array([5.0, 6.0, 7.0]),
        np.array([0.5, 0.4, 0.3]),
        np.array([1.5, 2.5, 3.5]),
        np.array([10.0, 20.0, 30.0]),
        np.array([1.0, 2.0, 3.0]),
        np.array([100.0, 200.0, 300.0]),
    )
    out = aggregate_bars(series, 90_000)
    assert out.ts_ms.tolist() == [0, 90_000]
    assert out.open.tolist() == [1.0, 3.0]
    assert out.high.tolist() == [6.0, 7.0]
    assert out.low.tolist() == [0.4, 0.3]
    assert out.close.tolist() == [2.5, 3.5]
    assert out.volume_usd.tolist() == [30.0, 30.0]
    assert out.open_interest_usd.tolist() == [200.0, 300.0]


def as_of_by_loop(close_ms, oi_ts, oi_usd):
    out = []
    for close in close_ms:
        best_ts, best = None, math.nan
        for ts, value in zip(oi_ts, oi_usd):
            if math.isfinite(value) and ts <= close and (best_ts is None or ts >= best_ts):
                best_ts, best = ts, value
        out.append(best)
    return out


@EXAMPLES
@given(
    candle_steps=st.lists(st.integers(1, 4), min_size=0, max_size=30),
    observations=st.lists(
        st.tuples(st.integers(-5, 150), st.one_of(st.floats(0.0, 1e9), st.just(math.nan))), max_size=30
    ),
)
def test_align_open_interest_is_an_as_of_join(candle_steps, observations):
    close_ms = (np.cumsum(candle_steps, dtype=np.int64) * STEP_MS).astype(np.int64)
    oi_ts = [t * 30_000 for t, _ in observations]
    oi_usd = [v for _, v in observations]
    aligned = align_open_interest(close_ms, oi_ts, oi_usd)
    assert aligned.dtype == np.float64 and aligned.shape == close_ms.shape
    np.testing.assert_equal(aligned, as_of_by_loop(close_ms.tolist(), oi_ts, oi_usd))


def test_align_open_interest_takes_the_observation_at_the_close():
    open_ms = np.array([0, 60_000, 120_000, 300_000])
    # Observations at 60s and 125s. Bars close at 60s (takes the 60s value),
    # 120s (still it), 180s and 360s (the 125s value).
    aligned = align_open_interest(open_ms + STEP_MS, [125_000, 60_000], [2.0, 1.0])
    assert aligned.tolist() == [1.0, 1.0, 2.0, 2.0]
    assert math.isnan(align_open_interest(open_ms + STEP_MS, [400_000], [1.0])[0])


def test_align_open_interest_refuses_mismatched_observations():
    with pytest.raises(ValueError, match="one length"):
        align_open_interest([0, 60_000], [0, 1], [1.0])
