"""What a native request asks for, validated once: the Litestar dependencies the controllers declare.

``frame_query``: an offered model and range of a canonically named market (no store read:
the newest-frame routes look the market up only when they have no frame for it).
``market``: a market the store has (404 otherwise), resolved after ``frame_query`` where a
route has one, so that a bad parameter is answered before the store is asked.

The routes that send a stored frame as it is (the hot path) call :func:`filtered_frame_query`
themselves: resolving dependencies costs 15-30 µs a request, a tenth to a fifth of such a
route's own cost (measured in-process against inline checks).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import NamedTuple

from litestar.di import NamedDependency, Provide
from litestar.params import FromPath

from service.api.params import LeverageParam, ModelParam, RangeParam, canonical_market, check_leverage_filter, check_market, check_model, check_range
from service.settings import Settings
from service.store.reader import StoreReader


@dataclass(frozen=True, slots=True)
class FrameQuery:
    """A request for a market's frames: canonical market, an offered model and range, the leverage filter."""

    exchange: str
    symbol: str
    model: str
    range_name: str
    leverage: str | None = None  # as the engine takes it; None: every tier


class Market(NamedTuple):
    """A market the store has, canonically named (a ``(exchange, symbol)`` pair, as the store lists them)."""

    exchange: str
    symbol: str


def frame_query(settings: Settings, exchange: str, symbol: str, model: str, range_name: str) -> FrameQuery:
    check_model(settings, model)
    check_range(settings, range_name)
    return FrameQuery(*canonical_market(exchange, symbol), model, range_name)


def filtered_frame_query(settings: Settings, exchange: str, symbol: str, model: str, range_name: str, leverage: str | None) -> FrameQuery:
    query = frame_query(settings, exchange, symbol, model, range_name)
    return replace(query, leverage=check_leverage_filter(model, leverage))


def provide_frame_query(
    settings: NamedDependency[Settings], exchange: FromPath[str], symbol: FromPath[str], model: ModelParam = "model1", range_name: RangeParam = "24h"
) -> FrameQuery:
    return frame_query(settings, exchange, symbol, model, range_name)


def provide_filtered_frame_query(
    settings: NamedDependency[Settings],
    exchange: FromPath[str],
    symbol: FromPath[str],
    model: ModelParam = "model1",
    range_name: RangeParam = "24h",
    leverage: LeverageParam = None,
) -> FrameQuery:
    return filtered_frame_query(settings, exchange, symbol, model, range_name, leverage)


async def provide_market_of_query(store: NamedDependency[StoreReader], frame_query: NamedDependency[FrameQuery]) -> Market:
    return Market(*await check_market(store, frame_query.exchange, frame_query.symbol))


async def provide_market(store: NamedDependency[StoreReader], exchange: FromPath[str], symbol: FromPath[str]) -> Market:
    return Market(*await check_market(store, exchange, symbol))


FRAME_QUERY = Provide(provide_frame_query, sync_to_thread=False)
FILTERED_FRAME_QUERY = Provide(provide_filtered_frame_query, sync_to_thread=False)
MARKET_OF_QUERY = Provide(provide_market_of_query)
MARKET = Provide(provide_market)
