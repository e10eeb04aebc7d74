"""Canonical rows every source produces and the store keeps.

Rows are numpy structured arrays with fixed little-endian layouts, so a batch
converts to and from bytes without per-row Python work.
"""

from __future__ import annotations

import numpy as np

CANDLE_DTYPE = np.dtype(
    [
        ("ts_ms", "<i8"),  # bar open time, epoch ms UTC
        ("open", "<f8"),
        ("high", "<f8"),
        ("low", "<f8"),
        ("close", "<f8"),
        ("volume_usd", "<f8"),  # traded notional in the bar
        ("taker_buy_usd", "<f8"),  # taker-buy part of volume_usd; NaN where unknown
    ]
)

OPEN_INTEREST_DTYPE = np.dtype(
    [
        ("ts_ms", "<i8"),  # when the value was observed (a bar's close for per-bar history)
        ("open_interest_usd", "<f8"),  # USD notional of one side
    ]
)

LIQUIDATION_DTYPE = np.dtype(
    [
        ("ts_ms", "<i8"),  # event time, epoch ms UTC
        ("side", "i1"),  # +1: a long was liquidated, -1: a short was liquidated
        ("price", "<f8"),
        ("quantity", "<f8"),  # base units
        ("usd", "<f8"),  # notional, USD
    ]
)

FUNDING_DTYPE = np.dtype(
    [
        ("ts_ms", "<i8"),  # when the venue's current (predicted) rate was observed, epoch ms UTC
        ("funding_rate", "<f8"),  # per funding interval, as a fraction (0.0001 = 0.01 %)
    ]
)

LONG_SHORT_DTYPE = np.dtype(
    [
        ("ts_ms", "<i8"),  # end of the venue's period (5 min), epoch ms UTC
        ("long_account", "<f8"),  # share of accounts holding a net long position, 0..1
        ("short_account", "<f8"),  # share holding a net short position, 0..1
    ]
)

TAKER_DTYPE = np.dtype(
    [
        ("ts_ms", "<i8"),  # start of the venue's period (5 min), epoch ms UTC
        ("buy_usd", "<f8"),  # taker buy volume in the period, USD
        ("sell_usd", "<f8"),  # taker sell volume in the period, USD
    ]
)

# A roll-up bar (engine.rollup): a candle with the open interest at its close, and where its
# first input bar opened.
ROLLUP_DTYPE = np.dtype(
    [
        *CANDLE_DTYPE.descr,
        ("open_interest_usd", "<f8"),
        ("first_input_ms", "<i8"),
    ]
)

SIDE_LONG = 1
SIDE_SHORT = -1


def empty(dtype: np.dtype) -> np.ndarray:
    return np.zeros(0, dtype=dtype)


def pack_rows(rows: np.ndarray) -> list[bytes]:
    """Each structured row as its own bytes (the sorted-set member)."""
    width = rows.dtype.itemsize
    buffer = np.ascontiguousarray(rows).tobytes()
    return [buffer[i : i + width] for i in range(0, len(buffer), width)]


def unpack_rows(members: list[bytes], dtype: np.dtype) -> np.ndarray:
    if not members:
        return np.zeros(0, dtype=dtype)
    return np.frombuffer(b"".join(members), dtype=dtype).copy()
