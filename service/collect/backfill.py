"""``liqmap backfill``: history into the store, resumable and idempotent, with a progress bar.

Each market is fetched in day-sized chunks, oldest first. A chunk whose candles are
all stored already is skipped (a chunk's open interest is written before its
candles, so complete candles mean a complete chunk); everything else is upserted by
timestamp, so running the same backfill twice changes nothing.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import TextIO

from service.collect.venues.base import DAY_MS, ExchangeCollector
from service.store.writer import Store


@dataclass(slots=True)
class BackfillResult:
    exchange: str
    symbol: str
    chunks: int = 0
    skipped: int = 0
    candles: int = 0
    open_interest: int = 0


class ProgressBar:
    """One line per market, redrawn in place: ``binance BTCUSDT [#####.....] 3/7 chunks``."""

    def __init__(self, label: str, total: int, out: TextIO = sys.stderr, width: int = 30) -> None:
        self.label, self.total, self.out, self.width = label, max(total, 1), out, width
        self.done = 0
        self.started = time.monotonic()

    def advance(self, note: str = "") -> None:
        self.done += 1
        filled = self.width * self.done // self.total
        elapsed = time.monotonic() - self.started
        end = "\n" if self.done >= self.total else ""
        self.out.write(f"\r{self.label} [{'#' * filled}{'.' * (self.width - filled)}] {self.done}/{self.total} {note} {elapsed:.1f}s{end}")
        self.out.flush()


async def backfill_market(
    store: Store, collector: ExchangeCollector, symbol: str, start_ms: int, end_ms: int, out: TextIO | None = sys.stderr
) -> BackfillResult:
    """Fetch and store ``[start_ms, end_ms)`` of one market; returns what was written and skipped."""
    exchange = collector.exchange
    await store.add_market(exchange, symbol)
    step = collector.step_ms
    result = BackfillResult(exchange, symbol)
    chunks = -(-(end_ms - start_ms) // collector.backfill_chunk_ms)
    bar = ProgressBar(f"{exchange} {symbol}", chunks, out) if out is not None else None
    closed_until = end_ms - end_ms % step

    async def complete(chunk_start: int, chunk_end: int) -> bool:
        expected = (min(chunk_end, closed_until) - chunk_start) // step
        stored = await store.read_candles(exchange, symbol, chunk_start, chunk_end)
        return expected > 0 and len(stored) >= expected

    async for chunk in collector.backfill_chunks(symbol, start_ms, end_ms, skip=complete):
        result.chunks += 1
        if chunk.skipped:
            result.skipped += 1
        result.open_interest += await store.upsert_open_interest(exchange, symbol, chunk.batch.open_interest)
        result.candles += await store.upsert_candles(exchange, symbol, chunk.batch.candles)
        await store.upsert_long_short(exchange, symbol, chunk.batch.long_short)
        await store.upsert_taker(exchange, symbol, chunk.batch.taker)
        if bar is not None:
            bar.advance("skipped (stored)" if chunk.skipped else f"{len(chunk.batch.candles)} bars")
    return result


def window(days: float, now_ms: int) -> tuple[int, int]:
    """``[now - days, now)`` with both ends on a minute (the bar in progress is not history yet)."""
    end = now_ms - now_ms % 60_000
    return end - int(days * DAY_MS) // 60_000 * 60_000, end
