"""What the pipeline does not precompute, built when a client asks: leverage-filtered
frames and the per-tier liquidation map. Each is cached for as long as the newest frame
it derives from stays the newest."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from engine.build import build_frame
from engine.clusters import find_clusters
from engine.leverage import select_tiers
from engine.book import liquidation_map
from engine.models import get_model
from engine.ranges import RANGES
from engine.series import MarketSeries
from service.wire.codec import encode_frame
from service.wire.levels import levels_out
from service.wire.schemas import LevelsOut
from service.markets import AGGREGATE_EXCHANGE, coin_of
from service.compute.inputs import load_aggregate_series, load_market_series
from service.settings import Settings
from service.store.reader import StoreReader

T = TypeVar("T")


def check_leverage(model: str, leverage: str | None) -> str | None:
    """The leverage filter as the engine takes it (None for all tiers); ValueError names what is allowed."""
    selection = select_tiers(get_model(model).tiers, leverage)
    return None if selection.label == "all" else leverage


async def load_series(store: StoreReader, exchange: str, symbol: str, range_name: str) -> tuple[MarketSeries, dict[str, Any] | None] | None:
    """A market's inputs over one range (an ``all`` market summed over its venues, with their coverage)."""
    span = RANGES[range_name].span_ms
    if exchange != AGGREGATE_EXCHANGE:
        series = await load_market_series(store, exchange, symbol, span_ms=span)
        return None if series is None or not len(series) else (series, None)
    venues = [(venue, venue_symbol) for venue, venue_symbol in await store.markets() if venue not in (AGGREGATE_EXCHANGE, "synthetic") and coin_of(venue_symbol) == symbol]
    return await load_aggregate_series(store, venues, span_ms=span)


class OnDemand:
    """Derived results keyed by the newest frame's id, computed once each, the newest few kept."""

    def __init__(self, store: StoreReader, settings: Settings, max_entries: int = 64) -> None:
        self.store = store
        self.settings = settings
        self.max_entries = max_entries
        self._done: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
        self._running: dict[tuple[Any, ...], asyncio.Future[Any]] = {}

    async def _cached(self, key: tuple[Any, ...], make: Callable[[], Awaitable[T]]) -> T:
        if key in self._done:
            self._done.move_to_end(key)
            return self._done[key]  # type: ignore[no-any-return]
        if key in self._running:
            return await asyncio.shield(self._running[key])  # type: ignore[no-any-return]
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._running[key] = future
        try:
            value = await make()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning when nobody else waits
            raise
        finally:
            del self._running[key]
        future.set_result(value)
        if value is not None:
            self._done[key] = value
            while len(self._done) > self.max_entries:
                self._done.popitem(last=False)
        return value

    async def filtered_frame(self, exchange: str, symbol: str, model: str, range_name: str, leverage: str, based_on: str) -> dict[str, bytes] | None:
        """Every stored form of the frame with a leverage filter, for the data of frame ``based_on``."""

        async def make() -> dict[str, bytes] | None:
            loaded = await load_series(self.store, exchange, symbol, range_name)
            if loaded is None:
                return None
            series, sources = loaded

            def build() -> dict[str, bytes]:
                frame = build_frame(
                    series,
                    model=model,
                    range_name=range_name,
                    exchange=exchange,
                    symbol=symbol,
                    generated_at_ms=int(series.ts_ms[-1]) + series.step_ms,
                    rows=self.settings.frame_rows,
                    leverage=leverage,
                    sources=sources,
                )
                return {"id": frame.frame_id.encode(), **encode_frame(frame)}

            return await asyncio.to_thread(build)

        return await self._cached(("frame", based_on, leverage), make)

    async def levels(self, exchange: str, symbol: str, model: str, range_name: str, leverage: str | None, based_on: str) -> LevelsOut | None:
        """The liquidation map by tier, its largest rows and clusters, for the data of frame ``based_on``."""

        async def make() -> LevelsOut | None:
            loaded = await load_series(self.store, exchange, symbol, range_name)
            if loaded is None:
                return None
            series, _ = loaded

            def build() -> LevelsOut:
                book = liquidation_map(series, model=model, range_name=range_name, exchange=exchange, symbol=symbol, rows=self.settings.frame_rows, leverage=leverage)
                bands = find_clusters(book.y, book.long_usd.sum(axis=0), book.short_usd.sum(axis=0), book.price)
                return levels_out(based_on, book, bands)

            return await asyncio.to_thread(build)

        return await self._cached(("levels", based_on, leverage or "all"), make)
