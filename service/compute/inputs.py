"""Loading a market's stored inputs back as engine series (read-only: the API builds on-demand frames with this too)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import asdict
from typing import Any

import numpy as np

from engine.aggregate import aggregate_series
from engine.ranges import DAY_MS
from engine.resample import align_open_interest
from engine.series import MarketSeries
from service.store.reader import StoreReader


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


async def load_market_series(store: StoreReader, exchange: str, symbol: str, *, span_ms: int, step_ms: int = 60_000) -> MarketSeries | None:
    """The stored inputs of one market over the last ``span_ms`` (None: no bars yet).

    The series starts at the first bar with open interest, so that frames state as
    coverage what the model could see (open-interest history is often shorter than
    candle history).
    """
    last = await store.last_candle_ts(exchange, symbol)
    if last is None:
        return None
    start = last - span_ms
    candles = await store.read_candles(exchange, symbol, start)
    open_interest = await store.read_open_interest(exchange, symbol, start - DAY_MS)
    # Up to weeks of 1m bars: joined off the event loop.
    return await asyncio.to_thread(lambda: from_first_open_interest(series_from_rows(candles, open_interest, step_ms)))


async def load_aggregate_series(
    store: StoreReader, venue_markets: Iterable[tuple[str, str]], *, span_ms: int
) -> tuple[MarketSeries, dict[str, dict[str, Any]]] | None:
    """One coin summed over its venue markets ``(exchange, symbol)``, and what each venue covered.

    None when no venue has bars yet.
    """
    parts: dict[str, MarketSeries] = {}
    for exchange, symbol in sorted(venue_markets):
        series = await load_market_series(store, exchange, symbol, span_ms=span_ms)
        if series is not None and len(series):
            parts[exchange] = series
    if not parts:
        return None
    aggregated = await asyncio.to_thread(aggregate_series, parts)
    coverage = {venue: asdict(c) for venue, c in aggregated.coverage.items()}
    return from_first_open_interest(aggregated.series), coverage
