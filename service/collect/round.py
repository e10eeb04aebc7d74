"""One collection round: every source's new rows into the store, then the changed markets' frames refreshed."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from redis.exceptions import RedisError

from engine.ranges import DAY_MS
from service.clock import Clock, now_ms
from service.collect.source import Batch, MarketSource, StreamingSource
from service.collect.venues.errors import VenueError
from service.compute.refresh import Refresher
from service.markets import AGGREGATE_EXCHANGE, coin_of
from service.metrics import COLLECT_ERRORS
from service.settings import Settings
from service.store.chunks import CANDLES, OPEN_INTEREST
from service.store.jobs import JobQueue, QueuedRefresh
from service.store.leases import Leases
from service.store.outage import STORE, is_store_error
from service.store.writer import Store

log = logging.getLogger(__name__)


class Refreshes(Protocol):
    """Where a collection sends markets with new bars: refreshed here (tests, one-shot jobs) or queued for workers."""

    async def refresh(self, exchange: str, symbol: str, now: int) -> list[str]: ...


@dataclass(slots=True)
class Collection:
    """Collects from every source into the store and has the markets that changed refreshed."""

    store: Store
    settings: Settings
    sources: list[MarketSource]
    refresher: Refreshes
    clock: Clock = now_ms
    # With several collect replicas: the shards of markets this one holds (None: every market).
    leases: Leases | None = None
    _bootstrapped: set[tuple[str, str]] = field(default_factory=set)
    # Per market, the open time of the newest bar this process has stored.
    _stored_until: dict[tuple[str, str], int] = field(default_factory=dict)

    @classmethod
    def create(cls, store: Store, settings: Settings, sources: Sequence[MarketSource], clock: Clock = now_ms) -> Collection:
        """A collection whose changed markets are refreshed in this process."""
        return cls(store, settings, list(sources), Refresher(store, settings), clock)

    @classmethod
    def queued(
        cls, store: Store, settings: Settings, sources: Sequence[MarketSource], clock: Clock = now_ms, leases: Leases | None = None
    ) -> Collection:
        """A collection whose changed markets are queued for the workers (:mod:`service.compute.worker`)."""
        return cls(store, settings, list(sources), QueuedRefresh(JobQueue(store.redis)), clock, leases)

    async def bootstrap(self, source: MarketSource, symbol: str, now: int) -> Batch:
        """Register the market and backfill what the store lacks (from its last bar, or backfill_days)."""
        await self.store.add_market(source.exchange, symbol)
        last = await self.store.last_candle_ts(source.exchange, symbol)
        start = now - int(self.settings.backfill_days * DAY_MS)
        if last is not None:
            start = max(start, last)
        start -= start % source.step_ms
        return await source.backfill(symbol, start, now)

    async def store_batch(self, exchange: str, symbol: str, batch: Batch, *, announce: bool = True) -> None:
        """Write a batch; its new liquidations go on the store's feed unless ``announce`` is false (a backfill)."""
        # Bars or open interest that change what frames were built on (a gap filled late, a
        # correction): the refresher drops those frames from history (their inputs changed).
        for kind, rows in ((CANDLES, batch.candles), (OPEN_INTEREST, batch.open_interest)):
            revised = await self.store.revision_in(kind, exchange, symbol, rows)
            if revised is not None:
                await self.store.note_revision(exchange, symbol, revised)
                if self.settings.aggregate and exchange in self._venues():
                    await self.store.note_revision(AGGREGATE_EXCHANGE, coin_of(symbol), revised)
        await self.store.upsert_candles(exchange, symbol, batch.candles)
        await self.store.upsert_open_interest(exchange, symbol, batch.open_interest)
        await self.store.add_liquidations(exchange, symbol, batch.liquidations, announce=announce)
        await self.store.upsert_funding(exchange, symbol, batch.funding)
        await self.store.upsert_long_short(exchange, symbol, batch.long_short)
        await self.store.upsert_taker(exchange, symbol, batch.taker)
        if batch.meta:
            await self.store.set_market_meta(exchange, symbol, **batch.meta)

    async def collect_once(self, now: int | None = None) -> list[tuple[str, str]]:
        """One round over every source (concurrently) and symbol; returns the markets whose frames were refreshed.

        With ``settings.aggregate``, the ``all`` market of every coin with a refreshed venue market is rebuilt too.
        """
        now = self.clock() if now is None else now
        rounds = await asyncio.gather(*(self._collect_source(source, now) for source in self.sources))
        changed = [market for markets in rounds for market in markets]
        if self.settings.aggregate:
            venues = self._venues()
            for coin in sorted({coin_of(symbol) for exchange, symbol in changed if exchange in venues}):
                try:
                    if await self.refresher.refresh(AGGREGATE_EXCHANGE, coin, now):
                        changed.append((AGGREGATE_EXCHANGE, coin))
                except Exception as exc:
                    if is_store_error(exc):
                        STORE.down(exc, "collecting")
                    else:
                        log.exception("aggregating %s failed", coin)
        return changed

    def _venues(self) -> dict[str, MarketSource]:
        """Sources that are exchanges (summed into the ``all`` markets); the synthetic market is not."""
        return {source.exchange: source for source in self.sources if source.exchange != "synthetic"}

    async def follow_markets(self, source: MarketSource, now: int) -> list[str]:
        """The source's markets now (its list read again when due: LIQMAP_MARKETS all / top:N);
        those this process collects have their kline streams followed."""
        refresh = getattr(source, "refresh_markets", None)
        if refresh is not None:
            try:
                await refresh(now)
            except Exception:
                log.exception("reading the market list of %s failed; keeping the markets followed", source.exchange)
        symbols = source.symbols()
        follow = getattr(source, "follow", None)
        if follow is not None:
            follow([s for s in symbols if self.leases is None or self.leases.owns(source.exchange, s)])
        listed = set(symbols)
        for market in [m for m in self._bootstrapped if m[0] == source.exchange and m[1] not in listed]:
            self._bootstrapped.discard(market)  # delisted: should it come back, backfilled from its last bar
        return symbols

    async def _check_stored(self, source: MarketSource) -> None:
        """Markets whose newest stored bar is older than the newest this process stored: the store
        lost its last writes (a restart without them, a failover to a replica that lagged, a restore).
        They are backfilled again from the store's newest bar, and their streamed liquidations
        since then written again."""
        markets = [(source.exchange, symbol) for symbol in source.symbols() if (source.exchange, symbol) in self._stored_until]
        markets = [market for market in markets if market in self._bootstrapped]
        if not markets:
            return
        try:
            indexes = await self.store.chunk_indexes(CANDLES, markets)
        except RedisError as exc:
            STORE.down(exc, "collecting")  # the writes fail too, and those markets are backfilled
            return
        lost = []
        for market, index in zip(markets, indexes):
            newest = max((info.last_ms for info in index.values()), default=None)
            if newest is not None and newest >= self._stored_until[market]:
                continue
            lost.append(f"{market[0]}:{market[1]}")
            self._bootstrapped.discard(market)
            if isinstance(source, StreamingSource):
                source.resend_liquidations(market[1], 0 if newest is None else newest)
        if lost:
            log.warning("the store lost the newest bars of %s; filling them again from the venue", ", ".join(lost))

    def _not_stored(self, source: MarketSource, symbol: str, batch: Batch | None) -> None:
        """What a poll fetched may not all be stored: the next round starts again from the
        market's last stored bar (the venue fills the gap); streamed liquidations, not to be had
        again, are kept for it."""
        self._bootstrapped.discard((source.exchange, symbol))
        if batch is not None and isinstance(source, StreamingSource):
            source.keep_liquidations(symbol, batch.liquidations)

    async def _collect_source(self, source: MarketSource, now: int) -> list[tuple[str, str]]:
        changed: list[tuple[str, str]] = []
        await self._check_stored(source)
        for symbol in await self.follow_markets(source, now):
            market = (source.exchange, symbol)
            if self.leases is not None and not self.leases.owns(*market):
                # Another replica collects it; should it come back here, it is backfilled from its last bar.
                self._bootstrapped.discard(market)
                continue
            batch = None
            try:
                if market not in self._bootstrapped:
                    batch = await self.bootstrap(source, symbol, now)
                else:
                    batch = await source.poll(symbol, now)
                if self.leases is not None and not await self.leases.still_holds(*market):
                    self._bootstrapped.discard(market)
                    continue  # the lease went meanwhile: its new holder writes the market
                fresh = market not in self._bootstrapped
                await self.store_batch(source.exchange, symbol, batch, announce=not fresh)
                STORE.up()
                if len(batch.candles):
                    self._stored_until[market] = max(self._stored_until.get(market, 0), int(batch.candles["ts_ms"][-1]))
                self._bootstrapped.add(market)
                if batch.candles.size or fresh:
                    await self.refresher.refresh(source.exchange, symbol, now)
                    changed.append(market)
            except asyncio.CancelledError:
                # The round ran past its time, or the process stops, maybe between fetching
                # bars and storing them.
                self._not_stored(source, symbol, batch)
                raise
            except VenueError as exc:
                # The venue is down, limiting us or sent garbage: expected, said in one line.
                log.warning("collecting %s:%s failed: %s", source.exchange, symbol, exc)
                COLLECT_ERRORS.labels(source.exchange).inc()
            except Exception as exc:
                # One market's failure must not stop the others or the scheduler. What was
                # fetched may not have been stored (the store was down).
                self._not_stored(source, symbol, batch)
                if is_store_error(exc):
                    STORE.down(exc, "collecting")  # one line per outage, not one per market and round
                else:
                    log.exception("collecting %s:%s failed", source.exchange, symbol)
                COLLECT_ERRORS.labels(source.exchange).inc()
        return changed
