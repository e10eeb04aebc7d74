"""Stored market series per time bucket: OHLC of observed values, OHLC of bars, sums, venues summed.

Pure numpy over store rows (no IO, no per-row Python loops), for the routes that answer
history as Coinglass shapes it (open interest, funding, price, taker volume, account
ratios). Buckets come from :mod:`service.compute.realized` (``BucketWindow``: aligned to
the interval in UTC, weeks from Monday).

Observed values (open interest, funding rates, account ratios) are points in time. A
bucket ``[t, t + interval)`` holds the observations in ``(t, t + interval]``: its close is
the value standing at its end, its open the value standing at its start (the last
observation at or before ``t``; the bucket's first where there is none), high and low
over both. So one bucket's close is the next one's open, as Coinglass's examples show.
Buckets without an observation inside are left out (the store knows nothing there).
Bars (candles) belong to the bucket their open time falls in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from engine.resample import align_open_interest
from engine.types import Float64Array, Int64Array
from service.compute.realized import BucketWindow


@dataclass(frozen=True, slots=True)
class Ohlc:
    """Per non-empty bucket, oldest first: its start (epoch ms) and open, high, low, close."""

    time: Int64Array
    open: Float64Array
    high: Float64Array
    low: Float64Array
    close: Float64Array

    def __len__(self) -> int:
        return len(self.time)


def _empty_ohlc() -> Ohlc:
    none = np.zeros(0)
    return Ohlc(np.zeros(0, dtype=np.int64), none, none, none, none)


def point_read_span(window: BucketWindow) -> tuple[int, int]:
    """``[start, end)`` of the observations :func:`point_ohlc` needs: one interval before the
    first bucket (its open) through the end of the last (its close, inclusive)."""
    return window.first_ms - window.interval_ms, window.end_ms + 1


def point_ohlc(ts_ms: np.ndarray, values: np.ndarray, window: BucketWindow) -> Ohlc:
    """OHLC per bucket of values observed at ``ts_ms`` (ascending), as the module says.

    Parameters
    ----------
    ts_ms : array of int, shape (n,)
        Observation times, epoch ms, ascending.
    values : array of float, shape (n,)
        The value observed at each (non-finite ones are ignored).
    window : BucketWindow
    """
    ts_ms = np.asarray(ts_ms, dtype=np.int64)
    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values)
    ts_ms, values = ts_ms[finite], values[finite]
    bucket = (ts_ms - 1 - window.first_ms) // window.interval_ms
    inside = (ts_ms > window.first_ms) & (bucket < window.count)
    if not inside.any():
        return _empty_ohlc()
    rows = np.flatnonzero(inside)
    groups = bucket[rows]
    starts = np.flatnonzero(np.concatenate(([True], groups[1:] != groups[:-1])))
    ends = np.concatenate((starts[1:], [len(rows)])) - 1
    chosen = groups[starts]
    time = window.first_ms + chosen * window.interval_ms
    inner = values[rows]
    standing = np.searchsorted(ts_ms, time, side="right") - 1
    open_ = np.where(standing >= 0, values[np.maximum(standing, 0)], inner[starts])
    high = np.maximum(np.maximum.reduceat(inner, starts), open_)
    low = np.minimum(np.minimum.reduceat(inner, starts), open_)
    return Ohlc(time.astype(np.int64), open_, high, low, inner[ends])


def last_in_bucket(ts_ms: np.ndarray, window: BucketWindow) -> tuple[Int64Array, Int64Array]:
    """Per non-empty bucket (observations in ``(t, t + interval]``): its start and the index of its last observation."""
    ts_ms = np.asarray(ts_ms, dtype=np.int64)
    bucket = (ts_ms - 1 - window.first_ms) // window.interval_ms
    rows = np.flatnonzero((ts_ms > window.first_ms) & (bucket < window.count))
    if not len(rows):
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    groups = bucket[rows]
    last = np.flatnonzero(np.concatenate((groups[1:] != groups[:-1], [True])))
    return (window.first_ms + groups[last] * window.interval_ms).astype(np.int64), rows[last]


def _bar_groups(bar_ts_ms: np.ndarray, window: BucketWindow) -> tuple[np.ndarray, np.ndarray, Int64Array]:
    """Bars inside the window, the first of each bucket among them, and the buckets' starts."""
    bucket = (np.asarray(bar_ts_ms, dtype=np.int64) - window.first_ms) // window.interval_ms
    rows = np.flatnonzero((bucket >= 0) & (bucket < window.count))
    groups = bucket[rows]
    starts = np.flatnonzero(np.concatenate(([True], groups[1:] != groups[:-1]))) if len(rows) else rows
    return rows, starts, (window.first_ms + groups[starts] * window.interval_ms).astype(np.int64)


