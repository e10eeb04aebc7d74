"""The market a fake venue serves: the synthetic market, sized for the venue."""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from service.store.rows import LIQUIDATION_DTYPE, OPEN_INTEREST_DTYPE, TAKER_DTYPE
from service.collect.synthetic import MINUTE_MS, SyntheticMarket

# Share of the synthetic market's open interest, volume and liquidations each venue holds.
VENUE_SCALE = {"binance": 1.0, "bybit": 0.55, "okx": 0.45}
# OKX contract sizes (coins per contract).
CONTRACT_VALUES = {"BTCUSDT": 0.01, "ETHUSDT": 0.1, "SOLUSDT": 1.0}
FUNDING_RATE = 0.0001
FUNDING_PERIOD_MS = 8 * 60 * MINUTE_MS


@dataclass(frozen=True, slots=True)
class MarketRows:
    """Canonical truth for bars opening in a window: what a correct collector stores."""

    candles: np.ndarray
    open_interest: np.ndarray  # one observation per bar close (ts = open + 1 min)


class VenueMarket:
    """One venue's view of a shared synthetic market.

    Prices are the synthetic market's; open interest, volumes and liquidation sizes
    are scaled by the venue's share. Everything is a pure function of time.
    """

    def __init__(self, venue: str, market: SyntheticMarket) -> None:
        self.venue = venue
        self.market = market
        self.scale = VENUE_SCALE.get(venue, 1.0)
        self._symbols: frozenset[str] | None = None

    def symbols(self) -> list[str]:
        return self.market.symbols()

    def symbols_set(self) -> frozenset[str]:
        if self._symbols is None:
            self._symbols = frozenset(self.market.symbols())
        return self._symbols

    def quote_volume_24h(self, symbol: str) -> float:
        """24h traded notional the venue's ticker reports, USD: fixed per symbol, spread over
        three orders of magnitude (BTC and ETH first), so that top:N has a clear answer."""
        known = {"BTCUSDT": 2e10, "ETHUSDT": 1e10, "SOLUSDT": 3e9}.get(symbol)
        if known is None:
            known = 1e6 * 10 ** (3 * (zlib.crc32(symbol.encode()) % 100_000) / 100_000)
        return known * self.scale

    def contract_value(self, symbol: str) -> float:
        return CONTRACT_VALUES.get(symbol, 1.0)

    def rows(self, symbol: str, start_ms: int, end_ms: int) -> MarketRows:
        """Bars opening in ``[start_ms, end_ms)`` (the bar in progress included when ``end_ms`` is in it)."""
        first = start_ms - start_ms % MINUTE_MS
        stop = -(-end_ms // MINUTE_MS) * MINUTE_MS
        batch = self.market.rows(symbol, first, stop)
        candles = batch.candles
        candles["volume_usd"] *= self.scale
        candles["taker_buy_usd"] *= self.scale
        oi = batch.open_interest
        oi["open_interest_usd"] *= self.scale
        return MarketRows(candles, oi)

    def open_interest_at(self, symbol: str, ts_ms: np.ndarray) -> np.ndarray:
        """Open-interest rows observed at each of ``ts_ms`` (bar closes), with the bar's close price.

        Returns rows of OPEN_INTEREST_DTYPE; their price is ``close_at``.
        """
        ts_ms = np.asarray(ts_ms, dtype=np.int64)
        out = np.zeros(len(ts_ms), dtype=OPEN_INTEREST_DTYPE)
        if not len(ts_ms):
            return out
        rows = self.rows(symbol, int(ts_ms.min()) - MINUTE_MS, int(ts_ms.max()))
        index = np.searchsorted(rows.open_interest["ts_ms"], ts_ms)
        out["ts_ms"] = ts_ms
        out["open_interest_usd"] = rows.open_interest["open_interest_usd"][index]
        return out

    def close_at(self, symbol: str, ts_ms: np.ndarray) -> np.ndarray:
        """Close of the bar ending at each ``ts_ms`` (a bar close)."""
        ts_ms = np.asarray(ts_ms, dtype=np.int64)
        if not len(ts_ms):
            return np.zeros(0)
        rows = self.rows(symbol, int(ts_ms.min()) - MINUTE_MS, int(ts_ms.max()))
        index = np.searchsorted(rows.candles["ts_ms"], ts_ms - MINUTE_MS)
        return rows.candles["close"][index]

    def long_short_at(self, symbol: str, start_ms: int, end_ms: int) -> np.ndarray:
        """The account-ratio rows (LONG_SHORT_DTYPE) of the 5-minute periods ending in ``[start_ms, end_ms]``."""
        rows = self.market.rows(symbol, start_ms - start_ms % MINUTE_MS - MINUTE_MS, end_ms - end_ms % MINUTE_MS).long_short
        return rows[(rows["ts_ms"] >= start_ms) & (rows["ts_ms"] <= end_ms)]

    def taker_at(self, symbol: str, start_ms: int, end_ms: int, period_ms: int = 5 * MINUTE_MS) -> np.ndarray:
        """Taker buy and sell USD (TAKER_DTYPE) of the whole ``period_ms`` periods starting in ``[start_ms, end_ms]``
        and ended by ``end_ms + period_ms``: the venue's bars summed."""
        first = -(-start_ms // period_ms) * period_ms
        starts = np.arange(first, end_ms + 1, period_ms, dtype=np.int64)
        rows = np.zeros(len(starts), dtype=TAKER_DTYPE)
        if not len(starts):
            return rows
        candles = self.rows(symbol, int(starts[0]), int(starts[-1]) + period_ms).candles
        index = np.searchsorted(starts, candles["ts_ms"], side="right") - 1
        rows["ts_ms"] = starts
        rows["buy_usd"] = np.bincount(index, candles["taker_buy_usd"], len(starts))
        rows["sell_usd"] = np.bincount(index, candles["volume_usd"] - candles["taker_buy_usd"], len(starts))
        return rows

    def mark_price(self, symbol: str, now_ms: int) -> float:
        """The last closed bar's close."""
        last_close = now_ms - now_ms % MINUTE_MS
        return float(self.close_at(symbol, np.array([last_close]))[0])

    def next_funding_ms(self, now_ms: int) -> int:
        return now_ms - now_ms % FUNDING_PERIOD_MS + FUNDING_PERIOD_MS

    def liquidations(self, symbol: str, start_ms: int, end_ms: int) -> np.ndarray:
        """Synthetic liquidations with ``start_ms <= ts < end_ms``, sizes scaled to the venue."""
        batch = self.market.rows(symbol, start_ms - start_ms % MINUTE_MS, -(-end_ms // MINUTE_MS) * MINUTE_MS)
        events = batch.liquidations
        events = events[(events["ts_ms"] >= start_ms) & (events["ts_ms"] < end_ms)].copy()
        events["quantity"] *= self.scale
        events["usd"] = events["quantity"] * events["price"]
        return events.astype(LIQUIDATION_DTYPE)
