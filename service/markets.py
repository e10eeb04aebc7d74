"""Canonical symbol names across venues.

A market is named the Binance way on every venue: base coin + quote currency,
e.g. ``BTCUSDT``. OKX's ``BTC-USDT-SWAP`` is ``BTCUSDT`` here; the aggregated
market of a coin is ``all`` / ``BTC``.
"""

from __future__ import annotations

QUOTES = ("USDT", "USDC", "USD")
AGGREGATE_EXCHANGE = "all"
# Market metadata field set to 1 where the rows are simulated (the demo's synthetic venues).
SYNTHETIC_META = "synthetic"


def split_symbol(symbol: str) -> tuple[str, str]:
    """``BTCUSDT`` → ``("BTC", "USDT")``."""
    for quote in QUOTES:
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return symbol[: -len(quote)], quote
    raise ValueError(f"cannot tell the quote currency of {symbol!r}; expected one ending in {', '.join(QUOTES)}")


def coin_of(symbol: str) -> str:
    """The aggregated market's name for a canonical symbol: ``BTCUSDT`` → ``BTC`` (unknown quotes: as is)."""
    try:
        return split_symbol(symbol)[0]
    except ValueError:
        return symbol


def okx_instrument(symbol: str) -> str:
    """``BTCUSDT`` → ``BTC-USDT-SWAP``."""
    base, quote = split_symbol(symbol)
    return f"{base}-{quote}-SWAP"


def okx_family(symbol: str) -> str:
    """``BTCUSDT`` → ``BTC-USDT`` (OKX's instFamily)."""
    base, quote = split_symbol(symbol)
    return f"{base}-{quote}"


def from_okx_instrument(inst_id: str) -> str | None:
    """``BTC-USDT-SWAP`` → ``BTCUSDT``; None for anything that is not a swap."""
    parts = inst_id.split("-")
    if len(parts) != 3 or parts[2] != "SWAP":
        return None
    return parts[0] + parts[1]
