"""Changing a series' bar width and joining open interest onto bars."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from engine.series import MarketSeries
from engine.types import Float64Array


def aggregate_bars(series: MarketSeries, bucket_ms: int) -> MarketSeries:
    """Merge the bars of each epoch-aligned bucket of ``bucket_ms`` into one bar.

    Unlike :func:`resample` this does not require ``bucket_ms`` to be a
    multiple of the series' step: a bar belongs to the bucket its open time
    falls in. Buckets without bars are absent from the result.

    Parameters
    ----------
    series : MarketSeries
        Input bars, ``n`` of them.
    bucket_ms : int
        Bucket width, ms (> 0). Bucket ``b`` covers ``[b*bucket_ms, (b+1)*bucket_ms)``.

    Returns
    -------
    MarketSeries
        One bar per non-empty bucket, ``ts_ms`` the bucket start, ``step_ms``
        equal to ``bucket_ms``: open of the first bar, high max, low min, close
        of the last bar, volumes summed (NaN if any part is NaN), open
        interest of the last bar.
    """
    if bucket_ms <= 0:
        raise ValueError(f"bucket width must be positive, got {bucket_ms} ms")
    bucket = (series.ts_ms // bucket_ms) * bucket_ms
    n = bucket.shape[0]
    if n == 0:
        empty = np.empty(0, dtype=np.float64)
        return MarketSeries(bucket_ms, bucket.astype(np.int64), *([empty] * 7))
    starts = np.flatnonzero(np.concatenate(([True], bucket[1:] != bucket[:-1])))
    ends = np.concatenate((starts[1:] - 1, [n - 1]))
    return MarketSeries(
        step_ms=bucket_ms,
        ts_ms=bucket[starts].astype(np.int64),
        open=series.open[starts].astype(np.float64),
        high=np.maximum.reduceat(series.high, starts).astype(np.float64),
        low=np.minimum.reduceat(series.low, starts).astype(np.float64),
        close=series.close[ends].astype(np.float64),
        volume_usd=np.add.reduceat(series.volume_usd, starts).astype(np.float64),
        taker_buy_usd=np.add.reduceat(series.taker_buy_usd, starts).astype(np.float64),
        open_interest_usd=series.open_interest_usd[ends].astype(np.float64),
    )


def resample(series: MarketSeries, step_ms: int) -> MarketSeries:
    """The series at a coarser bar width.

    Parameters
    ----------
    series : MarketSeries
        Input bars at ``series.step_ms``.
    step_ms : int
        New bar width, ms; a positive multiple of ``series.step_ms``. Bars are
        epoch-aligned: a new bar starts at every multiple of ``step_ms``.

    Returns
    -------
    MarketSeries
        OHLC aggregated (first open, max high, min low, last close), volumes
        summed, open interest of the last input bar; bars only where input
        bars exist.

    Raises
    ------
    ValueError
        If ``step_ms`` is not a positive multiple of the series' step.
    """
    if step_ms <= 0 or step_ms % series.step_ms != 0:
        raise ValueError(
            f"can only resample to a positive multiple of the series step "
            f"{series.step_ms} ms, got {step_ms} ms"
        )
    if step_ms == series.step_ms:
        return series
    return aggregate_bars(series, step_ms)


def align_open_interest(
    bar_close_ms: npt.ArrayLike,
    oi_ts_ms: npt.ArrayLike,
    oi_usd: npt.ArrayLike,
) -> Float64Array:
    """Open interest as it stood at each bar's close (as-of join).

    Each bar gets the last observation taken at or before its close, carried
    forward over bars without a fresh one. Non-finite observations are ignored.

    Parameters
    ----------
    bar_close_ms : array_like of int, shape (n,)
        Close time (exclusive end, ``ts_ms + step_ms``) of each bar, epoch ms,
        ascending.
    oi_ts_ms : array_like of int, shape (m,)
        Observation times, epoch ms, any order (ties: the later one given wins).
    oi_usd : array_like of float, shape (m,)
        Open interest observed, USD notional.

    Returns
    -------
    Float64Array, shape (n,)
        Open interest per bar, USD; NaN before the first observation.
    """
    close_ms = np.asarray(bar_close_ms, dtype=np.int64)
    observed_ts = np.asarray(oi_ts_ms, dtype=np.int64)
    observed = np.asarray(oi_usd, dtype=np.float64)
    if observed_ts.shape != observed.shape or observed_ts.ndim != 1:
        raise ValueError(
            f"oi_ts_ms and oi_usd must be 1-d of one length, got {observed_ts.shape} and {observed.shape}"
        )
    keep = np.isfinite(observed)
    observed_ts, observed = observed_ts[keep], observed[keep]
    order = np.argsort(observed_ts, kind="stable")
    observed_ts, observed = observed_ts[order], observed[order]
    latest = np.searchsorted(observed_ts, close_ms, side="right") - 1
    aligned: Float64Array = np.full(close_ms.shape, np.nan, dtype=np.float64)
    found = latest >= 0
    aligned[found] = observed[latest[found]]
    return aligned
