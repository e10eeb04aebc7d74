"""Canonical rows written out in each venue's exact formats (see reference/EXCHANGES.md).

Numbers are written with ``repr`` so that a correct parser gets the very same floats back.
"""

from __future__ import annotations

import msgspec
import numpy as np

from service.store.rows import SIDE_LONG
from service.store.tiers import Tier

MINUTE_MS = 60_000
_json = msgspec.json.Encoder()


def num(value: float) -> str:
    return repr(float(value))


def dumps(value: object) -> bytes:
    return _json.encode(value)


# --- Binance ---------------------------------------------------------------------------


def binance_klines(candles: np.ndarray) -> list[list[object]]:
    out: list[list[object]] = []
    for ts, o, h, lo, c, vol, taker in candles.tolist():
        out.append([ts, num(o), num(h), num(lo), num(c), num(vol / c), ts + MINUTE_MS - 1, num(vol), 100, num(taker / c), num(taker), "0"])
    return out


def binance_open_interest(symbol: str, oi_usd: float, mark: float, now_ms: int) -> dict[str, object]:
    return {"openInterest": num(oi_usd / mark), "symbol": symbol, "time": now_ms}


def binance_open_interest_hist(symbol: str, ts: np.ndarray, oi_usd: np.ndarray, close: np.ndarray) -> list[dict[str, object]]:
    return [
        {"symbol": symbol, "sumOpenInterest": num(o / c), "sumOpenInterestValue": num(o), "CMCCirculatingSupply": "19870000", "timestamp": t}
        for t, o, c in zip(ts.tolist(), oi_usd.tolist(), close.tolist(), strict=True)
    ]


def binance_account_ratio(symbol: str, rows: np.ndarray) -> list[dict[str, object]]:
    """``globalLongShortAccountRatio``: oldest first, shares as strings, the ratio of the two."""
    return [
        {"symbol": symbol, "longShortRatio": num(lo / sh), "longAccount": num(lo), "shortAccount": num(sh), "timestamp": t}
        for t, lo, sh in zip(rows["ts_ms"].tolist(), rows["long_account"].tolist(), rows["short_account"].tolist(), strict=True)
    ]


def binance_premium_index(symbol: str, mark: float, funding: float, next_funding_ms: int, now_ms: int) -> dict[str, object]:
    return {
        "symbol": symbol,
        "markPrice": num(mark),
        "indexPrice": num(mark),
        "estimatedSettlePrice": num(mark),
        "lastFundingRate": num(funding),
        "interestRate": "0.00010000",
        "nextFundingTime": next_funding_ms,
        "time": now_ms,
    }


def binance_brackets(tiers_by_symbol: dict[str, list[Tier]], now_ms: int) -> dict[str, object]:
    return {
        "code": "000000",
        "message": None,
        "data": {
            "brackets": [
                {
                    "symbol": symbol,
                    "updateTime": now_ms,
                    "notionalLimit": tiers[-1].cap_usd,
                    "riskBrackets": [
                        {
                            "bracketSeq": i + 1,
                            "bracketNotionalFloor": t.floor_usd,
                            "bracketNotionalCap": t.cap_usd,
                            "bracketMaintenanceMarginRate": t.mmr,
                            "cumFastMaintenanceAmount": t.deduction_usd,
                            "minOpenPosLeverage": 1,
                            "maxOpenPosLeverage": t.max_leverage,
                        }
                        for i, t in enumerate(tiers)
                    ],
                }
                for symbol, tiers in tiers_by_symbol.items()
            ]
        },
    }


def binance_force_order(symbol: str, event: tuple, *, usdm: bool = True) -> dict[str, object]:
    ts, side, price, quantity, _ = event
    return {
        "stream": "!forceOrder@arr",
        "data": {
            "e": "forceOrder",
            "E": ts + 7,
            "st": 1 if usdm else 2,
            "ps": symbol,
            "o": {
                "s": symbol if usdm else symbol.replace("USDT", "USD_PERP"),
                "S": "SELL" if side == SIDE_LONG else "BUY",
                "o": "LIMIT",
                "f": "IOC",
                "q": num(quantity),
                "p": num(price),
                "ap": num(price),
                "X": "FILLED",
                "l": num(quantity),
                "z": num(quantity),
                "T": ts,
            },
        },
    }


