"""Stored series per bucket (service.compute.series) against a slow, obviously correct reference."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from service.compute import series
from service.compute.realized import BucketWindow

MINUTE = 60_000


def _reference(ts: list[int], values: list[float], window: BucketWindow) -> list[tuple[int, float, float, float, float]]:
    out = []
    for k in range(window.count):
        start = window.first_ms + k * window.interval_ms
        inside = [v for t, v in zip(ts, values) if start < t <= start + window.interval_ms]
        if not inside:
            continue
        standing = [v for t, v in zip(ts, values) if t <= start]
        open_ = standing[-1] if standing else inside[0]
        out.append((start, open_, max([open_, *inside]), min([open_, *inside]), inside[-1]))
    return out


@settings(max_examples=200, deadline=None)
@given(
    gaps=st.lists(st.integers(1, 40), min_size=0, max_size=60),
    values=st.lists(st.floats(-1e6, 1e6), min_size=60, max_size=60),
    first=st.integers(0, 30),
    count=st.integers(1, 12),
    width=st.sampled_from([5, 15, 60]),
)
def test_point_ohlc_matches_the_reference(gaps: list[int], values: list[float], first: int, count: int, width: int) -> None:
    ts = list(np.cumsum(gaps) * MINUTE) if gaps else []
    vals = values[: len(ts)]
    window = BucketWindow(first_ms=first * MINUTE, interval_ms=width * MINUTE, count=count)
    got = series.point_ohlc(np.array(ts, dtype=np.int64), np.array(vals), window)
    rows = list(zip(got.time.tolist(), got.open.tolist(), got.high.tolist(), got.low.tolist(), got.close.tolist()))
    assert rows == _reference(ts, vals, window)


def test_summed_starts_where_every_part_has_a_value_and_carries_values_forward() -> None:
    a = (np.array([1, 3, 5]) * MINUTE, np.array([10.0, 11.0, 12.0]))
    b = (np.array([2, 5]) * MINUTE, np.array([100.0, 200.0]))
    ts, total = series.summed([a, b])
    assert ts.tolist() == [2 * MINUTE, 3 * MINUTE, 5 * MINUTE]
    assert total.tolist() == [110.0, 111.0, 212.0]
    empty_ts, empty_total = series.summed([])
    assert len(empty_ts) == len(empty_total) == 0


def test_change_percent_is_against_the_value_standing_that_long_before() -> None:
    ts = np.array([0, 10, 20, 60]) * MINUTE
    values = np.array([100.0, 120.0, 150.0, 180.0])
    assert series.change_percent(ts, values, [30 * MINUTE, 50 * MINUTE, 61 * MINUTE]) == [20.0, 50.0, None]


def test_bars_and_taker_volumes_per_bucket() -> None:
    from service.store.rows import CANDLE_DTYPE

    bars = np.zeros(6, dtype=CANDLE_DTYPE)
    bars["ts_ms"] = np.arange(6) * MINUTE
    bars["open"], bars["close"] = np.arange(6) + 10.0, np.arange(6) + 10.5
    bars["high"], bars["low"] = bars["close"] + 1, bars["open"] - 1
    bars["volume_usd"] = 100.0
    bars["taker_buy_usd"] = [60.0, np.nan, 30.0, 10.0, np.nan, np.nan]
    window = BucketWindow(first_ms=0, interval_ms=3 * MINUTE, count=2)
    ohlc, volume = series.bar_ohlc(bars, window)
    assert ohlc.time.tolist() == [0, 3 * MINUTE] and volume.tolist() == [300.0, 300.0]
    assert (ohlc.open.tolist(), ohlc.close.tolist(), ohlc.high.tolist(), ohlc.low.tolist()) == ([10.0, 13.0], [12.5, 15.5], [13.5, 16.5], [9.0, 12.0])
    time, buy, sell = series.taker_volumes(bars, window)
    assert (time.tolist(), buy.tolist(), sell.tolist()) == ([0, 3 * MINUTE], [90.0, 10.0], [110.0, 90.0])


def test_period_sums_add_the_periods_starting_in_each_bucket() -> None:
    ts = np.array([0, 5, 10, 20, 25]) * MINUTE
    window = BucketWindow(first_ms=0, interval_ms=15 * MINUTE, count=2)
    time, buy, sell = series.period_sums(ts, np.array([1.0, 2, 3, 4, 5]), np.array([10.0, 20, 30, 40, 50]), window)
    assert (time.tolist(), buy.tolist(), sell.tolist()) == ([0, 15 * MINUTE], [6.0, 9.0], [60.0, 90.0])
