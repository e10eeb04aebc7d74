"""Building canonical rows from parsed venue values, with the checks every venue shares.

A page with any bad value is rejected whole (:class:`BadPayload`): nothing from it
is written, so the store never holds half of a payload.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TypeVar

import msgspec
import numpy as np

from service.store.rows import CANDLE_DTYPE, FUNDING_DTYPE, LIQUIDATION_DTYPE, LONG_SHORT_DTYPE, OPEN_INTEREST_DTYPE, TAKER_DTYPE
from service.collect.venues.errors import BadPayload

T = TypeVar("T")


def decode(decoder: msgspec.json.Decoder[T], body: bytes | str, venue: str, endpoint: str) -> T:
    """Decode one payload with its typed decoder; malformed or mistyped input is a ``BadPayload``."""
    try:
        return decoder.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise BadPayload(venue, endpoint, str(exc)) from exc


def candles(
    venue: str,
    endpoint: str,
    ts_ms: Sequence[int],
    ohlc: Sequence[Sequence[float]],
    volume_usd: Sequence[float],
    taker_buy_usd: Sequence[float] | None,
) -> np.ndarray:
    """Candle rows sorted by open time, one per timestamp; ``taker_buy_usd=None`` stores NaN.

    ``ohlc`` is one ``(open, high, low, close)`` per bar.
    """
    rows = np.empty(len(ts_ms), dtype=CANDLE_DTYPE)
    if not len(rows):
        return rows
    rows["ts_ms"] = np.asarray(ts_ms, dtype=np.int64)
    prices = np.asarray(ohlc, dtype=np.float64).reshape(len(rows), 4)
    rows["open"], rows["high"], rows["low"], rows["close"] = prices.T
    rows["volume_usd"] = np.asarray(volume_usd, dtype=np.float64)
    rows["taker_buy_usd"] = np.nan if taker_buy_usd is None else np.asarray(taker_buy_usd, dtype=np.float64)
    if not np.all(np.isfinite(prices)) or np.any(prices <= 0):
        raise BadPayload(venue, endpoint, "candle prices must be finite and positive")
    if np.any(rows["high"] < prices.max(axis=1)) or np.any(rows["low"] > prices.min(axis=1)):
        raise BadPayload(venue, endpoint, "candle high/low do not bound open and close")
    volume = rows["volume_usd"]
    if not np.all(np.isfinite(volume)) or np.any(volume < 0):
        raise BadPayload(venue, endpoint, "candle volume must be finite and not negative")
    taker = rows["taker_buy_usd"]
    if taker_buy_usd is not None and (not np.all(np.isfinite(taker)) or np.any(taker < 0) or np.any(taker > volume * (1 + 1e-9))):
        raise BadPayload(venue, endpoint, "taker-buy volume must lie in [0, volume]")
    if np.any(rows["ts_ms"] <= 0):
        raise BadPayload(venue, endpoint, "candle times must be positive epoch ms")
    return sorted_unique(rows)


CandleTuple = tuple[int, float, float, float, float, float, float]  # the fields of CANDLE_DTYPE


def candle(venue: str, endpoint: str, ts_ms: int, o: float, h: float, lo: float, c: float, volume_usd: float, taker_buy_usd: float | None) -> CandleTuple:
    """One bar (a stream's) as a tuple, with the checks of :func:`candles`; rows are built in bulk later."""
    taker = math.nan if taker_buy_usd is None else float(taker_buy_usd)
    row = (int(ts_ms), float(o), float(h), float(lo), float(c), float(volume_usd), taker)
    prices = row[1:5]
    if not all(math.isfinite(p) and p > 0 for p in prices):
        raise BadPayload(venue, endpoint, "candle prices must be finite and positive")
    if row[2] < max(prices) or row[3] > min(prices):
        raise BadPayload(venue, endpoint, "candle high/low do not bound open and close")
    if not (math.isfinite(row[5]) and row[5] >= 0):
        raise BadPayload(venue, endpoint, "candle volume must be finite and not negative")
    if taker_buy_usd is not None and not (math.isfinite(taker) and 0 <= taker <= row[5] * (1 + 1e-9)):
        raise BadPayload(venue, endpoint, "taker-buy volume must lie in [0, volume]")
    if row[0] <= 0:
        raise BadPayload(venue, endpoint, "candle times must be positive epoch ms")
    return row


def candle_rows(bars: Sequence[CandleTuple]) -> np.ndarray:
    """Tuples from :func:`candle` as CANDLE_DTYPE rows, oldest first, one per open time."""
    return sorted_unique(np.array(bars, dtype=CANDLE_DTYPE)) if bars else np.zeros(0, dtype=CANDLE_DTYPE)


def _timed_rows(
    venue: str,
    endpoint: str,
    dtype: np.dtype,
    ts_ms: Sequence[int],
    columns: dict[str, Sequence[float]],
    valid: Callable[[np.ndarray], bool],
    problem: str,
    what: str,
) -> np.ndarray:
    """Rows of ``dtype`` from a time column and float ``columns``, sorted and one per time.

    ``valid(values)`` judges every value of the columns at once (``problem`` says why not);
    times must be positive epoch ms (``what`` names the series in the message).
    """
    rows = np.empty(len(ts_ms), dtype=dtype)
    rows["ts_ms"] = np.asarray(ts_ms, dtype=np.int64)
    for name, values in columns.items():
        rows[name] = np.asarray(values, dtype=np.float64)
    values = np.concatenate([rows[name] for name in columns])
    if len(rows) and not valid(values):
        raise BadPayload(venue, endpoint, problem)
    if np.any(rows["ts_ms"] <= 0):
        raise BadPayload(venue, endpoint, f"{what} times must be positive epoch ms")
    return sorted_unique(rows)


def _finite_not_negative(values: np.ndarray) -> bool:
    return bool(np.all(np.isfinite(values)) and not np.any(values < 0))


def open_interest(venue: str, endpoint: str, ts_ms: Sequence[int], usd: Sequence[float]) -> np.ndarray:
    """Open-interest rows (USD notional of one side) sorted by observation time."""
    return _timed_rows(
        venue, endpoint, OPEN_INTEREST_DTYPE, ts_ms, {"open_interest_usd": usd},
        _finite_not_negative, "open interest must be finite and not negative", "open-interest",
    )


def long_short(venue: str, endpoint: str, ts_ms: Sequence[int], long_account: Sequence[float], short_account: Sequence[float]) -> np.ndarray:
    """Account-ratio rows (shares of accounts net long / net short, 0..1) sorted by period end."""
    return _timed_rows(
        venue, endpoint, LONG_SHORT_DTYPE, ts_ms, {"long_account": long_account, "short_account": short_account},
        lambda shares: _finite_not_negative(shares) and not np.any(shares > 1), "account shares must lie in [0, 1]", "account-ratio",
    )


def taker(venue: str, endpoint: str, ts_ms: Sequence[int], buy_usd: Sequence[float], sell_usd: Sequence[float]) -> np.ndarray:
    """Taker-volume rows (USD bought and sold by takers per period) sorted by period start."""
    return _timed_rows(
        venue, endpoint, TAKER_DTYPE, ts_ms, {"buy_usd": buy_usd, "sell_usd": sell_usd},
        _finite_not_negative, "taker volumes must be finite and not negative", "taker-volume",
    )


def shares_of_ratio(ratio: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Long and short shares of accounts from a long/short ratio alone (OKX publishes only that)."""
    value = np.asarray(ratio, dtype=np.float64)
    long_share = value / (1.0 + value)
    return long_share, 1.0 - long_share


def funding(ts_ms: int, rate: float) -> np.ndarray:
    """One funding-rate observation (a fraction per interval) at ``ts_ms``."""
    row = np.empty(1, dtype=FUNDING_DTYPE)
    row["ts_ms"], row["funding_rate"] = ts_ms, rate
    return row


LiquidationTuple = tuple[int, int, float, float, float]  # ts_ms, side, price, quantity (base), usd


def liquidation(venue: str, endpoint: str, ts_ms: int, side: int, price: float, quantity: float) -> LiquidationTuple:
    """One liquidation event as a tuple (rows are built in bulk later); checks its values."""
    if not (price > 0 and quantity > 0 and np.isfinite(price) and np.isfinite(quantity)) or ts_ms <= 0:
        raise BadPayload(venue, endpoint, f"liquidation needs positive finite price and size, got {price!r} × {quantity!r}")
    return (int(ts_ms), side, float(price), float(quantity), float(price) * float(quantity))


def liquidation_rows(events: Sequence[LiquidationTuple]) -> np.ndarray:
    """Tuples from :func:`liquidation` as LIQUIDATION_DTYPE rows, sorted by time."""
    rows = np.array(events, dtype=LIQUIDATION_DTYPE) if events else np.zeros(0, dtype=LIQUIDATION_DTYPE)
    return rows[np.argsort(rows["ts_ms"], kind="stable")]


def number(venue: str, endpoint: str, parse: Callable[[], float], what: str) -> float:
    """A single value that must be finite and positive (a mark price, a contract size)."""
    try:
        value = float(parse())
    except (TypeError, ValueError) as exc:
        raise BadPayload(venue, endpoint, f"{what}: {exc}") from exc
    if not np.isfinite(value) or value <= 0:
        raise BadPayload(venue, endpoint, f"{what} must be finite and positive, got {value!r}")
    return value


def sorted_unique(rows: np.ndarray) -> np.ndarray:
    """Oldest first; of rows sharing a timestamp the last one given wins."""
    _, last = np.unique(rows["ts_ms"][::-1], return_index=True)
    return rows[::-1][last]