# --- Bybit -----------------------------------------------------------------------------


def bybit_envelope(result: object, now_ms: int, code: int = 0, message: str = "OK") -> dict[str, object]:
    return {"retCode": code, "retMsg": message, "result": result, "retExtInfo": {}, "time": now_ms}


def bybit_klines(symbol: str, candles: np.ndarray) -> dict[str, object]:
    rows = [[str(ts), num(o), num(h), num(lo), num(c), num(vol / c), num(vol)] for ts, o, h, lo, c, vol, _ in candles.tolist()]
    return {"category": "linear", "symbol": symbol, "list": rows[::-1]}


def bybit_open_interest(symbol: str, ts: np.ndarray, oi_usd: np.ndarray, close: np.ndarray) -> dict[str, object]:
    rows = [
        {"openInterest": num(2 * o / c), "singleOpenInterest": num(o / c), "timestamp": str(t)}
        for t, o, c in zip(ts.tolist(), oi_usd.tolist(), close.tolist(), strict=True)
    ]
    return {"symbol": symbol, "category": "linear", "list": rows[::-1], "nextPageCursor": ""}


def bybit_account_ratio(symbol: str, rows: np.ndarray) -> dict[str, object]:
    """``/v5/market/account-ratio``: newest first, ``buyRatio`` / ``sellRatio`` the shares long / short."""
    items = [
        {"symbol": symbol, "buyRatio": num(lo), "sellRatio": num(sh), "timestamp": str(t)}
        for t, lo, sh in zip(rows["ts_ms"].tolist(), rows["long_account"].tolist(), rows["short_account"].tolist(), strict=True)
    ]
    return {"list": items[::-1], "nextPageCursor": ""}


def bybit_ticker(symbol: str, mark: float, oi_usd: float, funding: float, next_funding_ms: int) -> dict[str, object]:
    coins = oi_usd / mark
    return {
        "category": "linear",
        "list": [
            {
                "symbol": symbol,
                "lastPrice": num(mark),
                "indexPrice": num(mark),
                "markPrice": num(mark),
                "openInterest": num(2 * coins),
                "openInterestValue": num(2 * oi_usd),
                "singleOpenInterest": num(coins),
                "singleOpenInterestValue": num(oi_usd),
                "turnover24h": "0",
                "volume24h": "0",
                "fundingRate": num(funding),
                "nextFundingTime": str(next_funding_ms),
                "fundingIntervalHour": "8",
            }
        ],
    }


def bybit_risk_limits(symbol: str, tiers: list[Tier]) -> dict[str, object]:
    return {
        "category": "linear",
        "list": [
            {
                "id": i + 1,
                "symbol": symbol,
                "riskLimitValue": num(t.cap_usd),
                "maintenanceMargin": num(t.mmr),
                "initialMargin": num(1 / t.max_leverage),
                "isLowestRisk": 1 if i == 0 else 0,
                "maxLeverage": num(t.max_leverage),
                "mmDeduction": "" if i == 0 else num(t.deduction_usd),
            }
            for i, t in enumerate(tiers)
        ],
        "nextPageCursor": "",
    }


def bybit_liquidations(symbol: str, events: list[tuple], now_ms: int) -> dict[str, object]:
    return {
        "topic": f"allLiquidation.{symbol}",
        "type": "snapshot",
        "ts": now_ms,
        "data": [{"T": ts, "s": symbol, "S": "Buy" if side == SIDE_LONG else "Sell", "v": num(q), "p": num(p)} for ts, side, p, q, _ in events],
    }


# --- OKX -------------------------------------------------------------------------------


def okx_envelope(data: list[object], code: str = "0", message: str = "") -> dict[str, object]:
    return {"code": code, "msg": message, "data": data}


