"""Parsing each endpoint and stream from payloads in the venues' exact documented formats (reference/EXCHANGES.md)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from service.store.rows import CANDLE_DTYPE, SIDE_LONG, SIDE_SHORT
from service.collect.venues import binance, bybit, okx
from service.store import tiers
from service.collect.venues.errors import BadPayload, VenueRejected

# --- Binance -----------------------------------------------------------------------------

BINANCE_KLINES = b'[[1616338800000,"57212.69","57315.00","57196.19","57300.00","496.263",1616339099999,"28425514.78940",7160,"273.108","15642623.69718","0"]]'
BINANCE_OPEN_INTEREST = b'{"openInterest":"10659.509","symbol":"BTCUSDT","time":1589437530011}'
BINANCE_OI_HIST = b'[{"symbol":"BTCUSDT","sumOpenInterest":"34085.00000000","sumOpenInterestValue":"1927265695.27131325","CMCCirculatingSupply":"19870000","timestamp":1616438700000}]'
BINANCE_PREMIUM = b'{"symbol":"BTCUSDT","markPrice":"11793.63104562","indexPrice":"11781.80495970","estimatedSettlePrice":"11781.16138815","lastFundingRate":"0.00038246","interestRate":"0.00010000","nextFundingTime":1597392000000,"time":1597370495002}'
BINANCE_FORCE_ORDER = '{"stream":"!forceOrder@arr","data":{"e":"forceOrder","E":1568014460893,"st":1,"ps":"BTCUSDT","o":{"s":"BTCUSDT","S":"SELL","o":"LIMIT","f":"IOC","q":"0.014","p":"9910","ap":"9910","X":"FILLED","l":"0.014","z":"0.014","T":1568014460893}}}'
BINANCE_BRACKETS = (
    b'{"code":"000000","data":{"brackets":[{"symbol":"BTCUSDT","updateTime":1,"notionalLimit":"1000000","riskBrackets":['
    b'{"bracketSeq":1,"bracketNotionalFloor":0,"bracketNotionalCap":300000,"bracketMaintenanceMarginRate":0.004,"cumFastMaintenanceAmount":0,"minOpenPosLeverage":1,"maxOpenPosLeverage":125},'
    b'{"bracketSeq":2,"bracketNotionalFloor":300000,"bracketNotionalCap":800000,"bracketMaintenanceMarginRate":0.005,"cumFastMaintenanceAmount":300,"minOpenPosLeverage":1,"maxOpenPosLeverage":100}]}]}}'
)


def test_binance_klines_use_quote_volume_and_taker_buy_quote_volume() -> None:
    rows = binance.parse_klines(BINANCE_KLINES)
    assert rows.dtype == CANDLE_DTYPE
    assert rows.tolist() == [(1616338800000, 57212.69, 57315.0, 57196.19, 57300.0, 28425514.7894, 15642623.69718)]


def test_binance_open_interest_is_coins_times_mark_stamped_when_observed() -> None:
    snapshot = binance.parse_snapshot(BINANCE_OPEN_INTEREST, BINANCE_PREMIUM)
    assert snapshot.open_interest.tolist() == [(1589437530011, 10659.509 * 11793.63104562)]
    assert snapshot.meta["mark_price"] == 11793.63104562
    assert snapshot.meta["funding_rate"] == 0.00038246
    assert snapshot.meta["next_funding_ms"] == 1597392000000


def test_binance_open_interest_history_is_the_usdt_value_at_the_period_end() -> None:
    assert binance.parse_open_interest_history(BINANCE_OI_HIST).tolist() == [(1616438700000, 1927265695.27131325)]


def test_binance_force_order_sell_is_a_long_liquidated_and_coin_margined_is_ignored() -> None:
    [(symbol, event)] = binance.parse_force_order(BINANCE_FORCE_ORDER)
    assert symbol == "BTCUSDT"
    assert event == (1568014460893, SIDE_LONG, 9910.0, 0.014, 9910.0 * 0.014)
    assert binance.parse_force_order(BINANCE_FORCE_ORDER.replace('"st":1', '"st":2')) == []
    bare = BINANCE_FORCE_ORDER[len('{"stream":"!forceOrder@arr","data":') : -1]
    [(_, buy)] = binance.parse_force_order(bare.replace('"S":"SELL"', '"S":"BUY"'))
    assert buy[1] == SIDE_SHORT


def test_binance_keyless_brackets_become_tiers() -> None:
    found = binance.parse_brackets(BINANCE_BRACKETS)["BTCUSDT"]
    assert found == [tiers.Tier(0, 300_000, 0.004, 0, 125), tiers.Tier(300_000, 800_000, 0.005, 300, 100)]
    # The shipped table computes the same deduction (cum) as the venue.
    assert binance.default_tiers("BTCUSDT")[:2] == found


# --- Bybit -------------------------------------------------------------------------------

BYBIT_KLINES = b'{"retCode":0,"retMsg":"OK","result":{"category":"linear","symbol":"BTCUSDT","list":[["1670608860000","17055.5","17080","17050","17071","100","1706000"],["1670608800000","17071","17073","17027","17055.5","268.611","4582015.2"]]},"retExtInfo":{},"time":1672025956592}'
BYBIT_OPEN_INTEREST = b'{"retCode":0,"retMsg":"OK","result":{"symbol":"BTCUSDT","category":"linear","list":[{"openInterest":"103810.52","singleOpenInterest":"51905.26","timestamp":"1780963200000"}],"nextPageCursor":"lastid%3D19408935%26lasttime%3D1780617600"},"retExtInfo":{},"time":1780994051392}'
BYBIT_RISK_LIMIT = b'{"retCode":0,"retMsg":"OK","result":{"category":"linear","list":[{"id":1,"symbol":"BTCUSDT","riskLimitValue":"2000000","maintenanceMargin":"0.005","initialMargin":"0.01","isLowestRisk":1,"maxLeverage":"100.00","mmDeduction":""}],"nextPageCursor":""},"retExtInfo":{},"time":1672054488010}'
BYBIT_TICKERS = b'{"retCode":0,"retMsg":"OK","result":{"category":"linear","list":[{"symbol":"BTCUSDT","lastPrice":"16597.00","indexPrice":"16598.54","markPrice":"16596.00","openInterest":"200","openInterestValue":"3319200","singleOpenInterest":"100","singleOpenInterestValue":"1659600","turnover24h":"1","volume24h":"1","fundingRate":"-0.000212","nextFundingTime":"1672387200000","fundingIntervalHour":"8"}]},"retExtInfo":{},"time":1672376496682}'
BYBIT_LIQUIDATION = '{"topic":"allLiquidation.ROSEUSDT","type":"snapshot","ts":1739502303204,"data":[{"T":1739502302929,"s":"ROSEUSDT","S":"Sell","v":"20000","p":"0.04499"}]}'


def test_bybit_klines_come_newest_first_with_turnover_as_volume_and_no_taker_split() -> None:
    rows = bybit.parse_klines(BYBIT_KLINES)
    assert rows["ts_ms"].tolist() == [1670608800000, 1670608860000]
    assert rows[0].tolist()[:6] == (1670608800000, 17071.0, 17073.0, 17027.0, 17055.5, 4582015.2)
    assert np.isnan(rows["taker_buy_usd"]).all()


def test_bybit_open_interest_uses_one_side_times_the_bar_close() -> None:
    candles = np.zeros(1, dtype=CANDLE_DTYPE)
    candles[0] = (1780963200000 - 60_000, 1, 1, 1, 70_000.0, 1, np.nan)
    assert bybit.parse_open_interest(BYBIT_OPEN_INTEREST, candles).tolist() == [(1780963200000, 51905.26 * 70_000.0)]
    # Without a price near the observation the row cannot be valued and is left out.
    assert len(bybit.parse_open_interest(BYBIT_OPEN_INTEREST, candles[:0])) == 0


def test_bybit_ticker_gives_one_side_open_interest_value_mark_and_funding() -> None:
    snapshot = bybit.parse_ticker(BYBIT_TICKERS)
    assert snapshot.open_interest.tolist() == [(1672376496682, 1659600.0)]
    assert snapshot.meta["mark_price"] == 16596.0 and snapshot.meta["funding_rate"] == -0.000212


def test_bybit_risk_limits_become_tiers() -> None:
    assert bybit.parse_risk_limits(BYBIT_RISK_LIMIT) == [tiers.Tier(0.0, 2_000_000.0, 0.005, 0.0, 100.0)]


def test_bybit_liquidation_buy_is_a_long_liquidated() -> None:
    [(symbol, event)] = bybit.parse_liquidations(BYBIT_LIQUIDATION)
    assert symbol == "ROSEUSDT"
    assert event == (1739502302929, SIDE_SHORT, 0.04499, 20000.0, 0.04499 * 20000.0)
    [(_, long_event)] = bybit.parse_liquidations(BYBIT_LIQUIDATION.replace('"S":"Sell"', '"S":"Buy"'))
    assert long_event[1] == SIDE_LONG
    assert bybit.parse_liquidations('{"success":true,"ret_msg":"pong","conn_id":"x","op":"ping"}') == []


def test_bybit_error_codes() -> None:
    with pytest.raises(VenueRejected, match="10001"):
        bybit.parse_klines(b'{"retCode":10001,"retMsg":"params error","result":{},"retExtInfo":{},"time":1}')


# --- OKX ---------------------------------------------------------------------------------

OKX_CANDLES = b'{"code":"0","msg":"","data":[["1672840860000","43250.5","43300","43200","43280","100","1","43280","0"],["1672840800000","43200.0","43350.0","43150.0","43250.5","12580","125.8","5432108.9","1"]]}'
OKX_OPEN_INTEREST = b'{"code":"0","msg":"","data":[{"instType":"SWAP","instId":"BTC-USDT-SWAP","oi":"5000","oiCcy":"50","oiUsd":"3200000","ts":"1597026383085"}]}'
OKX_MARK = b'{"code":"0","msg":"","data":[{"instType":"SWAP","instId":"BTC-USDT-SWAP","markPx":"64000","ts":"1597026383085"}]}'
OKX_FUNDING = b'{"code":"0","msg":"","data":[{"instType":"SWAP","instId":"BTC-USDT-SWAP","fundingRate":"0.0001","fundingTime":"1597027200000","nextFundingTime":"1597056000000"}]}'
OKX_OI_HISTORY = b'{"code":"0","msg":"","data":[["1701417600000","731377.575","7313.77","311888888"]]}'
OKX_TIERS = b'{"code":"0","msg":"","data":[{"uly":"BTC-USDT","instFamily":"BTC-USDT","instId":"","tier":"1","minSz":"0","maxSz":"50000","mmr":"0.004","imr":"0.01","maxLever":"100"}]}'
OKX_LIQUIDATION = '{"arg":{"channel":"liquidation-orders","instType":"SWAP"},"data":[{"details":[{"bkLoss":"0","bkPx":"0.007831","ccy":"","posSide":"short","side":"buy","sz":"13","ts":"1692266434010"}],"instFamily":"IOST-USDT","instId":"IOST-USDT-SWAP","instType":"SWAP","uly":"IOST-USDT"}]}'


def test_okx_candles_keep_confirmed_bars_with_quote_volume() -> None:
    rows = okx.parse_candles(OKX_CANDLES)
    assert rows.tolist()[0][:6] == (1672840800000, 43200.0, 43350.0, 43150.0, 43250.5, 5432108.9)
    assert len(rows) == 1 and math.isnan(rows["taker_buy_usd"][0])


def test_okx_open_interest_is_contracts_times_ct_val_times_mark() -> None:
    snapshot = okx.parse_snapshot(OKX_OPEN_INTEREST, OKX_MARK, OKX_FUNDING, 0.01)
    assert snapshot.open_interest.tolist() == [(1597026383085, 5000 * 0.01 * 64000.0)]
    assert snapshot.meta["funding_rate"] == 0.0001 and snapshot.meta["next_funding_ms"] == 1597056000000


def test_okx_open_interest_history_is_oi_usd() -> None:
    assert okx.parse_open_interest_history(OKX_OI_HISTORY).tolist() == [(1701417600000, 311888888.0)]


def test_okx_position_tiers_in_contracts_become_usd_at_the_mark() -> None:
    assert okx.parse_position_tiers(OKX_TIERS, 0.01, 64000.0) == [tiers.Tier(0.0, 50000 * 640.0, 0.004, 0.0, 100.0)]


def test_okx_liquidation_short_buy_is_a_short_liquidated_in_coins() -> None:
    [(symbol, event)] = okx.parse_liquidations(OKX_LIQUIDATION, {"IOST-USDT-SWAP": 1000.0})
    assert symbol == "IOSTUSDT"
    assert event == (1692266434010, SIDE_SHORT, 0.007831, 13000.0, 0.007831 * 13000.0)
    long_side = OKX_LIQUIDATION.replace('"posSide":"short","side":"buy"', '"posSide":"long","side":"sell"')
    assert okx.parse_liquidations(long_side, {"IOST-USDT-SWAP": 1000.0})[0][1][1] == SIDE_LONG
    assert okx.parse_liquidations("pong", {}) == []
    # Instruments without a known contract size are not ours.
    assert okx.parse_liquidations(OKX_LIQUIDATION, {}) == []


def test_okx_business_errors_on_http_200() -> None:
    with pytest.raises(VenueRejected, match="51001"):
        okx.parse_candles(b'{"code":"51001","msg":"Instrument ID does not exist","data":[]}')
    with pytest.raises(okx.RateCode):
        okx.parse_candles(b'{"code":"50011","msg":"Too Many Requests","data":[]}')


# --- account long/short ratios (formats as each venue documents them) ---------------------------

BINANCE_ACCOUNT_RATIO = b'[{"symbol":"BTCUSDT","longShortRatio":"0.1960","longAccount":"0.6622","shortAccount":"0.3378","timestamp":"1583139600000"},{"symbol":"BTCUSDT","longShortRatio":"1.9559","longAccount":"0.6617","shortAccount":"0.3382","timestamp":"1583139900000"}]'
BYBIT_ACCOUNT_RATIO = b'{"retCode":0,"retMsg":"OK","result":{"list":[{"symbol":"BTCUSDT","buyRatio":"0.5777","sellRatio":"0.4223","timestamp":"1695772800000"}]},"retExtInfo":{},"time":1695785131028}'
OKX_ACCOUNT_RATIO = b'{"code":"0","msg":"","data":[["1701417900000","1.25"],["1701417600000","3"]]}'


def test_account_ratios_become_shares_of_accounts_long_and_short() -> None:
    assert binance.parse_long_short(BINANCE_ACCOUNT_RATIO).tolist() == [(1583139600000, 0.6622, 0.3378), (1583139900000, 0.6617, 0.3382)]
    assert bybit.parse_account_ratio(BYBIT_ACCOUNT_RATIO).tolist() == [(1695772800000, 0.5777, 0.4223)]
    rows = okx.parse_long_short(OKX_ACCOUNT_RATIO)  # the ratio alone: long = r / (1 + r)
    assert rows["ts_ms"].tolist() == [1701417600000, 1701417900000]
    np.testing.assert_allclose(rows["long_account"], [0.75, 1.25 / 2.25])
    np.testing.assert_allclose(rows["long_account"] + rows["short_account"], 1.0)


def test_okx_taker_volume_is_usd_bought_and_sold_per_period() -> None:
    body = b'{"code":"0","msg":"","data":[["1701417900000","200.5","300"],["1701417600000","10","20"]]}'
    assert okx.parse_taker_volume(body).tolist() == [(1701417600000, 20.0, 10.0), (1701417900000, 300.0, 200.5)]
    with pytest.raises(BadPayload):
        okx.parse_taker_volume(body.replace(b'"200.5"', b'"-1"'))


def test_bybit_ticker_gives_the_funding_interval() -> None:
    assert bybit.parse_ticker(BYBIT_TICKERS.replace(b'"fundingIntervalHour":"8"', b'"fundingIntervalHour":"4"')).meta["funding_interval_h"] == 4


# --- malformed input -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("parse", "body"),
    [
        (binance.parse_klines, BINANCE_KLINES[: len(BINANCE_KLINES) // 2]),
        (binance.parse_klines, BINANCE_KLINES.replace(b'"57212.69"', b'{"x":1}')),
        (binance.parse_klines, BINANCE_KLINES.replace(b'"57212.69"', b'"nan"')),
        (binance.parse_klines, BINANCE_KLINES.replace(b'"57196.19"', b'"57400"')),  # low above the close
        (binance.parse_open_interest_history, BINANCE_OI_HIST.replace(b'"1927265695.27131325"', b'"-1"')),
        (bybit.parse_klines, BYBIT_KLINES.replace(b'"4582015.2"', b"null")),
        (bybit.parse_ticker, BYBIT_TICKERS.replace(b'"time":1672376496682', b'"time":"soon"')),
        (okx.parse_open_interest_history, OKX_OI_HISTORY.replace(b"311888888", b"abc")),
        (okx.parse_candles, b"<html><body>502</body></html>"),
        (binance.parse_force_order, BINANCE_FORCE_ORDER.replace('"S":"SELL"', '"S":"HOLD"')),
        (bybit.parse_liquidations, BYBIT_LIQUIDATION.replace('"v":"20000"', '"v":"0"')),
        (bybit.parse_liquidations, '{"topic":"orderbook.1.BTCUSDT","data":[]}'),
        (binance.parse_long_short, BINANCE_ACCOUNT_RATIO.replace(b'"0.6622"', b'"1.6622"')),
        (bybit.parse_account_ratio, BYBIT_ACCOUNT_RATIO.replace(b'"0.5777"', b'"x"')),
        (okx.parse_long_short, OKX_ACCOUNT_RATIO.replace(b'"1.25"', b'"-1"')),
    ],
)
def test_malformed_payloads_are_bad_payloads_never_partial_rows(parse, body) -> None:  # noqa: ANN001
    with pytest.raises(BadPayload):
        parse(body)


def test_okx_instruments_give_contract_values() -> None:
    body = b'{"code":"0","msg":"","data":[{"instType":"SWAP","instId":"BTC-USDT-SWAP","ctVal":"0.01","ctValCcy":"BTC","settleCcy":"USDT"},{"instType":"SWAP","instId":"ETH-USDT-SWAP","ctVal":"0.1","ctValCcy":"ETH","settleCcy":"USDT"}]}'
    assert okx.parse_instruments(body) == {"BTC-USDT-SWAP": 0.01, "ETH-USDT-SWAP": 0.1}
    with pytest.raises(BadPayload):
        okx.parse_instruments(body.replace(b'"0.01"', b'"0"'))
