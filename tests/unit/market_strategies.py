"""Hypothesis strategies shared by the engine tests: random markets and model parameters."""

from __future__ import annotations

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

from engine.models.margin import BINANCE_BTCUSDT, MarginTable
from engine.models.model1 import Model1Params
from engine.models.model2 import Model2Params
from engine.models.model3 import Model3Params
from engine.models.model4 import Model4Params
from engine.series import MarketSeries

STEP_MS = 60_000


def make_series(ts_ms, open_, high, low, close, open_interest, volume=None, taker_buy=None) -> MarketSeries:
    n = len(ts_ms)
    return MarketSeries(
        step_ms=STEP_MS,
        ts_ms=np.asarray(ts_ms, dtype=np.int64),
        open=np.asarray(open_, dtype=np.float64),
        high=np.asarray(high, dtype=np.float64),
        low=np.asarray(low, dtype=np.float64),
        close=np.asarray(close, dtype=np.float64),
        volume_usd=np.ones(n) if volume is None else np.asarray(volume, dtype=np.float64),
        taker_buy_usd=np.full(n, np.nan) if taker_buy is None else np.asarray(taker_buy, dtype=np.float64),
        open_interest_usd=np.asarray(open_interest, dtype=np.float64),
    )


@st.composite
def markets(draw, min_bars: int = 1, max_bars: int = 40, oi_moves=None, flow: bool = False) -> MarketSeries:
    """Random-walk bars with gaps, wicks, and open interest that rises, falls and has holes.

    With ``flow``, bars carry volume and taker buying (unknown or zero-volume on some).
    """
    n = draw(st.integers(min_bars, max_bars))
    gaps = draw(st.lists(st.integers(1, 3), min_size=n, max_size=n))
    ts = (draw(st.integers(0, 10_000)) + np.cumsum(gaps)) * STEP_MS
    returns = draw(st.lists(st.floats(-0.05, 0.05), min_size=n, max_size=n))
    close = 100.0 * np.exp(np.cumsum(returns))
    open_ = np.concatenate(([close[0] / np.exp(returns[0])], close[:-1]))
    wick_up = np.asarray(draw(st.lists(st.floats(0.0, 0.03), min_size=n, max_size=n)))
    wick_down = np.asarray(draw(st.lists(st.floats(0.0, 0.03), min_size=n, max_size=n)))
    high = np.maximum(open_, close) * (1.0 + wick_up)
    low = np.minimum(open_, close) * (1.0 - wick_down)
    if oi_moves is None:
        oi_moves = st.floats(-0.3, 0.3)
    moves = draw(st.lists(oi_moves, min_size=n, max_size=n))
    oi = draw(st.floats(1e3, 1e9)) * np.cumprod(1.0 + np.asarray(moves))
    holes = np.asarray(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    if draw(st.booleans()):
        oi = np.where(holes & (np.arange(n) % 4 == 1), np.nan, oi)
    if not flow:
        return make_series(ts, open_, high, low, close, oi)
    volume = np.asarray(draw(st.lists(st.sampled_from([0.0, 1e3, 5e5, 2e6]), min_size=n, max_size=n)))
    buy_share = np.asarray(draw(st.lists(st.floats(0.0, 1.0), min_size=n, max_size=n)))
    taker_buy = np.where(holes & (np.arange(n) % 3 == 2), np.nan, volume * buy_share)
    return make_series(ts, open_, high, low, close, oi, volume, taker_buy)


@st.composite
def model1_params(draw) -> Model1Params:
    k = draw(st.integers(1, 5))
    leverages = tuple(draw(st.lists(st.sampled_from([2.0, 3.0, 5.0, 10.0, 20.0, 25.0, 50.0, 75.0, 100.0]), min_size=k, max_size=k)))
    raw = np.asarray(draw(st.lists(st.floats(0.01, 1.0), min_size=k, max_size=k)))
    weights = raw / raw.sum()
    weights[-1] = 1.0 - weights[:-1].sum()
    mmr = draw(st.floats(0.0, 0.9 / max(leverages)))
    return Model1Params(
        leverages=leverages,
        weights=tuple(float(w) for w in weights),
        mmr=mmr,
        long_share=draw(st.floats(0.0, 1.0)),
    )


@st.composite
def margin_tables(draw) -> MarginTable:
    """1-4 brackets: rising caps and rates, falling max leverage, each rate below 1/max leverage."""
    if draw(st.booleans()):
        return BINANCE_BTCUSDT
    count = draw(st.integers(1, 4))
    caps = np.cumsum(draw(st.lists(st.floats(1e4, 1e8), min_size=count, max_size=count)))
    leverages = sorted(draw(st.lists(st.sampled_from([2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 125.0]), min_size=count, max_size=count)), reverse=True)
    brackets = []
    mmr = 0.0
    for cap, leverage in zip(caps, leverages, strict=True):
        mmr = draw(st.floats(mmr, max(mmr, 0.9 / leverage)))
        brackets.append((float(cap), float(mmr), float(leverage)))
    assume(all(b[1] < 1 / b[2] for b in brackets))
    return MarginTable(tuple(brackets))


def _weights(draw, k: int) -> tuple[float, ...]:
    raw = np.asarray(draw(st.lists(st.floats(0.01, 1.0), min_size=k, max_size=k)))
    weights = raw / raw.sum()
    weights[-1] = 1.0 - weights[:-1].sum()
    return tuple(float(w) for w in weights)


def _path_fields(draw) -> dict:
    k = draw(st.integers(1, 4))
    leverages = tuple(draw(st.lists(st.sampled_from([2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 125.0, 150.0]), min_size=k, max_size=k, unique=True)))
    return {
        "leverages": leverages,
        "weights": _weights(draw, k),
        "margin_table": draw(margin_tables()),
        "min_position_usd": draw(st.sampled_from([10.0, 1_000.0])),
        "size_points": draw(st.integers(1, 3)),
        "flow_weight": draw(st.sampled_from([0.0, 0.5, 1.0])),
    }


@st.composite
def model2_params(draw) -> Model2Params:
    fields = _path_fields(draw)
    try:
        return Model2Params(**fields)
    except ValueError:
        assume(False)
        raise


@st.composite
def model3_params(draw) -> Model3Params:
    fields = _path_fields(draw)
    fields.update(
        half_life_hours=draw(st.floats(0.05, 50.0)),
        reopen_share=draw(st.sampled_from([0.0, 0.5, 1.0])),
        leveraged_share=draw(st.floats(0.1, 1.0)),
    )
    try:
        return Model3Params(**fields)
    except ValueError:
        assume(False)
        raise


@st.composite
def coarse_open_interest(draw, series: MarketSeries) -> MarketSeries:
    """The series with open interest read every 5 or 15 bars (1m bars) and carried forward or interpolated between readings."""
    cadence = draw(st.sampled_from([5, 15])) * STEP_MS
    close = series.ts_ms + series.step_ms
    first = (int(close[0]) // cadence) * cadence
    last = -(-int(close[-1]) // cadence) * cadence
    times = np.arange(first, last + cadence, cadence)
    moves = np.asarray(draw(st.lists(st.floats(-0.2, 0.2), min_size=len(times), max_size=len(times))))
    readings = draw(st.floats(1e4, 1e9)) * np.cumprod(1.0 + moves)
    if draw(st.booleans()):
        oi = np.interp(close, times, readings)
    else:
        oi = readings[np.searchsorted(times, close, side="right") - 1]
    return make_series(series.ts_ms, series.open, series.high, series.low, series.close, oi, series.volume_usd, series.taker_buy_usd)


@st.composite
def model4_params(draw) -> Model4Params:
    k = draw(st.integers(1, 4))
    try:
        return Model4Params(
            leverages=tuple(draw(st.lists(st.sampled_from([5.0, 10.0, 20.0, 25.0, 50.0, 100.0, 125.0]), min_size=k, max_size=k, unique=True))),
            weights=_weights(draw, k),
            turnover_rate=draw(st.sampled_from([0.5, 4.0, 50.0])),
            turnover_per_hour_unknown=draw(st.sampled_from([0.01, 0.5])),
            leveraged_share=draw(st.floats(0.001, 1.0)),
            volatility_exponent=draw(st.sampled_from([0.0, 0.5, 1.0, 2.0])),
            volatility_half_life_hours=draw(st.sampled_from([0.5, 168.0])),
            max_volatility_factor=draw(st.sampled_from([2.0, 10.0])),
            min_position_usd=draw(st.sampled_from([10.0, 1_000.0])),
            size_points=draw(st.integers(1, 3)),
        )
    except ValueError:
        assume(False)
        raise