def okx_candles(candles: np.ndarray, contract_value: float, now_ms: int) -> list[list[str]]:
    rows = [
        [str(ts), num(o), num(h), num(lo), num(c), num(vol / c / contract_value), num(vol / c), num(vol), "1" if ts + MINUTE_MS <= now_ms else "0"]
        for ts, o, h, lo, c, vol, _ in candles.tolist()
    ]
    return rows[::-1]


def okx_open_interest_history(ts: np.ndarray, oi_usd: np.ndarray, close: np.ndarray, contract_value: float) -> list[list[str]]:
    rows = [[str(t), num(o / c / contract_value), num(o / c), num(o)] for t, o, c in zip(ts.tolist(), oi_usd.tolist(), close.tolist(), strict=True)]
    return rows[::-1]


def okx_account_ratio(rows: np.ndarray) -> list[list[str]]:
    """``long-short-account-ratio-contract``: ``[ts, ratio]`` newest first (OKX sends the ratio alone)."""
    out = [[str(t), num(lo / sh)] for t, lo, sh in zip(rows["ts_ms"].tolist(), rows["long_account"].tolist(), rows["short_account"].tolist(), strict=True)]
    return out[::-1]


def okx_taker_volume(rows: np.ndarray) -> list[list[str]]:
    """``taker-volume-contract`` with ``unit=2``: ``[ts, sellVol, buyVol]`` in USD, newest first."""
    out = [[str(t), num(s), num(b)] for t, s, b in zip(rows["ts_ms"].tolist(), rows["sell_usd"].tolist(), rows["buy_usd"].tolist(), strict=True)]
    return out[::-1]


def okx_open_interest(inst_id: str, oi_usd: float, mark: float, contract_value: float, now_ms: int) -> dict[str, object]:
    coins = oi_usd / mark
    return {"instType": "SWAP", "instId": inst_id, "oi": num(coins / contract_value), "oiCcy": num(coins), "oiUsd": num(oi_usd), "ts": str(now_ms)}


def okx_mark_price(inst_id: str, mark: float, now_ms: int) -> dict[str, object]:
    return {"instType": "SWAP", "instId": inst_id, "markPx": num(mark), "ts": str(now_ms)}


def okx_funding_rate(inst_id: str, funding: float, next_funding_ms: int) -> dict[str, object]:
    return {
        "instType": "SWAP",
        "instId": inst_id,
        "fundingRate": num(funding),
        "nextFundingRate": "",
        "fundingTime": str(next_funding_ms),
        "nextFundingTime": str(next_funding_ms + 8 * 60 * MINUTE_MS),
    }


def okx_position_tiers(family: str, tiers: list[Tier], contract_value: float, mark: float) -> list[dict[str, object]]:
    usd = contract_value * mark
    return [
        {
            "uly": family,
            "instFamily": family,
            "instId": "",
            "tier": str(i + 1),
            "minSz": num(t.floor_usd / usd),
            "maxSz": num(t.cap_usd / usd),
            "mmr": num(t.mmr),
            "imr": num(1 / t.max_leverage),
            "maxLever": num(t.max_leverage),
            "optMgnFactor": "0",
            "quoteMaxLoan": "",
            "baseMaxLoan": "",
        }
        for i, t in enumerate(tiers)
    ]


def okx_liquidations(inst_id: str, events: list[tuple], contract_value: float) -> dict[str, object]:
    family = inst_id.removesuffix("-SWAP")
    details = [
        {
            "bkLoss": "0",
            "bkPx": num(p),
            "ccy": "",
            "posSide": "long" if side == SIDE_LONG else "short",
            "side": "sell" if side == SIDE_LONG else "buy",
            "sz": num(q / contract_value),
            "ts": str(ts),
        }
        for ts, side, p, q, _ in events
    ]
    return {
        "arg": {"channel": "liquidation-orders", "instType": "SWAP"},
        "data": [{"details": details, "instFamily": family, "instId": inst_id, "instType": "SWAP", "uly": family}],
    }


