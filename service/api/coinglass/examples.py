"""The OpenAPI answers of the Coinglass-compatible routes, with the examples Coinglass documents."""

from __future__ import annotations

from typing import Any

from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example

from service.wire.schemas import (
    CoinglassAccountRatio,
    CoinglassFundingCoin,
    CoinglassOhlc,
    CoinglassOpenInterestExchange,
    CoinglassPriceOhlc,
    CoinglassTakerVolume,
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


def envelope_error(status: int, message: str) -> Example:
    return Example(summary=message, value={"code": str(status), "msg": message, "data": None})


def _error(status: int, description: str, message: str) -> ResponseSpec:
    return ResponseSpec(generate_examples=False, data_container=Envelope[None], description=description, examples=[envelope_error(status, message)])


ERRORS = {
    400: _error(400, "Bad parameter; msg names what is allowed", "interval must be one of 1m, 3m, 5m, 15m, 30m, 1h, 4h, 6h, 8h, 12h, 1d, 1w; got '2h'"),
    404: _error(404, "Unknown exchange, pair or coin", "unknown exchange 'Kraken'; known exchanges: Binance, Bybit, OKX"),
}
UNAVAILABLE = {503: _error(503, "No frame computed yet (Retry-After)", "no model1 24h frame for binance:BTCUSDT yet; it is being computed")}


def _responses(container: Any, description: str, data_example: Any, *, frames: bool = False) -> dict[int, ResponseSpec]:
    """The 200 answer with Coinglass's documented example, and the error answers (503 too where the answer is read from a frame)."""
    example = Example(summary="Coinglass's documented shape", value={"code": "0", "msg": "success", "data": data_example})
    ok = ResponseSpec(generate_examples=False, data_container=Envelope[container], description=description, examples=[example])
    return {200: ok, **ERRORS, **(UNAVAILABLE if frames else {})}


_HEATMAP = {
    "y_axis": [47968.54, 48000.0, 48031.46],
    "liquidation_leverage_data": [[5, 124, 2288867.26], [6, 123, 318624.82]],
    "price_candlesticks": [[1722676500, "61486", "61596.4", "61434.4", "61539.9", "63753192.1129"]],
}
_MAP = {"data": {"48935": [[48935, 1579370.77, None, None]]}}
# The pair map per tier: the same entry with its leverage.
_TIER_MAP = {"data": {"48935": [[48935, 1579370.77, 25, None], [48935, 402118.5, 50, None]]}}

HEATMAP = _responses(CoinglassHeatmap, "Pair heatmap in Coinglass's shape", _HEATMAP, frames=True)
AGGREGATED_HEATMAP = _responses(CoinglassHeatmap, "Coin heatmap over every exchange, in Coinglass's shape", _HEATMAP, frames=True)

PAIR_HISTORY = _responses(list[CoinglassPairHistory], "Realized liquidations of a pair per interval, oldest first", [
    {"time": 1658880000000, "long_liquidation_usd": "2369935.19562", "short_liquidation_usd": "6947459.43674"},
    {"time": 1658966400000, "long_liquidation_usd": "5118407.85124", "short_liquidation_usd": "8517330.44192"},
])

COIN_HISTORY = _responses(list[CoinglassCoinHistory], "Realized liquidations of a coin over exchanges per interval, oldest first", [
    {"time": 1658966400000, "aggregated_long_liquidation_usd": 5916885.14234, "aggregated_short_liquidation_usd": 12969583.87632},
    {"time": 1659052800000, "aggregated_long_liquidation_usd": 5345708.23191, "aggregated_short_liquidation_usd": 6454875.54909},
])

COIN_LIST = _responses(list[CoinglassCoinTotals], "Realized liquidations per coin on one exchange, largest 24h total first", [
    {
        "symbol": "BTC",
        "liquidation_usd_24h": 82280481.50425325, "long_liquidation_usd_24h": 68437447.33734027, "short_liquidation_usd_24h": 13843034.16691298,
        "liquidation_usd_12h": 68331844.36224127, "long_liquidation_usd_12h": 66614158.47451427, "short_liquidation_usd_12h": 1717685.887727,
        "liquidation_usd_4h": 11381137.080643, "long_liquidation_usd_4h": 10921633.272973, "short_liquidation_usd_4h": 459503.80767,
        "liquidation_usd_1h": 3283635.95309, "long_liquidation_usd_1h": 3182915.16289, "short_liquidation_usd_1h": 100720.7902,
    }
])

EXCHANGE_LIST = _responses(list[CoinglassExchangeTotals], "Realized liquidations per exchange, \"All\" first", [
    {"exchange": "All", "liquidation_usd": 14673519.81739075, "long_liquidation_usd": 451394.17404598, "short_liquidation_usd": 14222125.64334477},
    {"exchange": "Bybit", "liquidation_usd": 4585290.13404, "long_liquidation_usd": 104560.13885, "short_liquidation_usd": 4480729.99519},
])

ORDERS = _responses(list[CoinglassLiquidationOrder], "Realized liquidations, newest first, at most 200 from the last 7 days", [
    {"exchange_name": "BINANCE", "symbol": "BTCUSDT", "base_asset": "BTC", "price": 87535.9, "usd_value": 205534.2932, "side": 2, "time": 1745216319263, "position_side": "long"},
    {"exchange_name": "BINANCE", "symbol": "BTCUSDT", "base_asset": "BTC", "price": 87465.2, "usd_value": 15918.6664, "side": 1, "time": 1745215647165, "position_side": "short"},
])

PAIR_MAP = _responses(CoinglassLiquidationMap, "Outstanding liquidation levels of a pair by price and leverage tier", _TIER_MAP, frames=True)
COIN_MAP = _responses(CoinglassLiquidationMap, "Outstanding liquidation levels of a coin over every exchange by price", _MAP, frames=True)

MAX_PAIN = _responses(list[CoinglassMaxPain], "Largest outstanding liquidation level per side and coin", [
    {
        "symbol": "BTC", "price": 110625.1,
        "long_max_pain_liq_level": 75677278.26, "long_max_pain_liq_price": 108046.71,
        "short_max_pain_liq_level": 44617473.19, "short_max_pain_liq_price": 112748.37, "range": "24h",
    }
], frames=True)

SUPPORTED_PAIRS = _responses(dict[str, list[CoinglassPair]], "Pairs liqmap has data for, per exchange", {
    "Binance": [
        {"instrument_id": "BTCUSDT", "base_asset": "BTC", "quote_asset": "USDT", "settlement_currency": None, "max_leverage": None, "funding_interval": None, "price_tick_size": None}
    ]
})

# Market data beside the liquidations (docs/coinglass.md states each documented shape).

SUPPORTED_COINS = _responses(list[str], "Coins with data here", ["BTC", "ETH", "SOL"])
SUPPORTED_EXCHANGES = _responses(list[str], "Exchanges with data here, as Coinglass spells them", ["Binance", "Bybit", "OKX"])

_OI_OHLC = [
    {"time": 1745366400000, "open": "7612544532.1", "high": "7690412207.55", "low": "7598005541.2", "close": "7655320411.08"},
    {"time": 1745452800000, "open": "7655320411.08", "high": "7702019330.4", "low": "7511003894.67", "close": "7530118720.31"},
]
OPEN_INTEREST_HISTORY = _responses(list[CoinglassOhlc], "Open interest of a pair per interval (OHLC, USD or coins, strings)", _OI_OHLC)
OPEN_INTEREST_AGGREGATED = _responses(list[CoinglassOhlc], "Open interest of a coin summed over its exchanges per interval (OHLC, strings)", _OI_OHLC)
OPEN_INTEREST_EXCHANGES = _responses(list[CoinglassOpenInterestExchange], "Open interest of a coin per exchange now, All first", [
    {
        "exchange": "All", "symbol": "BTC", "open_interest_usd": 57437891724.5572, "open_interest_quantity": 659557.3064,
        "open_interest_by_stable_coin_margin": 57437891724.5572, "open_interest_quantity_by_coin_margin": 0,
        "open_interest_quantity_by_stable_coin_margin": 659557.3064, "open_interest_change_percent_5m": 0.34,
        "open_interest_change_percent_15m": 0.59, "open_interest_change_percent_30m": 1.42, "open_interest_change_percent_1h": 2.27,
        "open_interest_change_percent_4h": 2.95, "open_interest_change_percent_24h": 0.9,
    }
])
FUNDING_HISTORY = _responses(list[CoinglassOhlc], "Funding rate of a pair per interval (OHLC, percent, strings)", [
    {"time": 1658880000000, "open": "0.004603", "high": "0.009388", "low": "-0.005063", "close": "0.009229"},
    {"time": 1658966400000, "open": "0.009229", "high": "0.01", "low": "0.007794", "close": "0.01"},
])
FUNDING_EXCHANGES = _responses(list[CoinglassFundingCoin], "Current funding rate of every coin per exchange (percent)", [
    {
        "symbol": "BTC",
        "stablecoin_margin_list": [{"exchange": "Binance", "funding_rate_interval": 8, "funding_rate": 0.007343, "next_funding_time": 1745222400000}],
        "token_margin_list": [],
    }
])
PRICE_HISTORY = _responses(list[CoinglassPriceOhlc], "Price of a pair per interval (OHLC and USD volume, strings)", [
    {"time": 1745366400000, "open": "93404.9", "high": "93864.9", "low": "92730", "close": "92858.2", "volume_usd": "1166471854.3026"},
])
ACCOUNT_RATIO = _responses(list[CoinglassAccountRatio], "Share of accounts long and short per interval (percent) and their ratio", [
    {"time": 1741604400000, "global_account_long_percent": 73.88, "global_account_short_percent": 26.12, "global_account_long_short_ratio": 2.83},
])
TAKER_VOLUME = _responses(list[CoinglassTakerVolume], "Taker buy and sell volume of a pair per interval (USD, strings)", [
    {"time": 1741622400000, "taker_buy_volume_usd": "10551.033", "taker_sell_volume_usd": "11308"},
])
