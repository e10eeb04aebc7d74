"""From sources to stored frames: collect, store, recompute changed markets."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import asdict, dataclass, field
from collections.abc import Iterable
from typing import Any

import msgspec
import numpy as np

from engine.aggregate import aggregate_series
from engine.build import build_frames
from engine.frame import Frame
from engine.models.margin import MarginTable
from engine.ranges import DAY_MS, RANGES
from engine.resample import align_open_interest
from engine.series import MarketSeries
from service.wire.codec import encode_event, encode_frame
from service.collect.venues.errors import VenueError
from service.collect.venues.tiers import margin_table_of
from service.markets import AGGREGATE_EXCHANGE, coin_of
from service.metrics import COLLECT_ERRORS, FRAMES_COMPUTED, MARKET_REFRESH_SECONDS
from service.settings import Settings
from service.collect.source import Batch, MarketSource
from service.store.writer import Store

log = logging.getLogger(__name__)


def now_ms() -> int:
    return int(time.time() * 1000)


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


async def load_market_series(store: Store, exchange: str, symbol: str, *, span_ms: int, step_ms: int = 60_000) -> MarketSeries | None:
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
    # Up to weeks of 1m bars: joined off the event loop (the API builds on-demand frames with this too).
    return await asyncio.to_thread(lambda: from_first_open_interest(series_from_rows(candles, open_interest, step_ms)))


async def load_aggregate_series(
    store: Store, venue_markets: Iterable[tuple[str, str]], *, span_ms: int
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


async def load_margin_table(store: Store, exchange: str, symbol: str) -> MarginTable | None:
    """The maintenance-margin tiers the market's venue published (kept in its metadata).

    None for ``all`` markets and markets without usable tiers yet: frames then
    use the shipped Binance table of the symbol (see :func:`engine.build.build_frame`).
    """
    if exchange == AGGREGATE_EXCHANGE:
        return None
    return margin_table_of(await store.market_meta(exchange, symbol), exchange)


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
    margin_table: MarginTable | None = None,
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
        margin_table=margin_table,
    )
    return [EncodedFrame(frame, encode_frame(frame), encode_event(frame)) for frame in frames]


@dataclass(slots=True)
class Pipeline:
    """Collects from every source into the store and keeps every market's frames current."""

    store: Store
    settings: Settings
    sources: list[MarketSource]
    _bootstrapped: set[tuple[str, str]] = field(default_factory=set)

    async def bootstrap(self, source: MarketSource, symbol: str, now: int) -> Batch:
        """Register the market and backfill what the store lacks (from its last bar, or backfill_days)."""
        await self.store.add_market(source.exchange, symbol)
        last = await self.store.last_candle_ts(source.exchange, symbol)
        start = now - int(self.settings.backfill_days * DAY_MS)
        if last is not None:
            start = max(start, last)
        start -= start % source.step_ms
        return await source.backfill(symbol, start, now)

    async def store_batch(self, exchange: str, symbol: str, batch: Batch) -> None:
        await self.store.upsert_candles(exchange, symbol, batch.candles)
        await self.store.upsert_open_interest(exchange, symbol, batch.open_interest)
        await self.store.add_liquidations(exchange, symbol, batch.liquidations)
        if batch.meta:
            await self.store.set_market_meta(exchange, symbol, **batch.meta)

    async def collect_once(self, now: int | None = None) -> list[tuple[str, str]]:
        """One round over every source (concurrently) and symbol; returns the markets whose frames were refreshed.

        With ``settings.aggregate``, the ``all`` market of every coin with a refreshed venue market is rebuilt too.
        """
        now = now_ms() if now is None else now
        rounds = await asyncio.gather(*(self._collect_source(source, now) for source in self.sources))
        changed = [market for markets in rounds for market in markets]
        if self.settings.aggregate:
            coins = sorted({coin_of(symbol) for exchange, symbol in changed if exchange in self._venues()})
            for coin in coins:
                try:
                    if await self.recompute_aggregate(coin, now):
                        changed.append((AGGREGATE_EXCHANGE, coin))
                except Exception:
                    log.exception("aggregating %s failed", coin)
        return changed

    def _venues(self) -> dict[str, MarketSource]:
        """Sources that are exchanges (summed into the ``all`` markets); the synthetic market is not."""
        return {source.exchange: source for source in self.sources if source.exchange != "synthetic"}

    async def _collect_source(self, source: MarketSource, now: int) -> list[tuple[str, str]]:
        changed: list[tuple[str, str]] = []
        for symbol in source.symbols():
            market = (source.exchange, symbol)
            try:
                if market not in self._bootstrapped:
                    batch = await self.bootstrap(source, symbol, now)
                else:
                    batch = await source.poll(symbol, now)
                await self.store_batch(source.exchange, symbol, batch)
                fresh = market not in self._bootstrapped
                self._bootstrapped.add(market)
                if batch.candles.size or fresh:
                    await self.recompute(source.exchange, symbol, source.step_ms, now)
                    changed.append(market)
            except VenueError as exc:
                # The venue is down, limiting us or sent garbage: expected, said in one line.
                log.warning("collecting %s:%s failed: %s", source.exchange, symbol, exc)
                COLLECT_ERRORS.labels(source.exchange).inc()
            except Exception:
                # One market's failure must not stop the others or the scheduler.
                log.exception("collecting %s:%s failed", source.exchange, symbol)
                COLLECT_ERRORS.labels(source.exchange).inc()
        return changed

    async def load_series(self, exchange: str, symbol: str, step_ms: int) -> MarketSeries | None:
        """The stored inputs of one market over the longest configured range (None: no bars yet)."""
        span = max(RANGES[name].span_ms for name in self.settings.ranges)
        return await load_market_series(self.store, exchange, symbol, span_ms=span, step_ms=step_ms)

    async def recompute(self, exchange: str, symbol: str, step_ms: int, now: int) -> list[str]:
        """Rebuild and store every configured frame of one market; returns the frame ids."""
        series = await self.load_series(exchange, symbol, step_ms)
        if series is None:
            return []
        frame_ids = await self.publish(exchange, symbol, series, now, margin_table=await load_margin_table(self.store, exchange, symbol))
        await self.store.trim(
            exchange,
            symbol,
            candles_before_ms=now - int(self.settings.candle_retention_days * DAY_MS),
            liquidations_before_ms=now - int(self.settings.liquidation_retention_days * DAY_MS),
        )
        return frame_ids

    async def recompute_aggregate(self, coin: str, now: int) -> list[str]:
        """Rebuild the ``all`` market of one coin from every venue that has it; returns the frame ids.

        The market's metadata names the venues that contributed and what each covered.
        """
        venues = {
            (exchange, symbol)
            for exchange, source in self._venues().items()
            for symbol in source.symbols()
            if coin_of(symbol) == coin
        }
        span = max(RANGES[name].span_ms for name in self.settings.ranges)
        aggregated = await load_aggregate_series(self.store, venues, span_ms=span)
        if aggregated is None:
            return []
        series, coverage = aggregated
        await self.store.add_market(AGGREGATE_EXCHANGE, coin)
        await self.store.set_market_meta(
            AGGREGATE_EXCHANGE, coin, venues=",".join(sorted(coverage)), coverage=msgspec.json.encode(coverage).decode()
        )
        return await self.publish(AGGREGATE_EXCHANGE, coin, series, now, sources=coverage)

    async def publish(
        self,
        exchange: str,
        symbol: str,
        series: MarketSeries,
        now: int,
        sources: dict[str, dict[str, Any]] | None = None,
        margin_table: MarginTable | None = None,
    ) -> list[str]:
        """Compute, encode and store every configured frame of one series; returns the frame ids.

        ``sources``: for an ``all`` market, what each venue covered (the frames carry it).
        ``margin_table``: the venue's tiers, for models that place levels by them.
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
            margin_table=margin_table,
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
