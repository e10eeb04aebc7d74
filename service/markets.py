"""Canonical symbol names across venues.

A market is named the Binance way on every venue: base coin + quote currency,
e.g. ``BTCUSDT``. OKX's ``BTC-USDT-SWAP`` is ``BTCUSDT`` here; the aggregated
market of a coin is ``all`` / ``BTC``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

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


# --- which markets a venue's collector follows (LIQMAP_MARKETS) --------------------------------

MARKETS_FORMS = "all (every USDT-margined perpetual a venue trades), top:N (the N with the largest 24h quote volume, N a whole number ≥ 1) or a comma-separated list of symbols such as BTCUSDT,ETHUSDT"


@dataclass(frozen=True, slots=True)
class MarketSelection:
    """``LIQMAP_MARKETS`` parsed: fixed ``symbols``, or ``all`` / ``top`` N of each venue's list."""

    kind: Literal["list", "all", "top"]
    symbols: tuple[str, ...] = ()
    top: int = 0

    @property
    def from_listing(self) -> bool:
        """Whether the markets come from each venue's instrument list (refreshed)."""
        return self.kind != "list"

    def pick(self, listing: Mapping[str, float]) -> list[str]:
        """The markets to follow from a venue's listing ``{symbol: 24h quote volume USD}``.

        ``all``: every listed symbol (sorted by name); ``top``: the ``top`` largest by volume
        (ties by name); a fixed list: its symbols the venue lists, in the list's order.
        """
        if self.kind == "all":
            return sorted(listing)
        if self.kind == "top":
            return sorted(listing, key=lambda symbol: (-listing[symbol], symbol))[: self.top]
        return [symbol for symbol in self.symbols if symbol in listing]


_SYMBOL = re.compile(r"^[A-Z0-9]{2,30}$")


def parse_markets(values: Sequence[str]) -> MarketSelection:
    """``("all",)``, ``("top:50",)`` or symbols → a selection; ``ValueError`` naming the allowed forms."""
    parts = [value.strip() for value in values if value.strip()]
    if not parts:
        raise ValueError(f"no markets given; allowed: {MARKETS_FORMS}")
    keywords = [part for part in parts if part.lower() == "all" or part.lower().startswith("top")]
    if keywords:
        if len(parts) != 1:
            raise ValueError(f"{','.join(parts)!r} mixes {keywords[0]!r} with other entries; allowed: {MARKETS_FORMS}")
        word = parts[0].lower()
        if word == "all":
            return MarketSelection("all")
        count = word.removeprefix("top").removeprefix(":")
        if not word.startswith("top:") or not count.isdigit() or int(count) < 1:
            raise ValueError(f"{parts[0]!r} is not a valid top:N; allowed: {MARKETS_FORMS}")
        return MarketSelection("top", top=int(count))
    bad = [part for part in parts if not _SYMBOL.match(part)]
    if bad:
        raise ValueError(f"{bad[0]!r} is not a symbol (upper-case letters and digits, e.g. BTCUSDT); allowed: {MARKETS_FORMS}")
    return MarketSelection("list", tuple(parts))
