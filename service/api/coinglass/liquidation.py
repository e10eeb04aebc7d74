"""The Coinglass-compatible routes: same paths, parameters and shapes as Coinglass's v4 API.

Exchanges are named as Coinglass spells them (``Binance``, ``OKX``, ``Bybit``),
in any case; pairs as ``BTCUSDT``; coins as ``BTC``. Every answer is the
envelope ``{"code": "0", "msg": "success", "data": ...}``; errors carry the
real HTTP status with ``code`` set to it and ``msg`` saying what is allowed.
Realized-liquidation routes sum the events in the store (kept for
``liquidation_retention_days``); map routes read the newest stored frame.
Parameters and their checks: :mod:`service.api.coinglass.params`; the documented
answers: :mod:`service.api.coinglass.examples`.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import numpy as np
from litestar import Controller, Request, get
from litestar.di import NamedDependency
from litestar.response.base import ASGIResponse

from engine.ranges import DAY_MS, HOUR_MS
from service.api.coinglass import examples
from service.api.coinglass.params import (
    AGGREGATE,
    EXCHANGE,
    HISTORY_LIMIT,
    MAP_RANGE,
    MARKETS,
    NAMED,
    PAIR,
    CoinParam,
    EndParam,
    ExchangeParam,
    HeatmapRangeParam,
    IntervalParam,
    LimitParam,
    ModelPath,
    PairParam,
    StartParam,
    aggregate_of,
    coin_heatmap_query,
    frame_range,
    pair_heatmap_query,
    query_param,
)
from service.api.dependencies import FrameQuery, Market
from service.api.newest import LatestFrames, stored_response
from service.api.errors import FrameNotReady, Unavailable
from service.compute.ondemand import FrameGone, FrameService
from service.api.params import (
    AMOUNT_PATTERN,
    Markets,
    check_amount,
    check_choice,
    check_coin,
    check_exchange,
    check_exchange_list,
    check_int_range,
    check_market,
    check_time_span,
    exchanges_of,
    pairs_of,
    require,
)
from service.clock import Clock
from service.compute.realized import INTERVALS_MS, bucket_totals, history_window, newest_at_least, stack, window_totals_by_group
from service.markets import coin_of
from service.settings import Settings
from service.store.reader import StoreReader
from service.store.rows import SIDE_LONG, SIDE_SHORT
from service.wire.codec import FIELD_COINGLASS_JSON, FIELD_V1_MSGPACK, plain
from service.wire.coinglass import (
    MAX_PAIN_RANGES,
    LiquidationLevels,
    coin_markets,
    exchange_name,
    largest_level_of_side,
    liquidation_levels,
    map_data,
    number_text,
    tier_levels,
    order_sides,
    quote_of,
)
from service.wire.schemas import (
    CoinglassCoinHistory,
    CoinglassCoinTotals,
    CoinglassExchangeTotals,
    CoinglassLiquidationMap,
    CoinglassLiquidationOrder,
    CoinglassMaxPain,
    CoinglassPair,
    CoinglassPairHistory,
    Envelope,
)

ORDER_LIMIT = 200
ORDER_LOOKBACK_MS = 7 * DAY_MS
TOTALS_WINDOWS = {"24h": 24 * HOUR_MS, "12h": 12 * HOUR_MS, "4h": 4 * HOUR_MS, "1h": HOUR_MS}
EXCHANGE_LIST_RANGES = ("1h", "4h", "12h", "24h")
USD_DECIMALS = 5


def _ok(data: Any) -> Envelope[Any]:
    return Envelope(code="0", msg="success", data=data)


def _usd(values: np.ndarray) -> list[float]:
    return np.round(values, USD_DECIMALS).tolist()


async def _book(request: Request, settings: Settings, market: Market, book_range: str) -> LiquidationLevels:
    """The outstanding levels of a market's newest frame of the first configured model (503 while it is computed)."""
    frames: LatestFrames = request.app.state.frames
    query = FrameQuery(market.exchange, market.symbol, settings.models[0], book_range)
    _, stored = await frames.require(query, FIELD_V1_MSGPACK)
    return await asyncio.to_thread(lambda: liquidation_levels(plain(FIELD_V1_MSGPACK, stored)))


