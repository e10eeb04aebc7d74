"""Translations between liqmap's data and Coinglass's vocabulary.

Exchange spelling, order sides, which market holds a coin's book, and the
liquidation map read from a stored frame: what the Coinglass-compatible routes
share. The coin of a pair is ``service.markets.coin_of``.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec
import numpy as np

from engine.types import Float64Array, Int64Array
from service.compute.series import Ohlc
from service.store.rows import SIDE_LONG, SIDE_SHORT
from service.markets import AGGREGATE_EXCHANGE, coin_of
from service.wire.schemas import CoinglassAccountRatio, CoinglassOhlc, CoinglassPriceOhlc, CoinglassPush, CoinglassPushedLiquidation, CoinglassTakerVolume, LiquidationMapOut

# Exchange ids as Coinglass spells them; others are shown capitalised.
_EXCHANGE_NAMES = {"binance": "Binance", "okx": "OKX", "bybit": "Bybit"}

# Coinglass order sides (its REST convention): the liquidation order's direction.
ORDER_BUY = 1  # a short position was liquidated (bought back)
ORDER_SELL = 2  # a long position was liquidated (sold)

# Coinglass map / max-pain ranges → the frame range whose last column is that book.
MAP_RANGES = {"1d": "24h", "7d": "7d", "30d": "30d"}
# 48h and 14d have no frame of their own: the next longer frame answers them.
MAX_PAIN_RANGES = {"12h": "12h", "24h": "24h", "48h": "3d", "3d": "3d", "7d": "7d", "14d": "30d", "30d": "30d"}


def exchange_name(exchange: str) -> str:
    """Coinglass's spelling of a store exchange id: ``okx`` → ``OKX``."""
    return _EXCHANGE_NAMES.get(exchange, exchange.capitalize())


def quote_of(symbol: str) -> str:
    """The quote currency of a pair: what follows its coin (``BTCUSDT`` → ``USDT``; an aggregate's coin → ``""``)."""
    return symbol[len(coin_of(symbol)) :]


# Coinglass's websocket sides (its liquidationOrders channel): the position liquidated.
PUSH_LONG = 1
PUSH_SHORT = 2
LIQUIDATION_ORDERS = "liquidationOrders"


def liquidation_push(batches: list[tuple[str, str, np.ndarray]]) -> bytes:
    """One ``liquidationOrders`` message (JSON) of the events of ``(exchange, symbol, LIQUIDATION_DTYPE rows)``, in that order."""
    data = []
    for exchange, symbol, events in batches:
        name, coin = exchange_name(exchange), coin_of(symbol)
        sides = np.where(events["side"] == SIDE_LONG, PUSH_LONG, PUSH_SHORT).tolist()
        for price, side, ts, usd in zip(events["price"].tolist(), sides, events["ts_ms"].tolist(), np.round(events["usd"], 5).tolist()):
            data.append(CoinglassPushedLiquidation(baseAsset=coin, exName=name, price=price, side=side, symbol=symbol, time=ts, volUsd=usd))
    return msgspec.json.encode(CoinglassPush(channel=LIQUIDATION_ORDERS, data=data))


def order_sides(side: np.ndarray) -> Int64Array:
    """Coinglass order side of each event: 2 (Sell) where a long was liquidated, 1 (Buy) where a short was."""
    return np.where(side == SIDE_LONG, ORDER_SELL, ORDER_BUY).astype(np.int64)


class _FrameBook(msgspec.Struct):
    """The part of a stored native frame (``v1.msgpack``) the map needs."""

    y: list[float]
    long: list[list[int]]
    short: list[list[int]]
    candles: list[list[float | None]]


_book_decoder = msgspec.msgpack.Decoder(_FrameBook)


@dataclass(frozen=True, slots=True)
class LiquidationLevels:
    """Outstanding liquidation levels of a market as a frame leaves them, one per (price row, side) with USD > 0.

    Attributes
    ----------
    price : float or None
        Last close of the frame, USD (None if it has no bar).
    level_price : Float64Array, shape (n,)
        Price of each level (its row centre), USD, ascending within a side.
    usd : Float64Array, shape (n,)
        Notional that would be liquidated there, USD.
    side : Int64Array, shape (n,)
        +1 longs (liquidated when price falls to the level), -1 shorts.
    leverage : Float64Array, shape (n,)
        Leverage tier of each level; NaN where unknown.
    """

    price: float | None
    level_price: Float64Array
    usd: Float64Array
    side: Int64Array
    leverage: Float64Array


