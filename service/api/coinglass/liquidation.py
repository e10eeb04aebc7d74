"""The Coinglass-compatible routes: same paths, parameters and shapes as Coinglass's v4 API.

Exchanges are named as Coinglass spells them (``Binance``, ``OKX``, ``Bybit``),
in any case; pairs as ``BTCUSDT``; coins as ``BTC``. Every answer is the
envelope ``{"code": "0", "msg": "success", "data": ...}``; errors carry the
real HTTP status with ``code`` set to it and ``msg`` saying what is allowed.
Realized-liquidation routes sum the events in the store (kept for
``liquidation_retention_days``); map routes read the newest stored frame.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import numpy as np
from litestar import Controller, Request, get
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example
from litestar.params import PathParameter, QueryParameter
from litestar.response.base import ASGIResponse

from engine.ranges import DAY_MS, HOUR_MS
from service.api.errors import NotFound, Unavailable
from service.api.examples import COINGLASS_HEATMAP, envelope_error
from service.api.newest import LatestFrames, stored_response
from service.api.params import (
    AMOUNT_PATTERN,
    MAX_EPOCH_MS,
    MODEL_ENUM,
    RANGE_ENUM,
    canonical_market,
    check_amount,
    check_choice,
    check_coin,
    check_exchange,
    check_exchange_list,
    check_int_range,
    check_market,
    check_model,
    check_offered,
    check_range,
    check_time_span,
    exchanges_of,
    pairs_of,
    require,
)
from service.store.rows import SIDE_LONG, SIDE_SHORT
from service.wire.codec import FIELD_COINGLASS_JSON, FIELD_V1_MSGPACK
from service.markets import AGGREGATE_EXCHANGE, coin_of
from service.wire.coinglass import (
    MAP_RANGES,
    MAX_PAIN_RANGES,
    LiquidationLevels,
    coin_markets,
    exchange_name,
    liquidation_levels,
    map_data,
    largest_level_of_side,
    number_text,
    order_sides,
    quote_of,
)
from service.clock import Clock
from service.compute.realized import INTERVALS_MS, bucket_totals, history_window, newest_at_least, stack, window_totals
from service.wire.schemas import (
    CoinglassCoinHistory,
    CoinglassCoinTotals,
    CoinglassExchangeTotals,
    CoinglassHeatmap,
    CoinglassLiquidationMap,
    CoinglassLiquidationOrder,
    CoinglassMaxPain,
    CoinglassPair,
    CoinglassPairHistory,
    Envelope,
)
from service.settings import Settings
from service.store.reader import StoreReader

HISTORY_LIMIT = 1000  # Coinglass's default and maximum
ORDER_LIMIT = 200
ORDER_LOOKBACK_MS = 7 * DAY_MS
TOTALS_WINDOWS = {"24h": 24 * HOUR_MS, "12h": 12 * HOUR_MS, "4h": 4 * HOUR_MS, "1h": HOUR_MS}
EXCHANGE_LIST_RANGES = ("1h", "4h", "12h", "24h")
USD_DECIMALS = 5
HEATMAP_EXAMPLE = COINGLASS_HEATMAP.value["data"]


def _query(description: str, *, required: bool = False, name: str | None = None, **schema: Any) -> Any:
    """A query parameter as Coinglass documents it; ``schema`` (enum, pattern, bounds) goes to the OpenAPI document.

    Parameters are optional to Python so that the route itself answers a missing one
    with a message saying what to send; the document states what is required.
    """
    return QueryParameter(name=name, description=description, required=required, schema_extra=schema or None)


# Names have a letter or digit (a value of only spaces or separators is no name).
NAMED = "[A-Za-z0-9]"
ExchangeParam = Annotated[str | None, _query("Exchange as Coinglass names it, e.g. Binance, OKX, Bybit (any case)", required=True, pattern=NAMED)]
PairParam = Annotated[str | None, _query("Trading pair, e.g. BTCUSDT", required=True, pattern=NAMED)]
CoinParam = Annotated[str | None, _query("Coin, e.g. BTC", required=True, pattern=NAMED)]
IntervalParam = Annotated[str | None, _query(f"Bucket width: {', '.join(INTERVALS_MS)}", required=True, enum=list(INTERVALS_MS))]
LimitParam = Annotated[int | None, _query(f"Buckets, 1..{HISTORY_LIMIT} (default {HISTORY_LIMIT})", minimum=1, maximum=HISTORY_LIMIT)]
StartParam = Annotated[int | None, _query("Start, epoch milliseconds", minimum=0, maximum=MAX_EPOCH_MS)]
EndParam = Annotated[int | None, _query("End, epoch milliseconds (default: now)", minimum=0, maximum=MAX_EPOCH_MS)]
HeatmapRangeParam = Annotated[str | None, _query("12h, 24h, 3d, 7d, 30d, 90d, 180d or 1y", required=True, name="range", **RANGE_ENUM)]
MapRangeParam = Annotated[str | None, _query("1d, 7d or 30d", required=True, name="range", enum=list(MAP_RANGES))]
ModelPath = Annotated[str, PathParameter(description="model1, model2 or model3", schema_extra=MODEL_ENUM)]


def _ok(data: Any) -> Envelope[Any]:
    return Envelope(code="0", msg="success", data=data)


def _error_spec(status: int, description: str, message: str) -> ResponseSpec:
    return ResponseSpec(generate_examples=False, data_container=Envelope[None], description=description, examples=[envelope_error(status, message)])


ERRORS = {
    400: _error_spec(400, "Bad parameter; msg names what is allowed", "interval must be one of 1m, 3m, 5m, 15m, 30m, 1h, 4h, 6h, 8h, 12h, 1d, 1w; got '2h'"),
    404: _error_spec(404, "Unknown exchange, pair or coin", "unknown exchange 'Kraken'; known exchanges: Binance, Bybit, OKX"),
}
UNAVAILABLE = {503: _error_spec(503, "No frame computed yet (Retry-After)", "no model1 24h frame for binance:BTCUSDT yet; it is being computed")}


def _responses(container: Any, description: str, data_example: Any, *, frames: bool = False) -> dict[int, ResponseSpec]:
    """The 200 answer with Coinglass's documented example, and the error answers."""
    example = Example(summary="Coinglass's documented shape", value={"code": "0", "msg": "success", "data": data_example})
    ok = ResponseSpec(generate_examples=False, data_container=Envelope[container], description=description, examples=[example])
    return {200: ok, **ERRORS, **(UNAVAILABLE if frames else {})}


