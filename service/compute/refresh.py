"""Keeping a market's frames current: load its inputs, build every configured frame, encode and store them."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import msgspec

from engine.build import build_frames
from engine.frame import Frame
from engine.ranges import DAY_MS, RANGES
from engine.series import MarketSeries
from service.compute.inputs import load_aggregate_series, load_market_series
from service.markets import AGGREGATE_EXCHANGE
from service.metrics import FRAMES_COMPUTED, MARKET_REFRESH_SECONDS
from service.settings import Settings
from service.store.writer import Store
from service.wire.codec import encode_event, encode_frame

log = logging.getLogger(__name__)


@dataclass(slots=True)
class EncodedFrame:
    frame: Frame
    fields: dict[str, bytes]
    event: bytes


def compute_frames(
    series: MarketSeries,
    *,
    exchange: str,
    symbol: str,
    models: tuple[str, ...],
    ranges: tuple[str, ...],
    rows: int,
    generated_at_ms: int,
    sources: dict[str, dict[str, Any]] | None = None,
) -> list[EncodedFrame]:
    """CPU work of one market's refresh: every model × range, built and encoded. Runs in a thread."""
    frames = build_frames(
        series,
        models=models,
        ranges=ranges,
        exchange=exchange,
        symbol=symbol,
        generated_at_ms=generated_at_ms,
        rows=rows,
        sources=sources,
    )
    return [EncodedFrame(frame, encode_frame(frame), encode_event(frame)) for frame in frames]


@dataclass(slots=True)
class Refresher:
    """Rebuilds and stores the frames of one market (or of a coin summed over its venues) on request."""

    store: Store
    settings: Settings

    def span_ms(self) -> int:
        """Inputs a refresh loads: the longest configured range."""
        return max(RANGES[name].span_ms for name in self.settings.ranges)

    async def recompute(self, exchange: str, symbol: str, step_ms: int, now: int) -> list[str]:
        """Rebuild and store every configured frame of one market; returns the frame ids."""
        series = await load_market_series(self.store, exchange, symbol, span_ms=self.span_ms(), step_ms=step_ms)
        if series is None:
            return []
        frame_ids = await self.publish(exchange, symbol, series, now)
        await self.store.trim(
            exchange,
            symbol,
            candles_before_ms=now - int(self.settings.candle_retention_days * DAY_MS),
            liquidations_before_ms=now - int(self.settings.liquidation_retention_days * DAY_MS),
        )
        return frame_ids

    async def recompute_aggregate(self, coin: str, venue_markets: Iterable[tuple[str, str]], now: int) -> list[str]:
        """Rebuild the ``all`` market of one coin from its venue markets ``(exchange, symbol)``; returns the frame ids.

        The market's metadata names the venues that contributed and what each covered.
        """
        aggregated = await load_aggregate_series(self.store, venue_markets, span_ms=self.span_ms())
        if aggregated is None:
            return []
        series, coverage = aggregated
        await self.store.add_market(AGGREGATE_EXCHANGE, coin)
        await self.store.set_market_meta(
            AGGREGATE_EXCHANGE, coin, venues=",".join(sorted(coverage)), coverage=msgspec.json.encode(coverage).decode()
        )
        return await self.publish(AGGREGATE_EXCHANGE, coin, series, now, sources=coverage)

    async def publish(
        self, exchange: str, symbol: str, series: MarketSeries, now: int, sources: dict[str, dict[str, Any]] | None = None
    ) -> list[str]:
        """Compute, encode and store every configured frame of one series; returns the frame ids.

        ``sources``: for an ``all`` market, what each venue covered (the frames carry it).
        """
        last = int(series.ts_ms[-1])
        step_ms = series.step_ms
        started = time.perf_counter()
        encoded = await asyncio.to_thread(
            compute_frames,
            series,
            exchange=exchange,
            symbol=symbol,
            models=self.settings.models,
            ranges=self.settings.ranges,
            rows=self.settings.frame_rows,
            generated_at_ms=now,
            sources=sources,
        )
        for item in encoded:
            frame = item.frame
            await self.store.put_frame(
                exchange,
                symbol,
                frame.model,
                frame.range,
                frame_id=frame.frame_id,
                data_until_ms=frame.data_until_ms,
                fields=item.fields,
                event=item.event,
                keep=self.settings.history_keep(frame.range),
                column_ms=RANGES[frame.range].column_ms,
            )
        FRAMES_COMPUTED.labels(exchange).inc(len(encoded))
        MARKET_REFRESH_SECONDS.observe(time.perf_counter() - started)
        await self.store.set_market_meta(exchange, symbol, last_update_ms=now, data_until_ms=last + step_ms)
        log.info("%s:%s: %d frames up to %d", exchange, symbol, len(encoded), last + step_ms)
        return [item.frame.frame_id for item in encoded]