def liquidation_levels(frame_msgpack: bytes) -> LiquidationLevels:
    """The outstanding book of a stored frame: its last column, longs and shorts.

    A frame's cells are summed over leverage tiers, so ``leverage`` is unknown
    (NaN) here; :func:`tier_levels` reads the per-tier map instead.
    """
    frame = _book_decoder.decode(frame_msgpack)
    y = np.asarray(frame.y, dtype=np.float64)
    long_last = np.asarray(frame.long[-1] if frame.long else np.zeros(len(y)), dtype=np.float64)
    short_last = np.asarray(frame.short[-1] if frame.short else np.zeros(len(y)), dtype=np.float64)
    closes = [candle[4] for candle in frame.candles if candle[4] is not None]
    long_rows = np.flatnonzero(long_last > 0)
    short_rows = np.flatnonzero(short_last > 0)
    return LiquidationLevels(
        price=closes[-1] if closes else None,
        level_price=np.concatenate((y[long_rows], y[short_rows])),
        usd=np.concatenate((long_last[long_rows], short_last[short_rows])),
        side=np.concatenate((np.full(len(long_rows), SIDE_LONG), np.full(len(short_rows), SIDE_SHORT))).astype(np.int64),
        leverage=np.full(len(long_rows) + len(short_rows), np.nan),
    )


def tier_levels(book: LiquidationMapOut) -> LiquidationLevels:
    """The outstanding levels of the engine's per-tier map (the native ``/levels`` map), one per
    (tier, price row, side) with USD > 0, each with its tier's leverage; tiers in the map's order."""
    y = np.asarray(book.y, dtype=np.float64)
    prices, usd, side, leverage = [np.zeros(0)], [np.zeros(0)], [np.zeros(0, dtype=np.int64)], [np.zeros(0)]
    for tier in book.tiers:
        for values, sign in ((tier.long, SIDE_LONG), (tier.short, SIDE_SHORT)):
            row_usd = np.asarray(values, dtype=np.float64)
            rows = np.flatnonzero(row_usd > 0)
            prices.append(y[rows])
            usd.append(row_usd[rows])
            side.append(np.full(len(rows), sign, dtype=np.int64))
            leverage.append(np.full(len(rows), tier.leverage))
    return LiquidationLevels(
        price=book.price,
        level_price=np.concatenate(prices),
        usd=np.concatenate(usd),
        side=np.concatenate(side),
        leverage=np.concatenate(leverage),
    )


def number_text(value: float, decimals: int) -> str:
    """A number as Coinglass writes it in strings: at most ``decimals`` places, no exponent, no trailing zeros."""
    return f"{value:.{decimals}f}".rstrip("0").rstrip(".") or "0"


def map_data(levels: LiquidationLevels) -> dict[str, list[list[float | None]]]:
    """Coinglass's liquidation map: ``{"<price>": [[price, usd, leverage, null], ...]}``, one entry per
    side (and tier, where known) present at a price; a whole leverage is sent as an integer (``25``)."""
    out: dict[str, list[list[float | None]]] = {}
    order = np.argsort(levels.level_price, kind="stable")
    for price, usd, leverage in zip(
        levels.level_price[order].tolist(), np.round(levels.usd[order], 2).tolist(), levels.leverage[order].tolist()
    ):
        tier = None if np.isnan(leverage) else int(leverage) if leverage.is_integer() else leverage
        out.setdefault(number_text(price, 8), []).append([price, usd, tier, None])
    return out


