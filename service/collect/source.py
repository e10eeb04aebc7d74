"""The interface every market source implements (synthetic market, exchange collectors)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from service.store.rows import CANDLE_DTYPE, FUNDING_DTYPE, LIQUIDATION_DTYPE, LONG_SHORT_DTYPE, OPEN_INTEREST_DTYPE, TAKER_DTYPE, empty


@dataclass(slots=True)
class Batch:
    """What one collection produced for one symbol: canonical rows, oldest first."""

    candles: np.ndarray = field(default_factory=lambda: empty(CANDLE_DTYPE))
    open_interest: np.ndarray = field(default_factory=lambda: empty(OPEN_INTEREST_DTYPE))
    liquidations: np.ndarray = field(default_factory=lambda: empty(LIQUIDATION_DTYPE))
    # The venue's current funding rate as observed, and its public long/short account ratio.
    funding: np.ndarray = field(default_factory=lambda: empty(FUNDING_DTYPE))
    long_short: np.ndarray = field(default_factory=lambda: empty(LONG_SHORT_DTYPE))
    # Taker buy/sell volume per venue period, where the venue's bars do not split it.
    taker: np.ndarray = field(default_factory=lambda: empty(TAKER_DTYPE))
    # Market metadata observed with the rows (mark price, funding, margin tiers), stored as is.
    meta: dict[str, str | int | float] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(len(self.candles) or len(self.open_interest) or len(self.liquidations) or len(self.funding) or len(self.long_short) or len(self.taker))


class MarketSource(Protocol):
    """A venue (or simulated venue) that yields canonical rows per symbol.

    ``exchange`` is the lowercase venue name used in keys and URLs.
    Candles are 1m bars (``step_ms``); only closed bars are returned.
    """

    exchange: str
    step_ms: int

    def symbols(self) -> list[str]:
        """Canonical symbol names this source serves (e.g. ``BTCUSDT``)."""
        ...

    async def backfill(self, symbol: str, start_ms: int, end_ms: int) -> Batch:
        """Rows for bars opening in ``[start_ms, end_ms)``."""
        ...

    async def poll(self, symbol: str, now_ms: int) -> Batch:
        """Rows that became available since the previous poll (or backfill) up to ``now_ms``."""
        ...


@runtime_checkable
class StreamingSource(MarketSource, Protocol):
    """A source with live connections (exchange collectors): the app starts and closes it.

    ``start(sink)`` opens its streams; events are handed to ``sink(exchange, symbol, rows)``
    as they arrive (the store's ``add_liquidations``). ``close()`` ends them.
    """

    async def start(self, sink: Callable[[str, str, np.ndarray], Awaitable[int]] | None = None) -> None: ...

    async def close(self) -> None: ...

    def keep_liquidations(self, symbol: str, rows: np.ndarray) -> None:
        """Take back the events of a polled batch whose write failed (they are written with the next)."""
        ...

    def resend_liquidations(self, symbol: str, since_ms: int) -> int:
        """Write again the remembered events of ``symbol`` from ``since_ms`` on (the store lost them)."""
        ...