# --- market lists and kline streams ----------------------------------------------------------
#
# Each venue's list also carries instruments a collector of USDT perpetuals must leave out:
# a dated future, a USDC-margined perpetual and (through ``trading``) ones that do not trade.


def binance_exchange_info(symbols: list[str], trading: set[str], now_ms: int) -> dict[str, object]:
    def entry(symbol: str, contract: str, quote: str, status: str) -> dict[str, object]:
        base = symbol.split("_")[0].removesuffix(quote)
        return {
            "symbol": symbol,
            "pair": base + quote,
            "contractType": contract,
            "deliveryDate": 4133404800000 if contract == "PERPETUAL" else 1798790400000,
            "onboardDate": 1569398400000,
            "status": status,
            "baseAsset": base,
            "quoteAsset": quote,
            "marginAsset": quote,
            "pricePrecision": 2,
            "quantityPrecision": 3,
            "underlyingType": "COIN",
            "settlePlan": 0,
            "filters": [],
            "orderTypes": ["LIMIT", "MARKET"],
            "timeInForce": ["GTC", "IOC"],
        }

    listed = [entry(s, "PERPETUAL", "USDT", "TRADING" if s in trading else "SETTLING") for s in symbols]
    listed += [entry("BTCUSDT_261225", "CURRENT_QUARTER", "USDT", "TRADING"), entry("BTCUSDC", "PERPETUAL", "USDC", "TRADING")]
    return {
        "timezone": "UTC",
        "serverTime": now_ms,
        "rateLimits": [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 2400}],
        "exchangeFilters": [],
        "assets": [],
        "symbols": listed,
    }


def binance_tickers_24h(volumes: dict[str, float], prices: dict[str, float], now_ms: int) -> list[dict[str, object]]:
    return [
        {
            "symbol": symbol,
            "priceChange": "0",
            "priceChangePercent": "0",
            "weightedAvgPrice": num(prices[symbol]),
            "lastPrice": num(prices[symbol]),
            "lastQty": "1",
            "openPrice": num(prices[symbol]),
            "highPrice": num(prices[symbol]),
            "lowPrice": num(prices[symbol]),
            "volume": num(volume / prices[symbol]),
            "quoteVolume": num(volume),
            "openTime": now_ms - 86_400_000,
            "closeTime": now_ms,
            "firstId": 1,
            "lastId": 2,
            "count": 2,
        }
        for symbol, volume in volumes.items()
    ]


def binance_kline(symbol: str, bar: tuple, closed: bool, now_ms: int) -> dict[str, object]:
    ts, o, h, lo, c, vol, taker = bar
    return {
        "stream": f"{symbol.lower()}@kline_1m",
        "data": {
            "e": "kline",
            "E": now_ms,
            "s": symbol,
            "k": {
                "t": ts, "T": ts + MINUTE_MS - 1, "s": symbol, "i": "1m", "f": 100, "L": 200,
                "o": num(o), "c": num(c), "h": num(h), "l": num(lo), "v": num(vol / c), "n": 100, "x": closed,
                "q": num(vol), "V": num(taker / c), "Q": num(taker), "B": "0",
            },
        },
    }


def bybit_instruments(symbols: list[str], trading: set[str], cursor: str) -> dict[str, object]:
    def entry(symbol: str, contract: str, quote: str, status: str) -> dict[str, object]:
        return {
            "symbol": symbol, "contractType": contract, "status": status, "baseCoin": symbol.split("-")[0].removesuffix(quote).removesuffix("PERP"),
            "quoteCoin": quote, "settleCoin": quote, "launchTime": "1585526400000", "deliveryTime": "0", "priceScale": "2",
            "leverageFilter": {"minLeverage": "1", "maxLeverage": "100.00", "leverageStep": "0.01"},
        }

    rows = [
        entry(s, "LinearFutures" if "-" in s else "LinearPerpetual", "USDC" if s.endswith("PERP") else "USDT", "Trading" if s in trading else "PreLaunch")
        for s in symbols
    ]
    return {"category": "linear", "list": rows, "nextPageCursor": cursor}