def bar_ohlc(candles: np.ndarray, window: BucketWindow) -> tuple[Ohlc, Float64Array]:
    """Candles (CANDLE_DTYPE, ascending) merged per bucket: first open, highest high, lowest low,
    last close, and the traded USD summed."""
    rows, starts, time = _bar_groups(candles["ts_ms"], window)
    if not len(rows):
        return _empty_ohlc(), np.zeros(0)
    bars = candles[rows]
    ends = np.concatenate((starts[1:], [len(rows)])) - 1
    ohlc = Ohlc(
        time,
        bars["open"][starts].astype(np.float64),
        np.maximum.reduceat(bars["high"], starts).astype(np.float64),
        np.minimum.reduceat(bars["low"], starts).astype(np.float64),
        bars["close"][ends].astype(np.float64),
    )
    return ohlc, np.add.reduceat(bars["volume_usd"].astype(np.float64), starts)


def taker_volumes(candles: np.ndarray, window: BucketWindow) -> tuple[Int64Array, Float64Array, Float64Array]:
    """Taker buy and sell USD per bucket from the bars whose taker part is known (sell = volume - buy).

    Returns bucket starts, buy USD, sell USD; buckets without such a bar are left out.
    """
    known = candles[np.isfinite(candles["taker_buy_usd"])]
    rows, starts, time = _bar_groups(known["ts_ms"], window)
    if not len(rows):
        return time, np.zeros(0), np.zeros(0)
    bars = known[rows]
    buy = np.add.reduceat(bars["taker_buy_usd"].astype(np.float64), starts)
    total = np.add.reduceat(bars["volume_usd"].astype(np.float64), starts)
    return time, buy, np.maximum(total - buy, 0.0)


def period_sums(ts_ms: np.ndarray, buy: np.ndarray, sell: np.ndarray, window: BucketWindow) -> tuple[Int64Array, Float64Array, Float64Array]:
    """Per-period amounts (stamped at each period's start, ascending) summed per bucket; empty buckets left out."""
    rows, starts, time = _bar_groups(ts_ms, window)
    if not len(rows):
        return time, np.zeros(0), np.zeros(0)
    return time, np.add.reduceat(np.asarray(buy, dtype=np.float64)[rows], starts), np.add.reduceat(np.asarray(sell, dtype=np.float64)[rows], starts)


def in_coins(ts_ms: np.ndarray, usd: np.ndarray, close_ms: np.ndarray, close: np.ndarray) -> Float64Array:
    """USD amounts observed at ``ts_ms`` in coins: divided by the close of the last bar closed by then
    (bars ending at ``close_ms`` with price ``close``; NaN before any)."""
    price = align_open_interest(ts_ms, close_ms, close)
    return np.asarray(usd, dtype=np.float64) / price


def summed(parts: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[Int64Array, Float64Array]:
    """Several venues' observed values added up: at every time any of them observed, the sum of
    the values standing then; from the time all have one (before, the sum would be partial).

    Parameters
    ----------
    parts : sequence of (ts_ms, values)
        Each venue's observations, ascending.
    """
    parts = [(np.asarray(ts, dtype=np.int64), np.asarray(v, dtype=np.float64)) for ts, v in parts if len(ts)]
    if not parts:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    times = np.unique(np.concatenate([ts for ts, _ in parts]))
    times = times[times >= max(int(ts[0]) for ts, _ in parts)]
    total = np.zeros(len(times))
    for ts, values in parts:
        total += align_open_interest(times, ts, values)
    keep = np.isfinite(total)
    return times[keep], total[keep]


def newest(ts_ms: np.ndarray, values: np.ndarray) -> tuple[int, float] | None:
    """``(time, value)`` of the newest finite observation, or None."""
    finite = np.flatnonzero(np.isfinite(np.asarray(values, dtype=np.float64)))
    if not len(finite):
        return None
    return int(ts_ms[finite[-1]]), float(values[finite[-1]])


def change_percent(ts_ms: np.ndarray, values: np.ndarray, windows_ms: Sequence[int]) -> list[float | None]:
    """Change (%) of the newest observation from the one standing ``window`` before it, per window,
    two decimals; None where nothing was observed that far back (or it was 0)."""
    last = newest(ts_ms, values)
    if last is None:
        return [None] * len(windows_ms)
    then_ms, now_value = last
    before = align_open_interest(np.asarray([then_ms - w for w in windows_ms], dtype=np.int64), ts_ms, values)
    return [None if not np.isfinite(b) or b == 0 else round((now_value / b - 1) * 100, 2) for b in before.tolist()]
