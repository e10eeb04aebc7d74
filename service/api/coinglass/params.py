"""Coinglass's query parameters as its v4 API documents them, and the dependencies that validate them.

Parameters are optional to Python so that a missing one is answered with a message
saying what to send; the OpenAPI document states which are required. Checks run
parameters first, then against the markets the store has.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar.di import NamedDependency, Provide
from litestar.params import PathParameter, QueryParameter

from service.api.dependencies import FrameQuery, Market
from service.api.errors import NotFound, shown
from service.api.params import (
    MODEL_ENUM,
    RANGE_ENUM,
    Markets,
    canonical_market,
    check_exchange,
    check_model,
    check_offered,
    check_choice,
    check_int_range,
    check_range,
    check_time_span,
    epoch_ms_param,
    market_in,
    require,
)
from service.compute.history import HistoryQuery
from service.compute.realized import INTERVALS_MS
from service.markets import AGGREGATE_EXCHANGE
from service.settings import Settings
from service.store.reader import StoreReader
from service.wire.coinglass import MAP_RANGES

HISTORY_LIMIT = 1000  # Coinglass's default and maximum
UNITS = ("usd", "coin")


def query_param(description: str, *, required: bool = False, name: str | None = None, **schema: Any) -> Any:
    """A query parameter as Coinglass documents it; ``schema`` (enum, pattern, bounds) goes to the OpenAPI document."""
    return QueryParameter(name=name, description=description, required=required, schema_extra=schema or None)


# Names have a letter or digit (a value of only spaces or separators is no name).
NAMED = "[A-Za-z0-9]"
ExchangeParam = Annotated[str | None, query_param("Exchange as Coinglass names it, e.g. Binance, OKX, Bybit (any case)", required=True, pattern=NAMED)]
PairParam = Annotated[str | None, query_param("Trading pair, e.g. BTCUSDT", required=True, pattern=NAMED)]
CoinParam = Annotated[str | None, query_param("Coin, e.g. BTC", required=True, pattern=NAMED)]
IntervalParam = Annotated[str | None, query_param(f"Bucket width: {', '.join(INTERVALS_MS)}", required=True, enum=list(INTERVALS_MS))]


def interval_param(default: str) -> Any:
    """``interval`` as Coinglass documents it for its market-data routes: required there, with a documented default (used when absent)."""
    return query_param(
        f"Bucket width: {', '.join(INTERVALS_MS)} (Coinglass's older spelling h1, m5, d1, w1 too; absent: {default}, the documented default)",
        enum=[*INTERVALS_MS, *(name[-1] + name[:-1] for name in INTERVALS_MS)],
    )


UnitParam = Annotated[str | None, query_param("Unit of the values: usd (default) or coin", enum=list(UNITS))]
LimitParam = Annotated[int | None, query_param(f"Buckets, 1..{HISTORY_LIMIT} (default {HISTORY_LIMIT})", minimum=1, maximum=HISTORY_LIMIT)]
StartParam = Annotated[int | None, epoch_ms_param("Start, epoch milliseconds")]
EndParam = Annotated[int | None, epoch_ms_param("End, epoch milliseconds (default: now; later is taken as now)")]
HeatmapRangeParam = Annotated[str | None, query_param("12h, 24h, 3d, 7d, 30d, 90d, 180d or 1y", required=True, name="range", **RANGE_ENUM)]
MapRangeParam = Annotated[str | None, query_param("1d, 7d or 30d", required=True, name="range", enum=list(MAP_RANGES))]
ModelPath = Annotated[str, PathParameter(description="model1, model2, model3 or model4", schema_extra=MODEL_ENUM)]


def history_interval(value: str | None, default: str) -> int:
    """Bucket width (ms) of an ``interval`` (``default`` when absent); Coinglass's older ``h1`` spelling is ``1h``. 400 naming the allowed ones."""
    text = default if value is None or not value.strip() else value.strip()
    if text[:1] in "mhdw" and text[1:].isdigit():
        text = text[1:] + text[0]
    return INTERVALS_MS[check_choice("interval", text, INTERVALS_MS)]


def check_unit(value: str | None) -> str:
    """``usd`` (the default) or ``coin``, any case; else 400."""
    return "usd" if value is None or not value.strip() else check_choice("unit", value.strip().lower(), UNITS)


def frame_range(settings: Settings, value: str | None, table: dict[str, str], default: str | None = None) -> str:
    """The frame range answering a map / max-pain ``range`` (404 for those whose frame this deployment does not compute)."""
    offered = [name for name, frame_range in table.items() if frame_range in settings.ranges]
    chosen = default if value is None and default is not None else require("range", value, next(iter(table)))
    return table[check_offered("range", chosen, table, offered)]