def bybit_extra_instruments() -> list[str]:
    """Symbols on Bybit's linear list that are not USDT perpetuals (a USDC perpetual, a dated future)."""
    return ["BTCPERP", "BTC-26DEC26"]


def bybit_ticker_volumes(volumes: dict[str, float], prices: dict[str, float]) -> dict[str, object]:
    return {
        "category": "linear",
        "list": [
            {"symbol": s, "lastPrice": num(prices[s]), "markPrice": num(prices[s]), "turnover24h": num(v), "volume24h": num(v / prices[s])}
            for s, v in volumes.items()
        ],
    }


def bybit_kline(symbol: str, bar: tuple, closed: bool, now_ms: int) -> dict[str, object]:
    ts, o, h, lo, c, vol, _ = bar
    return {
        "topic": f"kline.1.{symbol}",
        "data": [
            {
                "start": ts, "end": ts + MINUTE_MS - 1, "interval": "1", "open": num(o), "close": num(c), "high": num(h), "low": num(lo),
                "volume": num(vol / c), "turnover": num(vol), "confirm": closed, "timestamp": now_ms,
            }
        ],
        "ts": now_ms,
        "type": "snapshot",
    }


def okx_swap_instruments(contract_values: dict[str, float], trading: set[str]) -> list[dict[str, object]]:
    def entry(inst_id: str, value: float, settle: str, kind: str, state: str) -> dict[str, object]:
        family = inst_id.removesuffix("-SWAP")
        return {
            "instType": "SWAP", "instId": inst_id, "uly": family, "instFamily": family, "settleCcy": settle, "ctVal": num(value),
            "ctMult": "1", "ctValCcy": inst_id.split("-")[0] if kind == "linear" else "USD", "ctType": kind, "state": state,
            "listTime": "1597026383085", "expTime": "", "lever": "100", "tickSz": "0.1", "lotSz": "1", "minSz": "1",
        }

    rows = [entry(i, v, "USDT", "linear", "live" if i in trading else "suspend") for i, v in contract_values.items()]
    rows += [entry("BTC-USD-SWAP", 100.0, "BTC", "inverse", "live"), entry("BTC-USDC-SWAP", 0.0001, "USDC", "linear", "live")]
    return rows


def okx_tickers(volumes: dict[str, float], prices: dict[str, float], contract_values: dict[str, float], now_ms: int) -> list[dict[str, object]]:
    return [
        {
            "instType": "SWAP", "instId": inst, "last": num(prices[inst]), "lastSz": "1", "askPx": num(prices[inst]), "askSz": "1",
            "bidPx": num(prices[inst]), "bidSz": "1", "open24h": num(prices[inst]), "high24h": num(prices[inst]), "low24h": num(prices[inst]),
            "volCcy24h": num(v / prices[inst]), "vol24h": num(v / prices[inst] / contract_values[inst]), "ts": str(now_ms),
            "sodUtc0": num(prices[inst]), "sodUtc8": num(prices[inst]),
        }
        for inst, v in volumes.items()
    ]


def okx_candle(inst_id: str, bar: tuple, contract_value: float, closed: bool) -> dict[str, object]:
    ts, o, h, lo, c, vol, _ = bar
    row = [str(ts), num(o), num(h), num(lo), num(c), num(vol / c / contract_value), num(vol / c), num(vol), "1" if closed else "0"]
    return {"arg": {"channel": "candle1m", "instId": inst_id}, "data": [row]}


def binance_mark_prices(marks: dict[str, float], funding: float, next_funding_ms: int, now_ms: int) -> dict[str, object]:
    return {
        "stream": "!markPrice@arr@1s",
        "data": [
            {"e": "markPriceUpdate", "E": now_ms, "s": s, "p": num(m), "i": num(m), "P": num(m), "r": num(funding), "T": next_funding_ms}
            for s, m in marks.items()
        ],
    }
