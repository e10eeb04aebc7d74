"""Canonical market input columns at one base step."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.types import Float64Array, Int64Array


@dataclass(frozen=True, slots=True)
class MarketSeries:
    """One market's inputs at a fixed base step, oldest bar first.

    Attributes
    ----------
    step_ms : int
        Bar width in milliseconds (60_000 for 1m bars).
    ts_ms : Int64Array, shape (n,)
        Bar open time, epoch milliseconds UTC, strictly increasing by ``step_ms``
        multiples (gaps allowed).
    open, high, low, close : Float64Array, shape (n,)
        Trade prices in quote currency (USD).
    volume_usd : Float64Array, shape (n,)
        Traded notional in the bar, USD.
    taker_buy_usd : Float64Array, shape (n,)
        Part of ``volume_usd`` bought by takers, USD (NaN where the venue has none).
    open_interest_usd : Float64Array, shape (n,)
        Open interest at the bar's close, USD notional of one side.
    """

    step_ms: int
    ts_ms: Int64Array
    open: Float64Array
    high: Float64Array
    low: Float64Array
    close: Float64Array
    volume_usd: Float64Array
    taker_buy_usd: Float64Array
    open_interest_usd: Float64Array

    def __len__(self) -> int:
        return int(self.ts_ms.shape[0])

    def slice(self, start: int, stop: int) -> MarketSeries:
        """Rows ``start:stop`` as a new series (views, no copy)."""
        return MarketSeries(
            step_ms=self.step_ms,
            ts_ms=self.ts_ms[start:stop],
            open=self.open[start:stop],
            high=self.high[start:stop],
            low=self.low[start:stop],
            close=self.close[start:stop],
            volume_usd=self.volume_usd[start:stop],
            taker_buy_usd=self.taker_buy_usd[start:stop],
            open_interest_usd=self.open_interest_usd[start:stop],
        )

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first broken column rule."""
        n = len(self)
        for name in ("open", "high", "low", "close", "volume_usd", "taker_buy_usd", "open_interest_usd"):
            column = getattr(self, name)
            if column.shape != (n,):
                raise ValueError(f"{name} has shape {column.shape}, expected ({n},)")
        if n and np.any(np.diff(self.ts_ms) <= 0):
            raise ValueError("ts_ms must be strictly increasing")
        if n and np.any(self.low > self.high):
            raise ValueError("low must not exceed high")