def _usd(values: np.ndarray) -> list[float]:
    return np.round(values, USD_DECIMALS).tolist()


def _not_computed_yet(market: tuple[str, str], model: str, range_name: str) -> Unavailable:
    return Unavailable(f"no {model} {range_name} frame for {market[0]}:{market[1]} yet; it is being computed", headers={"Retry-After": "5"})


async def _stored_heatmap(
    request: Request, market: tuple[str, str], model: str, range_name: str, check_exists: Callable[[], Awaitable[object]]
) -> ASGIResponse:
    """A market's newest Coinglass heatmap as stored (gzip to clients that take it), from the cache of newest frames.

    Without one, ``check_exists`` answers 404 for a market we do not have; else 503 while it is computed.
    """
    frames: LatestFrames = request.app.state.frames
    latest = await frames.get(*market, model, range_name, FIELD_COINGLASS_JSON)
    if latest is None:
        await check_exists()
        raise _not_computed_yet(market, model, range_name)
    return stored_response(request, FIELD_COINGLASS_JSON, latest[1], "application/json")


async def _book(store: StoreReader, settings: Settings, market: tuple[str, str], frame_range: str) -> LiquidationLevels:
    """The outstanding levels of a market's newest frame of the first configured model."""
    model = settings.models[0]
    body = await store.latest_frame_field(*market, model, frame_range, FIELD_V1_MSGPACK)
    if body is None:
        raise _not_computed_yet(market, model, frame_range)
    return await asyncio.to_thread(liquidation_levels, body)


def _frame_range(settings: Settings, value: str | None, table: dict[str, str], default: str | None = None) -> str:
    """The frame range answering a map / max-pain ``range`` (404 for those whose frame this deployment does not compute)."""
    offered = [name for name, frame_range in table.items() if frame_range in settings.ranges]
    chosen = default if value is None and default is not None else require("range", value, next(iter(table)))
    return table[check_offered("range", chosen, table, offered)]