def coin_markets(markets: list[tuple[str, str]]) -> dict[str, tuple[str, str]]:
    """The market holding each coin's book over every exchange: its aggregate ``all:<COIN>``,
    or its only pair where no aggregate exists; coins on several exchanges without an aggregate are left out.
    """
    pairs: dict[str, list[tuple[str, str]]] = {}
    for exchange, symbol in markets:
        if exchange != AGGREGATE_EXCHANGE:
            pairs.setdefault(coin_of(symbol), []).append((exchange, symbol))
    out = {coin: found[0] for coin, found in pairs.items() if len(found) == 1}
    out.update({symbol: (exchange, symbol) for exchange, symbol in markets if exchange == AGGREGATE_EXCHANGE})
    return dict(sorted(out.items()))


def largest_level_of_side(levels: LiquidationLevels, side: int) -> tuple[float, float | None]:
    """``(usd, price)`` of the largest level of one side of a stored frame's last column (``(0.0, None)`` when it has none).

    Coinglass's "max pain" of that side, read from the stored cells (whole USD, every tier);
    the native ``/levels`` route computes its own from the per-tier map
    (:func:`engine.book.largest_row_per_side`).
    """
    mine = np.flatnonzero(levels.side == side)
    if not len(mine):
        return 0.0, None
    best = mine[np.argmax(levels.usd[mine])]
    return round(float(levels.usd[best]), 2), float(levels.level_price[best])


# Decimals of the numbers sent as strings: USD amounts, prices, funding rates in percent.
USD_DECIMALS = 4
PRICE_DECIMALS = 8
COIN_DECIMALS = 6
FUNDING_PERCENT_DECIMALS = 6


def ohlc_rows(ohlc: Ohlc, decimals: int, scale: float = 1.0) -> list[CoinglassOhlc]:
    """Coinglass's OHLC rows (numbers as strings), each value times ``scale`` (100: a fraction in percent)."""
    columns = [np.asarray(column) * scale for column in (ohlc.open, ohlc.high, ohlc.low, ohlc.close)]
    return [
        CoinglassOhlc(time=t, open=number_text(o, decimals), high=number_text(h, decimals), low=number_text(lo, decimals), close=number_text(c, decimals))
        for t, o, h, lo, c in zip(ohlc.time.tolist(), *(column.tolist() for column in columns))
    ]


def price_rows(ohlc: Ohlc, volume_usd: np.ndarray) -> list[CoinglassPriceOhlc]:
    """Coinglass's price rows: OHLC and the traded USD, as strings."""
    return [
        CoinglassPriceOhlc(
            time=t,
            open=number_text(o, PRICE_DECIMALS),
            high=number_text(h, PRICE_DECIMALS),
            low=number_text(lo, PRICE_DECIMALS),
            close=number_text(c, PRICE_DECIMALS),
            volume_usd=number_text(v, USD_DECIMALS),
        )
        for t, o, h, lo, c, v in zip(ohlc.time.tolist(), ohlc.open.tolist(), ohlc.high.tolist(), ohlc.low.tolist(), ohlc.close.tolist(), np.asarray(volume_usd).tolist())
    ]


def taker_rows(time: np.ndarray, buy_usd: np.ndarray, sell_usd: np.ndarray) -> list[CoinglassTakerVolume]:
    return [
        CoinglassTakerVolume(time=t, taker_buy_volume_usd=number_text(b, USD_DECIMALS), taker_sell_volume_usd=number_text(s, USD_DECIMALS))
        for t, b, s in zip(np.asarray(time).tolist(), np.asarray(buy_usd).tolist(), np.asarray(sell_usd).tolist())
    ]


def account_ratio_rows(time: np.ndarray, long_share: np.ndarray, short_share: np.ndarray) -> list[CoinglassAccountRatio]:
    """Shares (0..1) as Coinglass's percentages with two decimals, and long / short with two (null-free: 0 short is skipped)."""
    long_share, short_share = np.asarray(long_share, dtype=np.float64), np.asarray(short_share, dtype=np.float64)
    keep = short_share > 0
    ratio = np.round(long_share[keep] / short_share[keep], 2)
    return [
        CoinglassAccountRatio(time=t, global_account_long_percent=lo, global_account_short_percent=sh, global_account_long_short_ratio=r)
        for t, lo, sh, r in zip(
            np.asarray(time)[keep].tolist(), np.round(long_share[keep] * 100, 2).tolist(), np.round(short_share[keep] * 100, 2).tolist(), ratio.tolist()
        )
    ]
