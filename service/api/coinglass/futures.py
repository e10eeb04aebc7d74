"""The Coinglass-compatible market-data routes a client calls beside the liquidation ones.

Same paths, parameters, intervals, units and field names as Coinglass's v4 API
(``docs/coinglass.md`` states each documented shape and what liqmap sends). Values come
from the rows the collectors store per market: 1m bars (price, volume, taker buys), open
interest, funding rate and the venues' account ratios, kept ``candle_retention_days``.
Observed values (open interest, funding, ratios) are bucketed as
:mod:`service.compute.series` says: a bucket's close is the value standing at its end,
its open the one standing at its start. A missing ``interval`` takes Coinglass's
documented default; ``limit`` defaults to 1000; unknown parameters are ignored, as
Coinglass does.
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get
from litestar.di import NamedDependency

from engine.ranges import DAY_MS, HOUR_MS, MINUTE_MS
from service.api.coinglass import examples
from service.api.coinglass.params import (
    MARKETS,
    VENUE_PAIR,
    CoinParam,
    UnitParam,
    check_unit,
    history_query,
)
from service.api.dependencies import Market
from service.api.etag import snapshot_response
from service.api.params import Markets, check_coin, exchanges_of, pairs_of, require
from service.clock import Clock
from service.compute import history, series
from service.compute.history import HistoryQuery
from service.markets import coin_of
from service.store.chunks import CANDLES, FUNDING, LONG_SHORT, OPEN_INTEREST
from service.store.reader import StoreReader
from service.wire.coinglass import (
    COIN_DECIMALS,
    FUNDING_PERCENT_DECIMALS,
    USD_DECIMALS,
    account_ratio_rows,
    exchange_name,
    ohlc_rows,
    price_rows,
    taker_rows,
)
from service.wire.schemas import (
    CoinglassAccountRatio,
    CoinglassFundingCoin,
    CoinglassFundingExchange,
    CoinglassOhlc,
    CoinglassOpenInterestExchange,
    CoinglassPriceOhlc,
    CoinglassTakerVolume,
    Envelope,
)

# Trailing windows of the open-interest exchange list's change fields.
CHANGE_WINDOWS_MS = {"5m": 5 * MINUTE_MS, "15m": 15 * MINUTE_MS, "30m": 30 * MINUTE_MS, "1h": HOUR_MS, "4h": 4 * HOUR_MS, "24h": DAY_MS}
# Where a venue does not say (its funding interval), the common one.
DEFAULT_FUNDING_INTERVAL_H = 8


def _ok(data: Any) -> Envelope[Any]:
    return Envelope(code="0", msg="success", data=data)


def _ok_snapshot(request: Request, data: Any) -> Response[bytes]:
    return snapshot_response(request, _ok(data))


class CoinglassFuturesController(Controller):
    path = "/api/futures"
    tags = ["coinglass-compatible"]
    dependencies = {"markets": MARKETS, "pair": VENUE_PAIR}

    @get("/supported-coins", operation_id="coinglassSupportedCoins", responses=examples.SUPPORTED_COINS)
    async def supported_coins(self, request: Request, markets: NamedDependency[Markets]) -> Response[bytes]:
        """Coins with pairs here, sorted (ETag: send ``If-None-Match`` for a 304)."""
        return _ok_snapshot(request, sorted({coin_of(symbol) for _, symbol in pairs_of(markets, exchanges_of(markets))}))

    @get("/supported-exchanges", operation_id="coinglassSupportedExchanges", responses=examples.SUPPORTED_EXCHANGES)
    async def supported_exchanges(self, request: Request, markets: NamedDependency[Markets]) -> Response[bytes]:
        """Exchanges with data here, as Coinglass spells them (ETag)."""
        return _ok_snapshot(request, sorted(exchange_name(exchange) for exchange in exchanges_of(markets)))

    @get(
        "/open-interest/history",
        operation_id="coinglassOpenInterestHistory",
        responses=examples.OPEN_INTEREST_HISTORY,
        dependencies={"asked": history_query("1d")},
    )
    async def open_interest_history(
        self,
        store: NamedDependency[StoreReader],
        clock: NamedDependency[Clock],
        pair: NamedDependency[Market],
        asked: NamedDependency[HistoryQuery],
        unit: UnitParam = None,
    ) -> Envelope[list[CoinglassOhlc]]:
        """Open interest of one pair per interval: open (standing at the start), high, low, close (at the end), as strings.

        ``unit=usd`` (default): USD notional of one side; ``unit=coin``: in coins, each
        observation divided by the last close before it. Buckets as in the liquidation
        history; buckets without an observation are left out.
        """
        unit_name = check_unit(unit)
        window = await history.window(store, OPEN_INTEREST, [pair], asked, clock(), rollups=True)
        if window is None:
            return _ok([])
        ts, values = await history.open_interest(store, [pair], window, unit_name)
        return _ok(ohlc_rows(series.point_ohlc(ts, values, window), USD_DECIMALS if unit_name == "usd" else COIN_DECIMALS))

    @get(
        "/open-interest/aggregated-history",
        operation_id="coinglassOpenInterestAggregatedHistory",
        responses=examples.OPEN_INTEREST_AGGREGATED,
        dependencies={"asked": history_query("1d")},
    )
    async def open_interest_aggregated_history(
        self,
        store: NamedDependency[StoreReader],
        clock: NamedDependency[Clock],
        markets: NamedDependency[Markets],
        asked: NamedDependency[HistoryQuery],
        symbol: CoinParam = None,
        unit: UnitParam = None,
    ) -> Envelope[list[CoinglassOhlc]]:
        """Open interest of a coin summed over every exchange's pairs, per interval (OHLC as strings).

        The sum at each observation is of the values standing then on every pair, from
        the time all of them have one.
        """
        unit_name = check_unit(unit)
        exchanges = exchanges_of(markets)
        coin = check_coin(markets, require("symbol", symbol, "BTC"))
        pairs = pairs_of(markets, exchanges, coin)
        window = await history.window(store, OPEN_INTEREST, pairs, asked, clock(), rollups=True)
        if window is None:
            return _ok([])
        ts, values = await history.open_interest(store, pairs, window, unit_name)
        return _ok(ohlc_rows(series.point_ohlc(ts, values, window), USD_DECIMALS if unit_name == "usd" else COIN_DECIMALS))

    @get("/open-interest/exchange-list", operation_id="coinglassOpenInterestExchangeList", responses=examples.OPEN_INTEREST_EXCHANGES)
    async def open_interest_exchange_list(
        self, request: Request, store: NamedDependency[StoreReader], clock: NamedDependency[Clock], markets: NamedDependency[Markets], symbol: CoinParam = None
    ) -> Response[bytes]:
        """Open interest of a coin per exchange now, ``All`` (their sum) first, then largest first (ETag).

        ``open_interest_usd``: the newest observation; ``open_interest_quantity``: in coins
        at the last close; ``open_interest_change_percent_*``: from the value standing
        that long before the newest (null where nothing is stored that far back).
        """
        coin = check_coin(markets, require("symbol", symbol, "BTC"))
        exchanges = [exchange for exchange in exchanges_of(markets) if pairs_of(markets, [exchange], coin)]
        groups = [pairs_of(markets, [exchange], coin) for exchange in exchanges]
        names = [exchange_name(exchange) for exchange in exchanges]
        found = await history.open_interest_now(store, [pairs_of(markets, exchanges, coin), *groups], clock(), list(CHANGE_WINDOWS_MS.values()))
        rows = [
            CoinglassOpenInterestExchange(
                exchange=name,
                symbol=coin,
                open_interest_usd=round(now.usd, USD_DECIMALS),
                open_interest_quantity=round(now.coins, 4),
                open_interest_by_stable_coin_margin=round(now.usd, USD_DECIMALS),
                open_interest_quantity_by_coin_margin=0.0,
                open_interest_quantity_by_stable_coin_margin=round(now.coins, 4),
                **{f"open_interest_change_percent_{window}": change for window, change in zip(CHANGE_WINDOWS_MS, now.change_percent)},
            )
            for name, now in zip(["All", *names], found)
            if now is not None
        ]
        everything, venues = (rows[:1], rows[1:]) if rows and rows[0].exchange == "All" else ([], rows)
        return _ok_snapshot(request, everything + sorted(venues, key=lambda row: (-row.open_interest_usd, row.exchange)))

    @get(
        "/funding-rate/history",
        operation_id="coinglassFundingRateHistory",
        responses=examples.FUNDING_HISTORY,
        dependencies={"asked": history_query("1d")},
    )
    async def funding_rate_history(
        self,
        store: NamedDependency[StoreReader],
        clock: NamedDependency[Clock],
        pair: NamedDependency[Market],
        asked: NamedDependency[HistoryQuery],
    ) -> Envelope[list[CoinglassOhlc]]:
        """The funding rate of one pair per interval, OHLC of the rate the venue showed (percent per funding interval, strings).

        The rate is the venue's current (predicted) one, observed at every collection.
        """
        window = await history.window(store, FUNDING, [pair], asked, clock())
        if window is None:
            return _ok([])
        (rows,) = await history.points(store, FUNDING, [pair], window)
        return _ok(ohlc_rows(series.point_ohlc(rows["ts_ms"], rows["funding_rate"], window), FUNDING_PERCENT_DECIMALS, scale=100.0))

    @get("/funding-rate/exchange-list", operation_id="coinglassFundingRateExchangeList", responses=examples.FUNDING_EXCHANGES)
    async def funding_rate_exchange_list(self, request: Request, store: NamedDependency[StoreReader], markets: NamedDependency[Markets]) -> Response[bytes]:
        """Per coin, the newest funding rate of each of its pairs per exchange (percent), its interval (hours) and next funding time (ETag).

        liqmap collects USDⓈ-margined perpetuals: ``token_margin_list`` is empty.
        ``next_funding_time`` is null where the venue did not say.
        """
        pairs = pairs_of(markets, exchanges_of(markets))
        newest_rows, metas = await store.newest_rows_of(FUNDING, pairs), await store.market_metas(pairs)
        by_coin: dict[str, list[CoinglassFundingExchange]] = {}
        for (exchange, symbol), rows, meta in zip(pairs, newest_rows, metas):
            if not len(rows):
                continue
            by_coin.setdefault(coin_of(symbol), []).append(
                CoinglassFundingExchange(
                    exchange=exchange_name(exchange),
                    funding_rate_interval=round(float(meta.get("funding_interval_h", DEFAULT_FUNDING_INTERVAL_H))),
                    funding_rate=round(float(rows["funding_rate"][-1]) * 100, FUNDING_PERCENT_DECIMALS),
                    next_funding_time=int(meta["next_funding_ms"]) if "next_funding_ms" in meta else None,
                )
            )
        data = [CoinglassFundingCoin(symbol=coin, stablecoin_margin_list=rows, token_margin_list=[]) for coin, rows in sorted(by_coin.items())]
        return _ok_snapshot(request, data)

    @get(
        "/price/history",
        operation_id="coinglassPriceHistory",
        responses=examples.PRICE_HISTORY,
        dependencies={"asked": history_query("1h")},
    )
    async def price_history(
        self,
        store: NamedDependency[StoreReader],
        clock: NamedDependency[Clock],
        pair: NamedDependency[Market],
        asked: NamedDependency[HistoryQuery],
    ) -> Envelope[list[CoinglassPriceOhlc]]:
        """Price of one pair per interval from its 1m bars: first open, highest high, lowest low, last close, USD traded (strings)."""
        window = await history.window(store, CANDLES, [pair], asked, clock(), rollups=True)
        if window is None:
            return _ok([])
        (bars,) = await history.bars(store, [pair], window)
        return _ok(price_rows(*series.bar_ohlc(bars.rows, window)))

    @get(
        "/global-long-short-account-ratio/history",
        operation_id="coinglassGlobalAccountRatioHistory",
        responses=examples.ACCOUNT_RATIO,
        dependencies={"asked": history_query("4h")},
    )
    async def global_account_ratio_history(
        self,
        store: NamedDependency[StoreReader],
        clock: NamedDependency[Clock],
        pair: NamedDependency[Market],
        asked: NamedDependency[HistoryQuery],
    ) -> Envelope[list[CoinglassAccountRatio]]:
        """Share of the venue's accounts net long and net short (percent) at the end of each interval, and long / short.

        The venues publish it per 5 minutes: intervals shorter than that have a row only
        where a period ends.
        """
        window = await history.window(store, LONG_SHORT, [pair], asked, clock())
        if window is None:
            return _ok([])
        (rows,) = await history.points(store, LONG_SHORT, [pair], window)
        time, last = series.last_in_bucket(rows["ts_ms"], window)
        return _ok(account_ratio_rows(time, rows["long_account"][last], rows["short_account"][last]))

    @get(
        ["/v2/taker-buy-sell-volume/history", "/taker-buy-sell-volume/history"],
        operation_id=lambda _handler, _method, path: "coinglassTakerBuySellVolumeHistory" + ("" if "v2" in path else "FirstPath"),
        responses=examples.TAKER_VOLUME,
        dependencies={"asked": history_query("1h")},
    )
    async def taker_volume_history(
        self,
        store: NamedDependency[StoreReader],
        clock: NamedDependency[Clock],
        pair: NamedDependency[Market],
        asked: NamedDependency[HistoryQuery],
    ) -> Envelope[list[CoinglassTakerVolume]]:
        """Taker buy and sell volume of one pair per interval (USD strings), from its 1m bars' taker-buy part.

        Served at both paths Coinglass's v4 API has had (``/v2/...`` is the newer).
        """
        window = await history.window(store, CANDLES, [pair], asked, clock(), rollups=True)
        if window is None:
            return _ok([])
        return _ok(taker_rows(*await history.taker_volumes(store, pair, window)))