async def _history(
    store: StoreReader, markets: list[tuple[str, str]], interval: str | None, limit: int | None, start_time: int | None, end_time: int | None, now: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validated history parameters → ``(bucket starts, long USD, short USD)`` over ``markets``."""
    interval_ms = INTERVALS_MS[check_choice("interval", require("interval", interval, "1h"), INTERVALS_MS)]
    count = check_int_range("limit", limit, 1, HISTORY_LIMIT, HISTORY_LIMIT)
    check_time_span(start_time, end_time)
    window = history_window(
        interval_ms,
        end_ms=now if end_time is None else min(end_time, now),
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
    dependencies = {"markets": MARKETS, "pair": PAIR, "aggregate": AGGREGATE, "exchange_id": EXCHANGE, "book_range": MAP_RANGE}

    @get("/heatmap/{model:str}", operation_id="coinglassHeatmap", responses=examples.HEATMAP)
    async def heatmap(
        self, request: Request, model: ModelPath, exchange: ExchangeParam = None, symbol: PairParam = None, range_: HeatmapRangeParam = None
    ) -> ASGIResponse:
        """Pair liquidation heatmap (``model1``..``model4``), as Coinglass serves it."""
        state = request.app.state  # the hot path: no dependencies (see service.api.dependencies)
        query = pair_heatmap_query(state.settings, model, exchange, symbol, range_)
        _, stored = await state.frames.require(query, FIELD_COINGLASS_JSON, lambda: check_market(state.store, query.exchange, query.symbol))
        return stored_response(request, FIELD_COINGLASS_JSON, stored, "application/json")

    @get("/aggregated-heatmap/{model:str}", operation_id="coinglassAggregatedHeatmap", responses=examples.AGGREGATED_HEATMAP)
    async def aggregated_heatmap(self, request: Request, model: ModelPath, symbol: CoinParam = None, range_: HeatmapRangeParam = None) -> ASGIResponse:
        """Coin liquidation heatmap over every exchange (the frames of market ``all:<COIN>``)."""
        state = request.app.state
        query = coin_heatmap_query(state.settings, model, symbol, range_)
        _, stored = await state.frames.require(query, FIELD_COINGLASS_JSON, lambda: _aggregate_exists(state.store, query.symbol))
        return stored_response(request, FIELD_COINGLASS_JSON, stored, "application/json")

    @get("/history", operation_id="coinglassPairLiquidationHistory", responses=examples.PAIR_HISTORY)
    async def history(
        self,
        store: NamedDependency[StoreReader],
        clock: NamedDependency[Clock],
        pair: NamedDependency[Market],
        interval: IntervalParam = None,
        limit: LimitParam = None,
        start_time: StartParam = None,
        end_time: EndParam = None,
    ) -> Envelope[list[CoinglassPairHistory]]:
        """Realized liquidations of one pair summed per interval: long and short USD as strings.

        Buckets are aligned to the interval in UTC (weeks start on Monday), the
        last one holds ``end_time`` (or now, when ``end_time`` is later: nothing
        is known of the future); without ``start_time`` the newest ``limit``
        are sent, with it the oldest ``limit`` from there (``start_time`` after
        ``end_time``: 400). Empty buckets are ``"0"``; buckets before the first
        stored event are left out (no data).
        """
        starts, long_usd, short_usd = await _history(store, [pair], interval, limit, start_time, end_time, clock())
        return _ok(
            [
                CoinglassPairHistory(time=t, long_liquidation_usd=number_text(lo, USD_DECIMALS), short_liquidation_usd=number_text(sh, USD_DECIMALS))
                for t, lo, sh in zip(starts.tolist(), long_usd.tolist(), short_usd.tolist())
            ]
        )

    @get("/aggregated-history", operation_id="coinglassCoinLiquidationHistory", responses=examples.COIN_HISTORY)
    async def aggregated_history(
        self,
        store: NamedDependency[StoreReader],
        clock: NamedDependency[Clock],
        markets: NamedDependency[Markets],
        exchange_list: Annotated[str | None, query_param("Comma-separated exchanges, e.g. Binance,OKX,Bybit", required=True, pattern=NAMED)] = None,
        symbol: CoinParam = None,
        interval: IntervalParam = None,
        limit: LimitParam = None,
        start_time: StartParam = None,
        end_time: EndParam = None,
    ) -> Envelope[list[CoinglassCoinHistory]]:
        """Realized liquidations of a coin's pairs on the listed exchanges, summed per interval (USD as numbers).

        Buckets as in ``/history``.
        """
        exchanges = check_exchange_list(markets, require("exchange_list", exchange_list, "Binance,OKX,Bybit"))
        coin = check_coin(markets, require("symbol", symbol, "BTC"), exchanges)
        starts, long_usd, short_usd = await _history(store, pairs_of(markets, exchanges, coin), interval, limit, start_time, end_time, clock())
        return _ok(
            [
                CoinglassCoinHistory(time=t, aggregated_long_liquidation_usd=lo, aggregated_short_liquidation_usd=sh)
                for t, lo, sh in zip(starts.tolist(), _usd(long_usd), _usd(short_usd))
            ]
        )

    @get("/coin-list", operation_id="coinglassLiquidationCoinList", responses=examples.COIN_LIST)
    async def coin_list(
        self, store: NamedDependency[StoreReader], clock: NamedDependency[Clock], markets: NamedDependency[Markets], exchange_id: NamedDependency[str]
    ) -> Envelope[list[CoinglassCoinTotals]]:
        """Realized liquidations of every coin on one exchange over the last 24h, 12h, 4h and 1h (USD)."""
        pairs = pairs_of(markets, [exchange_id])
        coins = sorted({coin_of(symbol) for _, symbol in pairs})
        now = clock()
        parts = await store.read_liquidations_of(pairs, now - TOTALS_WINDOWS["24h"], now + 1)
        coin_of_pair = [coins.index(coin_of(symbol)) for _, symbol in pairs]
        long_usd, short_usd = window_totals_by_group(parts, coin_of_pair, len(coins), now, list(TOTALS_WINDOWS.values()))
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

    @get("/exchange-list", operation_id="coinglassLiquidationExchangeList", responses=examples.EXCHANGE_LIST)
    async def exchange_list(
        self,
        store: NamedDependency[StoreReader],
        clock: NamedDependency[Clock],
        markets: NamedDependency[Markets],
        symbol: Annotated[str | None, query_param("Coin, e.g. BTC; absent or empty: every coin")] = None,
        range_: Annotated[str | None, query_param("1h, 4h, 12h or 24h", required=True, name="range", enum=list(EXCHANGE_LIST_RANGES))] = None,
    ) -> Envelope[list[CoinglassExchangeTotals]]:
        """Realized liquidations per exchange over the last ``range``, with the total over all of them first as ``All``."""
        range_name = check_choice("range", require("range", range_, "24h"), EXCHANGE_LIST_RANGES)
        exchanges = exchanges_of(markets)
        coin = check_coin(markets, symbol) if symbol and symbol.strip() else None
        pairs = pairs_of(markets, exchanges, coin)
        now = clock()
        width = TOTALS_WINDOWS[range_name]
        parts = await store.read_liquidations_of(pairs, now - width, now + 1)
        long_usd, short_usd = window_totals_by_group(parts, [exchanges.index(ex) for ex, _ in pairs], len(exchanges), now, [width])
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

    @get("/order", operation_id="coinglassLiquidationOrders", responses=examples.ORDERS)
    async def orders(
        self,
        store: NamedDependency[StoreReader],
        clock: NamedDependency[Clock],
        markets: NamedDependency[Markets],
        exchange_id: NamedDependency[str],
        symbol: CoinParam = None,
        min_liquidation_amount: Annotated[str | None, query_param("Smallest liquidation to list, USD, e.g. 10000", required=True, pattern=AMOUNT_PATTERN)] = None,
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
        coin = check_coin(markets, require("symbol", symbol, "BTC"), [exchange_id])
        min_usd = check_amount("min_liquidation_amount", require("min_liquidation_amount", min_liquidation_amount, "10000"))
        check_time_span(start_time, end_time)
        now = clock()
        start = max(now - ORDER_LOOKBACK_MS, start_time or 0)
        end = now if end_time is None else min(end_time, now)
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

    @get("/map", operation_id="coinglassPairLiquidationMap", responses=examples.PAIR_MAP)
    async def pair_map(
        self,
        settings: NamedDependency[Settings],
        pair: NamedDependency[Market],
        book_range: NamedDependency[str],
        frame_service: NamedDependency[FrameService],
    ) -> Envelope[CoinglassLiquidationMap]:
        """Where a pair's open positions would be liquidated, per leverage tier: ``{"<price>": [[price, usd, leverage, null], ...]}``.

        The book is the model's per-tier map at the end of the newest frame of
        the range (1d: the 24h frame), as ``/v1/.../levels`` serves it: longs
        below the price, shorts above, one entry per tier and side present at a
        price, ``leverage`` the tier (``25`` for 25×). The entries of a price
        sum to that price's cell in the frame's last column.
        """
        model = settings.models[0]
        try:
            levels = await frame_service.levels(pair.exchange, pair.symbol, model, book_range, None)
        except FrameGone as exc:
            raise Unavailable(f"{exc}; the next frame is being computed") from None
        if levels is None:
            raise FrameNotReady(pair.exchange, pair.symbol, model, book_range)
        return _ok(CoinglassLiquidationMap(data=map_data(await asyncio.to_thread(tier_levels, levels.map))))

    @get("/aggregated-map", operation_id="coinglassCoinLiquidationMap", responses=examples.COIN_MAP)
    async def aggregated_map(
        self, request: Request, settings: NamedDependency[Settings], aggregate: NamedDependency[Market], book_range: NamedDependency[str]
    ) -> Envelope[CoinglassLiquidationMap]:
        """The liquidation map of a coin over every exchange (market ``all:<COIN>``), shaped as ``/map``.

        ``leverage`` is null, as Coinglass documents it here: the book is the
        last column of the newest frame, summed over the tiers.
        """
        return _ok(CoinglassLiquidationMap(data=map_data(await _book(request, settings, aggregate, book_range))))

    @get("/max-pain", operation_id="coinglassLiquidationMaxPain", responses=examples.MAX_PAIN)
    async def max_pain(
        self,
        settings: NamedDependency[Settings],
        markets: NamedDependency[Markets],
        frame_service: NamedDependency[FrameService],
        range_: Annotated[str | None, query_param("12h, 24h, 48h, 3d, 7d, 14d or 30d (default 24h)", name="range", enum=list(MAX_PAIN_RANGES))] = None,
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
        book_range = frame_range(settings, range_, MAX_PAIN_RANGES, default="24h")
        sources = coin_markets(markets)
        model = settings.models[0]
        bodies = await asyncio.gather(*(frame_service.newest_plain(*market, model, book_range, FIELD_V1_MSGPACK) for market in sources.values()))
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
                    range=book_range,
                )
            )
        return _ok(rows)


async def _aggregate_exists(store: StoreReader, coin: str) -> Market:
    return aggregate_of(await store.markets(), coin)


class CoinglassMarketsController(Controller):
    path = "/api/futures"
    tags = ["coinglass-compatible"]
    dependencies = {"markets": MARKETS}

    @get("/supported-exchange-pairs", operation_id="coinglassSupportedExchangePairs", responses=examples.SUPPORTED_PAIRS)
    async def supported_exchange_pairs(
        self, markets: NamedDependency[Markets], exchange: Annotated[str | None, query_param("Only this exchange, e.g. Binance")] = None
    ) -> Envelope[dict[str, list[CoinglassPair]]]:
        """Per exchange (Coinglass's spelling), the pairs with data here; ``exchange`` keeps one.

        liqmap knows a pair's symbol only: ``settlement_currency``,
        ``max_leverage``, ``funding_interval`` and ``price_tick_size`` are null.
        """
        exchanges = [check_exchange(markets, exchange)] if exchange and exchange.strip() else exchanges_of(markets)
        out: dict[str, list[CoinglassPair]] = {}
        for ex in exchanges:
            pairs = []
            for _, symbol in pairs_of(markets, [ex]):
                pairs.append(CoinglassPair(instrument_id=symbol, base_asset=coin_of(symbol), quote_asset=quote_of(symbol)))
            out[exchange_name(ex)] = pairs
        return _ok(out)
