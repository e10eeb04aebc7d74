"""Summing venues' series of one coin (engine.aggregate)."""

from __future__ import annotations

import numpy as np
import pytest

from engine.aggregate import aggregate_series
from engine.series import MarketSeries

STEP = 60_000
T0 = 1_780_000_000_000 - 1_780_000_000_000 % STEP


def series(minutes: list[int], price: float, volume: float, oi: list[float], taker_share: float | None = 0.6) -> MarketSeries:
    n = len(minutes)
    close = price + np.arange(n, dtype=np.float64)
    vol = np.full(n, volume)
    return MarketSeries(
        step_ms=STEP,
        ts_ms=T0 + STEP * np.asarray(minutes, dtype=np.int64),
        open=close - 0.5,
        high=close + 1.0,
        low=close - 1.5,
        close=close,
        volume_usd=vol,
        taker_buy_usd=vol * taker_share if taker_share is not None else np.full(n, np.nan),
        open_interest_usd=np.asarray(oi, dtype=np.float64),
    )


def test_volumes_and_open_interest_add_up_and_prices_are_volume_weighted() -> None:
    a = series([0, 1, 2], 100.0, 300.0, [1000.0, 1010.0, 1030.0])
    b = series([0, 1, 2], 104.0, 100.0, [500.0, 490.0, 495.0], taker_share=None)
    out = aggregate_series({"a": a, "b": b})
    s = out.series
    np.testing.assert_array_equal(s.ts_ms, a.ts_ms)
    np.testing.assert_allclose(s.close, (300 * a.close + 100 * b.close) / 400)
    np.testing.assert_allclose(s.volume_usd, [400.0, 400.0, 400.0])
    np.testing.assert_allclose(s.open_interest_usd, [1500.0, 1500.0, 1525.0])
    # Only venue a reports taker flow: its share (0.6) applies to the total.
    np.testing.assert_allclose(s.taker_buy_usd, 0.6 * 400.0)
    s.validate()
    assert np.all(s.low <= np.minimum(s.open, s.close)) and np.all(s.high >= np.maximum(s.open, s.close))


def test_a_venue_joining_late_or_pausing_adds_no_change_of_open_interest() -> None:
    a = series([0, 1, 2, 3, 4], 100.0, 100.0, [1000.0, 1010.0, 1020.0, 1030.0, 1040.0])
    # b starts at minute 2, misses minute 3, and has no open interest at minute 2.
    b = series([2, 4], 100.0, 100.0, [np.nan, 700.0])
    out = aggregate_series({"a": a, "b": b})
    oi = out.series.open_interest_usd
    # b is held at its first observation (700) before it: changes are a's alone.
    np.testing.assert_allclose(np.diff(oi), np.diff(a.open_interest_usd))
    assert oi[-1] == pytest.approx(1040.0 + 700.0)
    # Where only a trades, the price is a's.
    assert out.series.close[3] == a.close[3]
    assert out.coverage["b"].bars == 2
    assert out.coverage["b"].open_interest_from_ms == T0 + 4 * STEP
    assert out.coverage["a"].open_interest_from_ms == T0
    assert out.coverage["a"].first_bar_ms == T0 and out.coverage["b"].first_bar_ms == T0 + 2 * STEP


def test_open_interest_is_missing_until_some_venue_has_it() -> None:
    a = series([0, 1, 2], 100.0, 100.0, [np.nan, np.nan, 1000.0])
    b = series([0, 1, 2], 100.0, 100.0, [np.nan, 400.0, 410.0])
    oi = aggregate_series({"a": a, "b": b}).series.open_interest_usd
    assert np.isnan(oi[0])
    np.testing.assert_allclose(oi[1:], [1400.0, 1410.0])


def test_without_any_volume_prices_are_a_plain_average() -> None:
    a = series([0], 100.0, 0.0, [1.0])
    b = series([0], 110.0, 0.0, [1.0])
    assert aggregate_series({"a": a, "b": b}).series.close[0] == pytest.approx(105.0)


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="no venues"):
        aggregate_series({})
    a = series([0], 100.0, 1.0, [1.0])
    other_step = MarketSeries(**{**{f: getattr(a, f) for f in a.__slots__}, "step_ms": 5 * STEP})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="one step"):
        aggregate_series({"a": a, "b": other_step})
    with pytest.raises(ValueError, match="empty series for b"):
        aggregate_series({"a": a, "b": series([], 1.0, 1.0, [])})