async def _history(
    store: StoreReader, markets: list[tuple[str, str]], interval: str | None, limit: int | None, start_time: int | None, end_time: int | None, now: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validated history parameters → ``(bucket starts, long USD, short USD)`` over ``markets``."""
    interval_ms = INTERVALS_MS[check_choice("interval", require("interval", interval, "1h"), INTERVALS_MS)]
    count = check_int_range("limit", limit, 1, HISTORY_LIMIT, HISTORY_LIMIT)
    check_time_span(start_time, end_time)
    window = history_window(
        interval_ms,
        end_ms=now if end_time is None else end_time,
        limit=count,
        start_ms=start_time,
        coverage_start_ms=await store.first_liquidation_ms(markets),
    )
    if window is None:
        empty = np.zeros(0)
        return empty.astype(np.int64), empty, empty
    events, _ = stack(await store.read_liquidations_of(markets, window.first_ms, window.end_ms))
    return bucket_totals(events, window)


class CoinglassController(Controller):
    path = "/api/futures/liquidation"
    tags = ["coinglass-compatible"]

    @get(
        "/heatmap/{model:str}",
        operation_id="coinglassHeatmap",
        responses=_responses(CoinglassHeatmap, "Pair heatmap in Coinglass's shape", HEATMAP_EXAMPLE, frames=True),
    )
    async def heatmap(
        self,
        request: Request,
        model: ModelPath,
        exchange: ExchangeParam = None,
        symbol: PairParam = None,
        range_: HeatmapRangeParam = None,
    ) -> ASGIResponse:
        """Pair liquidation heatmap (``model1``..``model3``), as Coinglass serves it."""
        state = request.app.state  # the hot path: no dependency resolution per request
        check_model(state.settings, model)
        exchange = require("exchange", exchange, "Binance")
        symbol = require("symbol", symbol, "BTCUSDT")
        range_name = check_range(state.settings, require("range", range_, "3d"))
        market = canonical_market(exchange, symbol)
        return await _stored_heatmap(request, market, model, range_name, lambda: check_market(state.store, *market))

    @get(
        "/aggregated-heatmap/{model:str}",
        operation_id="coinglassAggregatedHeatmap",
        responses=_responses(CoinglassHeatmap, "Coin heatmap over every exchange, in Coinglass's shape", HEATMAP_EXAMPLE, frames=True),
    )
    async def aggregated_heatmap(
        self,
        request: Request,
        model: ModelPath,
        symbol: CoinParam = None,
        range_: HeatmapRangeParam = None,
    ) -> ASGIResponse:
        """Coin liquidation heatmap over every exchange (the frames of market ``all:<COIN>``)."""
        state = request.app.state
        check_model(state.settings, model)
        coin = require("symbol", symbol, "BTC").upper()
        range_name = check_range(state.settings, require("range", range_, "3d"))
        return await _stored_heatmap(request, (AGGREGATE_EXCHANGE, coin), model, range_name, lambda: _aggregate(state.store, coin))

    @get(
        "/history",
        operation_id="coinglassPairLiquidationHistory",
        responses=_responses(list[CoinglassPairHistory], "Realized liquidations of a pair per interval, oldest first", [
            {"time": 1658880000000, "long_liquidation_usd": "2369935.19562", "short_liquidation_usd": "6947459.43674"},
            {"time": 1658966400000, "long_liquidation_usd": "5118407.85124", "short_liquidation_usd": "8517330.44192"},
        ]),
    )
    async def history(
        self,
        store: NamedDependency[StoreReader],
        clock: NamedDependency[Clock],
        exchange: ExchangeParam = None,
        symbol: PairParam = None,
        interval: IntervalParam = None,
        limit: LimitParam = None,
        start_time: StartParam = None,
        end_time: EndParam = None,
    ) -> Envelope[list[CoinglassPairHistory]]:
        """Realized liquidations of one pair summed per interval: long and short USD as strings.

        Buckets are aligned to the interval in UTC (weeks start on Monday), the
        last one holds ``end_time``; without ``start_time`` the newest ``limit``
        are sent, with it the oldest ``limit`` from there. Empty buckets are
        ``"0"``; buckets before the first stored event are left out (no data).
        """
        exchange = require("exchange", exchange, "Binance")
        symbol = require("symbol", symbol, "BTCUSDT")
        market = await check_market(store, exchange, symbol)
        starts, long_usd, short_usd = await _history(store, [market], interval, limit, start_time, end_time, clock())
        return _ok(
            [
                CoinglassPairHistory(time=t, long_liquidation_usd=number_text(lo, USD_DECIMALS), short_liquidation_usd=number_text(sh, USD_DECIMALS))
                for t, lo, sh in zip(starts.tolist(), long_usd.tolist(), short_usd.tolist())
            ]
        )

    @get(
        "/aggregated-history",
        operation_id="coinglassCoinLiquidationHistory",
        responses=_responses(list[CoinglassCoinHistory], "Realized liquidations of a coin over exchanges per interval, oldest first", [
            {"time": 1658966400000, "aggregated_long_liquidation_usd": 5916885.14234, "aggregated_short_liquidation_usd": 12969583.87632},
            {"time": 1659052800000, "aggregated_long_liquidation_usd": 5345708.23191, "aggregated_short_liquidation_usd": 6454875.54909},
        ]),
    )
    async def aggregated_history(
        self,
        store: NamedDependency[StoreReader],
        clock: NamedDependency[Clock],
        exchange_list: Annotated[str | None, _query("Comma-separated exchanges, e.g. Binance,OKX,Bybit", required=True, pattern=NAMED)] = None,
        symbol: CoinParam = None,
        interval: IntervalParam = None,
        limit: LimitParam = None,
        start_time: StartParam = None,
        end_time: EndParam = None,
    ) -> Envelope[list[CoinglassCoinHistory]]:
        """Realized liquidations of a coin's pairs on the listed exchanges, summed per interval (USD as numbers).

        Buckets as in ``/history``.
        """
        markets = await store.markets()
        exchanges = check_exchange_list(markets, require("exchange_list", exchange_list, "Binance,OKX,Bybit"))
        coin = check_coin(markets, require("symbol", symbol, "BTC"), exchanges)
        starts, long_usd, short_usd = await _history(store, pairs_of(markets, exchanges, coin), interval, limit, start_time, end_time, clock())
        return _ok(
            [
                CoinglassCoinHistory(time=t, aggregated_long_liquidation_usd=lo, aggregated_short_liquidation_usd=sh)
                for t, lo, sh in zip(starts.tolist(), _usd(long_usd), _usd(short_usd))
            ]
        )

    @get(
        "/coin-list",
        operation_id="coinglassLiquidationCoinList",
        responses=_responses(list[CoinglassCoinTotals], "Realized liquidations per coin on one exchange, largest 24h total first", [
            {
                "symbol": "BTC",
                "liquidation_usd_24h": 82280481.50425325, "long_liquidation_usd_24h": 68437447.33734027, "short_liquidation_usd_24h": 13843034.16691298,
                "liquidation_usd_12h": 68331844.36224127, "long_liquidation_usd_12h": 66614158.47451427, "short_liquidation_usd_12h": 1717685.887727,
                "liquidation_usd_4h": 11381137.080643, "long_liquidation_usd_4h": 10921633.272973, "short_liquidation_usd_4h": 459503.80767,
                "liquidation_usd_1h": 3283635.95309, "long_liquidation_usd_1h": 3182915.16289, "short_liquidation_usd_1h": 100720.7902,
            }
        ]),
    )
    async def coin_list(self, store: NamedDependency[StoreReader], clock: NamedDependency[Clock], exchange: ExchangeParam = None) -> Envelope[list[CoinglassCoinTotals]]:
        """Realized liquidations of every coin on one exchange over the last 24h, 12h, 4h and 1h (USD)."""
        markets = await store.markets()
        exchange_id = check_exchange(markets, require("exchange", exchange, "Binance"))
        pairs = pairs_of(markets, [exchange_id])
        coins = sorted({coin_of(symbol) for _, symbol in pairs})
        now = clock()
        parts = await store.read_liquidations_of(pairs, now - TOTALS_WINDOWS["24h"], now + 1)
        events, owner = stack(parts)
        coin_index = np.array([coins.index(coin_of(symbol)) for _, symbol in pairs], dtype=np.int64)
        long_usd, short_usd = window_totals(events, coin_index[owner], len(coins), now, list(TOTALS_WINDOWS.values()))
        rows = []
        for i, coin in enumerate(coins):
            fields: dict[str, Any] = {"symbol": coin}
            for column, name in enumerate(TOTALS_WINDOWS):
                lo, sh = float(long_usd[i, column]), float(short_usd[i, column])
                fields[f"liquidation_usd_{name}"] = round(lo + sh, USD_DECIMALS)
                fields[f"long_liquidation_usd_{name}"] = round(lo, USD_DECIMALS)
                fields[f"short_liquidation_usd_{name}"] = round(sh, USD_DECIMALS)
            rows.append(CoinglassCoinTotals(**fields))
        rows.sort(key=lambda row: -row.liquidation_usd_24h)
        return _ok(rows)

    @get(
        "/exchange-list",
        operation_id="coinglassLiquidationExchangeList",
        responses=_responses(list[CoinglassExchangeTotals], "Realized liquidations per exchange, \"All\" first", [
            {"exchange": "All", "liquidation_usd": 14673519.81739075, "long_liquidation_usd": 451394.17404598, "short_liquidation_usd": 14222125.64334477},
            {"exchange": "Bybit", "liquidation_usd": 4585290.13404, "long_liquidation_usd": 104560.13885, "short_liquidation_usd": 4480729.99519},
        ]),
    )
    async def exchange_list(
        self,
        store: NamedDependency[StoreReader],
        clock: NamedDependency[Clock],
        symbol: Annotated[str | None, _query("Coin, e.g. BTC; absent or empty: every coin")] = None,
        range_: Annotated[str | None, _query("1h, 4h, 12h or 24h", required=True, name="range", enum=list(EXCHANGE_LIST_RANGES))] = None,
    ) -> Envelope[list[CoinglassExchangeTotals]]:
        """Realized liquidations per exchange over the last ``range``, with the total over all of them first as ``All``."""
        range_name = check_choice("range", require("range", range_, "24h"), EXCHANGE_LIST_RANGES)
        markets = await store.markets()
        exchanges = exchanges_of(markets)
        coin = check_coin(markets, symbol) if symbol and symbol.strip() else None
        pairs = pairs_of(markets, exchanges, coin)
        now = clock()
        width = TOTALS_WINDOWS[range_name]
        events, owner = stack(await store.read_liquidations_of(pairs, now - width, now + 1))
        exchange_index = np.array([exchanges.index(ex) for ex, _ in pairs], dtype=np.int64)
        long_usd, short_usd = window_totals(events, exchange_index[owner], len(exchanges), now, [width])
        rows = [
            CoinglassExchangeTotals(exchange=exchange_name(ex), liquidation_usd=round(lo + sh, USD_DECIMALS), long_liquidation_usd=lo, short_liquidation_usd=sh)
            for ex, lo, sh in zip(exchanges, _usd(long_usd[:, 0]), _usd(short_usd[:, 0]))
        ]
        rows.sort(key=lambda row: (-row.liquidation_usd, row.exchange))
        total_long, total_short = float(long_usd.sum()), float(short_usd.sum())
        everything = CoinglassExchangeTotals(
            exchange="All",
            liquidation_usd=round(total_long + total_short, USD_DECIMALS),
            long_liquidation_usd=round(total_long, USD_DECIMALS),
            short_liquidation_usd=round(total_short, USD_DECIMALS),
        )
        return _ok([everything, *rows])

    @get(
        "/order",
        operation_id="coinglassLiquidationOrders",
        responses=_responses(list[CoinglassLiquidationOrder], "Realized liquidations, newest first, at most 200 from the last 7 days", [
            {"exchange_name": "BINANCE", "symbol": "BTCUSDT", "base_asset": "BTC", "price": 87535.9, "usd_value": 205534.2932, "side": 2, "time": 1745216319263, "position_side": "long"},
            {"exchange_name": "BINANCE", "symbol": "BTCUSDT", "base_asset": "BTC", "price": 87465.2, "usd_value": 15918.6664, "side": 1, "time": 1745215647165, "position_side": "short"},
        ]),
    )
    async def orders(
        self,
        store: NamedDependency[StoreReader],
        clock: NamedDependency[Clock],
        exchange: ExchangeParam = None,
        symbol: CoinParam = None,
        min_liquidation_amount: Annotated[str | None, _query("Smallest liquidation to list, USD, e.g. 10000", required=True, pattern=AMOUNT_PATTERN)] = None,
        start_time: StartParam = None,
        end_time: EndParam = None,
    ) -> Envelope[list[CoinglassLiquidationOrder]]:
        """Realized liquidations of a coin's pairs on one exchange worth at least ``min_liquidation_amount`` USD.

        Newest first, at most 200, from the last 7 days. ``side`` follows
        Coinglass's REST convention — the liquidation order's direction:
        ``1`` = Buy, a **short** position was liquidated; ``2`` = Sell, a
        **long** position was liquidated (Coinglass's websocket feed uses 1 for
        long instead). ``position_side`` (``long``/``short``) says it in words.
        ``exchange_name`` is upper case, as Coinglass sends it here (``BINANCE``).
        """
        markets = await store.markets()
        exchange_id = check_exchange(markets, require("exchange", exchange, "Binance"))
        coin = check_coin(markets, require("symbol", symbol, "BTC"), [exchange_id])
        min_usd = check_amount("min_liquidation_amount", require("min_liquidation_amount", min_liquidation_amount, "10000"))
        check_time_span(start_time, end_time)
        now = clock()
        start = max(now - ORDER_LOOKBACK_MS, start_time or 0)
        end = now if end_time is None else end_time
        pairs = pairs_of(markets, [exchange_id], coin)
        events, owner = stack(await store.read_liquidations_of(pairs, start, end + 1))
        chosen = newest_at_least(events, min_usd, ORDER_LIMIT)
        picked, sides = events[chosen], order_sides(events["side"][chosen])
        name = exchange_name(exchange_id).upper()
        return _ok(
            [
                CoinglassLiquidationOrder(
                    exchange_name=name,
                    symbol=pairs[market][1],
                    base_asset=coin,
                    price=price,
                    usd_value=round(usd, USD_DECIMALS),
                    side=side,
                    time=ts,
                    position_side="long" if side_sign == SIDE_LONG else "short",
                )
                for market, price, usd, side, ts, side_sign in zip(
                    owner[chosen].tolist(), picked["price"].tolist(), picked["usd"].tolist(), sides.tolist(), picked["ts_ms"].tolist(), picked["side"].tolist()
                )
            ]
        )

    @get(
        "/map",
        operation_id="coinglassPairLiquidationMap",
        responses=_responses(CoinglassLiquidationMap, "Outstanding liquidation levels of a pair by price", {"data": {"48935": [[48935, 1579370.77, None, None]]}}, frames=True),
    )
    async def pair_map(
        self,
        store: NamedDependency[StoreReader],
        settings: NamedDependency[Settings],
        exchange: ExchangeParam = None,
        symbol: PairParam = None,
        range_: MapRangeParam = None,
    ) -> Envelope[CoinglassLiquidationMap]:
        """Where a pair's open positions would be liquidated: ``{"<price>": [[price, usd, leverage, null], ...]}``.

        The book is the last column of the newest frame of the range (1d: the
        24h frame): longs below the price, shorts above, one entry per side
        present at a price. ``leverage`` is null: frames sum the tiers.
        """
        frame_range = _frame_range(settings, range_, MAP_RANGES)
        exchange = require("exchange", exchange, "Binance")
        symbol = require("symbol", symbol, "BTCUSDT")
        market = await check_market(store, exchange, symbol)
        return _ok(CoinglassLiquidationMap(data=map_data(await _book(store, settings, market, frame_range))))

    @get(
        "/aggregated-map",
        operation_id="coinglassCoinLiquidationMap",
        responses=_responses(CoinglassLiquidationMap, "Outstanding liquidation levels of a coin over every exchange by price", {"data": {"48935": [[48935, 1579370.77, None, None]]}}, frames=True),
    )
    async def aggregated_map(
        self,
        store: NamedDependency[StoreReader],
        settings: NamedDependency[Settings],
        symbol: CoinParam = None,
        range_: MapRangeParam = None,
    ) -> Envelope[CoinglassLiquidationMap]:
        """The liquidation map of a coin over every exchange (market ``all:<COIN>``), shaped as ``/map``."""
        frame_range = _frame_range(settings, range_, MAP_RANGES)
        coin = require("symbol", symbol, "BTC").upper()
        return _ok(CoinglassLiquidationMap(data=map_data(await _book(store, settings, await _aggregate(store, coin), frame_range))))

    @get(
        "/max-pain",
        operation_id="coinglassLiquidationMaxPain",
        responses=_responses(list[CoinglassMaxPain], "Largest outstanding liquidation level per side and coin", [
            {
                "symbol": "BTC", "price": 110625.1,
                "long_max_pain_liq_level": 75677278.26, "long_max_pain_liq_price": 108046.71,
                "short_max_pain_liq_level": 44617473.19, "short_max_pain_liq_price": 112748.37, "range": "24h",
            }
        ], frames=True),
    )
    async def max_pain(
        self,
        store: NamedDependency[StoreReader],
        settings: NamedDependency[Settings],
        range_: Annotated[str | None, _query("12h, 24h, 48h, 3d, 7d, 14d or 30d (default 24h)", name="range", enum=list(MAX_PAIN_RANGES))] = None,
    ) -> Envelope[list[CoinglassMaxPain]]:
        """Per coin, the largest outstanding long and short liquidation level and its price.

        ``long_*``: the largest level of longs (liquidated if the price falls
        to ``long_max_pain_liq_price``); ``short_*``: of shorts (liquidated if
        it rises there); ``price``: the last close. The book is the last column
        of the newest frame of the range — 48h and 14d have no frame of their
        own and are answered by 3d and 30d (``range`` says which). A coin's
        book is its aggregate ``all:<COIN>``, or its only pair; coins whose
        frame is not computed yet are left out.
        """
        frame_range = _frame_range(settings, range_, MAX_PAIN_RANGES, default="24h")
        sources = coin_markets(await store.markets())
        model = settings.models[0]
        bodies = await asyncio.gather(*(store.latest_frame_field(*market, model, frame_range, FIELD_V1_MSGPACK) for market in sources.values()))
        rows = []
        for coin, body in zip(sources, bodies):
            if body is None:
                continue
            levels = await asyncio.to_thread(liquidation_levels, body)
            long_level, long_price = largest_level_of_side(levels, SIDE_LONG)
            short_level, short_price = largest_level_of_side(levels, SIDE_SHORT)
            rows.append(
                CoinglassMaxPain(
                    symbol=coin,
                    price=levels.price,
                    long_max_pain_liq_level=long_level,
                    long_max_pain_liq_price=long_price,
                    short_max_pain_liq_level=short_level,
                    short_max_pain_liq_price=short_price,
                    range=frame_range,
                )
            )
        return _ok(rows)


async def _aggregate(store: StoreReader, coin: str) -> tuple[str, str]:
    """The market of a coin's aggregate over every exchange, else 404 naming the coins that have one."""
    markets = await store.markets()
    if (AGGREGATE_EXCHANGE, coin) in markets:
        return AGGREGATE_EXCHANGE, coin
    coins = sorted(symbol for exchange, symbol in markets if exchange == AGGREGATE_EXCHANGE)
    raise NotFound(f"no aggregate over all exchanges for coin {coin!r}; coins with one: {', '.join(coins) or 'none yet'}", allowed=coins)


class CoinglassMarketsController(Controller):
    path = "/api/futures"
    tags = ["coinglass-compatible"]

    @get(
        "/supported-exchange-pairs",
        operation_id="coinglassSupportedExchangePairs",
        responses=_responses(dict[str, list[CoinglassPair]], "Pairs liqmap has data for, per exchange", {
            "Binance": [
                {"instrument_id": "BTCUSDT", "base_asset": "BTC", "quote_asset": "USDT", "settlement_currency": None, "max_leverage": None, "funding_interval": None, "price_tick_size": None}
            ]
        }),
    )
    async def supported_exchange_pairs(
        self, store: NamedDependency[StoreReader], exchange: Annotated[str | None, _query("Only this exchange, e.g. Binance")] = None
    ) -> Envelope[dict[str, list[CoinglassPair]]]:
        """Per exchange (Coinglass's spelling), the pairs with data here; ``exchange`` keeps one.

        liqmap knows a pair's symbol only: ``settlement_currency``,
        ``max_leverage``, ``funding_interval`` and ``price_tick_size`` are null.
        """
        markets = await store.markets()
        exchanges = [check_exchange(markets, exchange)] if exchange and exchange.strip() else exchanges_of(markets)
        out: dict[str, list[CoinglassPair]] = {}
        for ex in exchanges:
            pairs = []
            for _, symbol in pairs_of(markets, [ex]):
                pairs.append(CoinglassPair(instrument_id=symbol, base_asset=coin_of(symbol), quote_asset=quote_of(symbol)))
            out[exchange_name(ex)] = pairs
        return _ok(out)
