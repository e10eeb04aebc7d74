"""Stored rows as engine series: canonical candles and open interest into the columns the engine takes."""

from __future__ import annotations

import numpy as np

from engine.resample import align_open_interest
from engine.series import MarketSeries


def series_from_rows(candles: np.ndarray, open_interest: np.ndarray, step_ms: int) -> MarketSeries:
    """Canonical rows → engine input columns (open interest as of each bar's close)."""
    ts = candles["ts_ms"].astype(np.int64)
    oi = align_open_interest(ts + step_ms, open_interest["ts_ms"].astype(np.int64), open_interest["open_interest_usd"].astype(np.float64))
    return MarketSeries(
        step_ms=step_ms,
        ts_ms=ts,
        open=candles["open"].astype(np.float64),
        high=candles["high"].astype(np.float64),
        low=candles["low"].astype(np.float64),
        close=candles["close"].astype(np.float64),
        volume_usd=candles["volume_usd"].astype(np.float64),
        taker_buy_usd=candles["taker_buy_usd"].astype(np.float64),
        open_interest_usd=oi,
    )


def from_first_open_interest(series: MarketSeries) -> MarketSeries:
    """The series from its first bar with open interest on (all of it if it has none)."""
    known = np.isfinite(series.open_interest_usd)
    if not known.any():
        return series
    return series.slice(int(np.argmax(known)), len(series))