def aggregate_of(markets: Markets, coin: str) -> Market:
    """The market of a coin's aggregate over every exchange, else 404 naming the coins that have one."""
    if (AGGREGATE_EXCHANGE, coin) in markets:
        return Market(AGGREGATE_EXCHANGE, coin)
    coins = sorted(symbol for exchange, symbol in markets if exchange == AGGREGATE_EXCHANGE)
    raise NotFound(f"no aggregate over all exchanges for coin {shown(coin)}; coins with one: {', '.join(coins) or 'none yet'}", allowed=coins)


def pair_heatmap_query(settings: Settings, model: str, exchange: str | None, symbol: str | None, range_: str | None) -> FrameQuery:
    """A pair heatmap request (checked in the route: the hot path, see :mod:`service.api.dependencies`)."""
    check_model(settings, model)
    exchange = require("exchange", exchange, "Binance")
    symbol = require("symbol", symbol, "BTCUSDT")
    range_name = check_range(settings, require("range", range_, "3d"))
    return FrameQuery(*canonical_market(exchange, symbol), model, range_name)


def coin_heatmap_query(settings: Settings, model: str, symbol: str | None, range_: str | None) -> FrameQuery:
    """A coin heatmap request: the market is the coin's aggregate ``all:<COIN>``."""
    check_model(settings, model)
    coin = require("symbol", symbol, "BTC").upper()
    range_name = check_range(settings, require("range", range_, "3d"))
    return FrameQuery(AGGREGATE_EXCHANGE, coin, model, range_name)


async def provide_markets(store: NamedDependency[StoreReader]) -> Markets:
    return await store.markets()


def provide_pair(markets: NamedDependency[Markets], exchange: ExchangeParam = None, symbol: PairParam = None) -> Market:
    return Market(*market_in(markets, require("exchange", exchange, "Binance"), require("symbol", symbol, "BTCUSDT")))


def provide_venue_pair(markets: NamedDependency[Markets], exchange: ExchangeParam = None, symbol: PairParam = None) -> Market:
    """A pair on an exchange (not a coin's aggregate ``all``), else 404 naming what there is."""
    exchange_id = check_exchange(markets, require("exchange", exchange, "Binance"))
    return Market(*market_in(markets, exchange_id, require("symbol", symbol, "BTCUSDT")))


def provide_coin_aggregate(markets: NamedDependency[Markets], symbol: CoinParam = None) -> Market:
    return aggregate_of(markets, require("symbol", symbol, "BTC").upper())


def provide_exchange(markets: NamedDependency[Markets], exchange: ExchangeParam = None) -> str:
    """The store's id of a required, known exchange."""
    return check_exchange(markets, require("exchange", exchange, "Binance"))


def provide_map_range(settings: NamedDependency[Settings], range_: MapRangeParam = None) -> str:
    """The frame range whose last column is the book of a map ``range``."""
    return frame_range(settings, range_, MAP_RANGES)


MARKETS = Provide(provide_markets)
PAIR = Provide(provide_pair, sync_to_thread=False)
VENUE_PAIR = Provide(provide_venue_pair, sync_to_thread=False)
AGGREGATE = Provide(provide_coin_aggregate, sync_to_thread=False)
EXCHANGE = Provide(provide_exchange, sync_to_thread=False)
MAP_RANGE = Provide(provide_map_range, sync_to_thread=False)


def history_query(default_interval: str) -> Provide:
    """The dependency parsing ``interval`` (``default_interval`` when absent, as Coinglass documents it),
    ``limit`` (default 1000), ``start_time`` and ``end_time`` of a market-data history route."""

    def provide(interval: str | None = None, limit: int | None = None, start_time: int | None = None, end_time: int | None = None) -> HistoryQuery:
        check_time_span(start_time, end_time)
        return HistoryQuery(history_interval(interval, default_interval), check_int_range("limit", limit, 1, HISTORY_LIMIT, HISTORY_LIMIT), start_time, end_time)

    # Resolved objects, not this module's postponed strings: the interval's default is this call's.
    provide.__annotations__ = {
        "interval": Annotated[str | None, interval_param(default_interval)],
        "limit": LimitParam,
        "start_time": StartParam,
        "end_time": EndParam,
        "return": HistoryQuery,
    }
    return Provide(provide, sync_to_thread=False)
