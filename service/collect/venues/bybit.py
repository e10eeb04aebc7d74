"""Bybit v5 linear: REST ``/v5/market``, ``allLiquidation.{symbol}`` liquidations.

Formats: every REST answer is an envelope with ``retCode`` (0 = fine, 10006 = too many
visits); klines are newest first with no taker split (taker-buy volume is NaN),
USD volume is ``turnover``; open interest is reported for both sides summed, so the
``singleOpenInterest*`` fields (one side) are used; liquidation side ``Buy`` means a
long position was liquidated.
"""

from __future__ import annotations

import json
from typing import Generic, TypeVar

import msgspec
import numpy as np

from service.store.rows import SIDE_LONG, SIDE_SHORT
from service.collect.venues import parse
from service.store import tiers
from service.collect.venues.base import MINUTE_MS, ExchangeCollector, Snapshot
from service.collect.venues.errors import BadPayload, VenueRejected
from service.collect.venues.parse import LiquidationTuple
from service.collect.venues.streams import StreamLimits, SymbolStreams, chunked
from service.collect.venues.ws import WsFeed
from service.settings import Settings

VENUE = "bybit"
T = TypeVar("T")

RATE_LIMIT_CODES = {10006, 10018}


class Envelope(msgspec.Struct, Generic[T]):
    retCode: int
    retMsg: str
    result: T | None = None
    time: int | None = None


class KlineRow(msgspec.Struct, array_like=True):
    start: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    turnover: float


class KlineResult(msgspec.Struct):
    items: list[KlineRow] = msgspec.field(name="list")


class OpenInterestRow(msgspec.Struct):
    openInterest: float
    timestamp: int
    singleOpenInterest: float | None = None


class OpenInterestResult(msgspec.Struct):
    items: list[OpenInterestRow] = msgspec.field(name="list")


class AccountRatioRow(msgspec.Struct):
    buyRatio: float
    sellRatio: float
    timestamp: int


class AccountRatioResult(msgspec.Struct):
    items: list[AccountRatioRow] = msgspec.field(name="list")


class Ticker(msgspec.Struct):
    symbol: str
    markPrice: float
    indexPrice: float
    fundingRate: float
    nextFundingTime: int
    openInterestValue: float
    fundingIntervalHour: float | None = None
    singleOpenInterestValue: float | None = None


class TickerResult(msgspec.Struct):
    items: list[Ticker] = msgspec.field(name="list")


class RiskLimit(msgspec.Struct):
    riskLimitValue: float
    maintenanceMargin: float
    maxLeverage: float
    mmDeduction: str | float | None = None


class RiskLimitResult(msgspec.Struct):
    items: list[RiskLimit] = msgspec.field(name="list")


class Liquidation(msgspec.Struct):
    T: int
    s: str
    S: str
    v: float
    p: float


class StreamMessage(msgspec.Struct, Generic[T]):
    topic: str | None = None
    data: list[T] | None = None
    op: str | None = None
    success: bool | None = None
    ret_msg: str | None = None


class Instrument(msgspec.Struct):
    symbol: str
    contractType: str = ""
    status: str = ""
    quoteCoin: str = ""
    settleCoin: str = ""


class InstrumentsResult(msgspec.Struct):
    items: list[Instrument] = msgspec.field(name="list")
    nextPageCursor: str = ""


class TickerVolume(msgspec.Struct):
    symbol: str
    turnover24h: float = 0.0


class TickerVolumeResult(msgspec.Struct):
    items: list[TickerVolume] = msgspec.field(name="list")


class StreamBar(msgspec.Struct):
    start: int
    open: float
    high: float
    low: float
    close: float
    turnover: float
    confirm: bool


_klines = msgspec.json.Decoder(Envelope[KlineResult], strict=False)
_instruments = msgspec.json.Decoder(Envelope[InstrumentsResult], strict=False)
_ticker_volumes = msgspec.json.Decoder(Envelope[TickerVolumeResult], strict=False)
_kline_message = msgspec.json.Decoder(StreamMessage[StreamBar], strict=False)
_open_interest = msgspec.json.Decoder(Envelope[OpenInterestResult], strict=False)
_tickers = msgspec.json.Decoder(Envelope[TickerResult], strict=False)
_account_ratio = msgspec.json.Decoder(Envelope[AccountRatioResult], strict=False)
_risk_limits = msgspec.json.Decoder(Envelope[RiskLimitResult], strict=False)
_stream = msgspec.json.Decoder(StreamMessage[Liquidation], strict=False)


class Status(msgspec.Struct):
    retCode: int
    retMsg: str = ""


_status = msgspec.json.Decoder(Status, strict=False)


def _envelope(decoder: msgspec.json.Decoder[Envelope[T]], body: bytes, endpoint: str) -> Envelope[T]:
    """The whole answer once its ``retCode`` says it is one (error answers carry other shapes)."""
    status = parse.decode(_status, body, VENUE, endpoint)
    if status.retCode in RATE_LIMIT_CODES:
        raise _RateCode(endpoint, status.retMsg)
    if status.retCode != 0:
        raise VenueRejected(VENUE, endpoint, f"retCode {status.retCode}: {status.retMsg}")
    envelope = parse.decode(decoder, body, VENUE, endpoint)
    if envelope.result is None:
        raise BadPayload(VENUE, endpoint, "no result")
    return envelope


def _result(decoder: msgspec.json.Decoder[Envelope[T]], body: bytes, endpoint: str) -> T:
    return _envelope(decoder, body, endpoint).result  # type: ignore[return-value]


class _RateCode(Exception):
    """retCode 10006: the caller turns it into a back-off of the venue."""

    def __init__(self, endpoint: str, message: str) -> None:
        super().__init__(message)
        self.endpoint = endpoint


def parse_klines(body: bytes) -> np.ndarray:
    """Candle rows from ``/v5/market/kline`` (newest first there; oldest first here)."""
    page = _result(_klines, body, "kline").items
    return parse.candles(VENUE, "kline", [k.start for k in page], [(k.open, k.high, k.low, k.close) for k in page], [k.turnover for k in page], None)


def parse_open_interest(body: bytes, candles: np.ndarray) -> np.ndarray:
    """One-side open interest in coins × the close of the 1m bar ending nearest the observation (±5 min)."""
    page = _result(_open_interest, body, "open-interest").items
    ts = np.array([r.timestamp for r in page], dtype=np.int64)
    coins = np.array([r.singleOpenInterest if r.singleOpenInterest is not None else r.openInterest / 2 for r in page], dtype=np.float64)
    price = price_at(candles, ts)
    known = np.isfinite(price)
    return parse.open_interest(VENUE, "open-interest", ts[known], coins[known] * price[known])


def price_at(candles: np.ndarray, ts_ms: np.ndarray, tolerance_ms: int = 5 * MINUTE_MS) -> np.ndarray:
    """Price at each observation time: the close of the 1m bar ending then, else the open of the
    bar starting then, else the close nearest in time within ``tolerance_ms``; NaN beyond."""
    out = np.full(len(ts_ms), np.nan)
    if not len(candles) or not len(ts_ms):
        return out
    last = len(candles) - 1
    close_ts = candles["ts_ms"] + MINUTE_MS
    right = np.clip(np.searchsorted(close_ts, ts_ms), 0, last)
    left = np.clip(right - 1, 0, last)
    nearest = np.where(np.abs(close_ts[left] - ts_ms) <= np.abs(close_ts[right] - ts_ms), left, right)
    near = np.abs(close_ts[nearest] - ts_ms) <= tolerance_ms
    out[near] = candles["close"][nearest[near]]
    starting = np.clip(np.searchsorted(candles["ts_ms"], ts_ms), 0, last)
    opens = candles["ts_ms"][starting] == ts_ms
    out[opens] = candles["open"][starting[opens]]
    ending = close_ts[right] == ts_ms
    out[ending] = candles["close"][right[ending]]
    return out


def parse_ticker(body: bytes) -> Snapshot:
    """Open interest (one side, USD), mark price and funding from ``/v5/market/tickers``."""
    envelope = _envelope(_tickers, body, "tickers")
    listing = envelope.result.items  # type: ignore[union-attr]
    if len(listing) != 1 or envelope.time is None:
        raise BadPayload(VENUE, "tickers", f"expected one ticker and a time, got {len(listing)}")
    ticker = listing[0]
    value = ticker.singleOpenInterestValue if ticker.singleOpenInterestValue is not None else ticker.openInterestValue / 2
    mark = parse.number(VENUE, "tickers", lambda: ticker.markPrice, "markPrice")
    oi = parse.open_interest(VENUE, "tickers", [envelope.time], [value])
    meta: dict[str, str | int | float] = {
        "mark_price": mark,
        "index_price": ticker.indexPrice,
        "funding_rate": ticker.fundingRate,
        "next_funding_ms": ticker.nextFundingTime,
        "state_ms": envelope.time,
    }
    if ticker.fundingIntervalHour is not None:
        meta["funding_interval_h"] = ticker.fundingIntervalHour
    return Snapshot(oi, meta)


def parse_account_ratio(body: bytes) -> np.ndarray:
    """Rows from ``/v5/market/account-ratio`` (newest first): ``buyRatio`` / ``sellRatio``, the shares of accounts long / short."""
    page = _result(_account_ratio, body, "account-ratio").items
    return parse.long_short(VENUE, "account-ratio", [r.timestamp for r in page], [r.buyRatio for r in page], [r.sellRatio for r in page])


def parse_risk_limits(body: bytes) -> list[tiers.Tier]:
    """Tiers from ``/v5/market/risk-limit``; an empty ``mmDeduction`` is derived (margin continuous)."""
    limits = _result(_risk_limits, body, "risk-limit").items
    if not limits:
        raise BadPayload(VENUE, "risk-limit", "no tiers")
    ordered = sorted(limits, key=lambda r: r.riskLimitValue)
    floors = [0.0, *(r.riskLimitValue for r in ordered[:-1])]
    bands = [(floor, r.riskLimitValue, r.maintenanceMargin, r.maxLeverage) for floor, r in zip(floors, ordered, strict=True)]
    return tiers.from_bands(bands, [None if r.mmDeduction in (None, "") else float(r.mmDeduction) for r in ordered])


def parse_instruments(body: bytes) -> tuple[set[str], str]:
    """USDT-settled linear perpetuals trading now on one page of ``instruments-info``, and the next cursor."""
    result = _result(_instruments, body, "instruments-info")
    symbols = {
        i.symbol
        for i in result.items
        if i.contractType == "LinearPerpetual" and i.status == "Trading" and i.quoteCoin == "USDT" and i.settleCoin == "USDT"
    }
    return symbols, result.nextPageCursor


def parse_ticker_volumes(body: bytes) -> dict[str, float]:
    """24h turnover (USDT) per symbol from ``/v5/market/tickers?category=linear``."""
    return {t.symbol: t.turnover24h for t in _result(_ticker_volumes, body, "tickers").items}


def parse_kline_message(text: str | bytes) -> list[tuple[str, parse.CandleTuple]]:
    """Confirmed bars (``confirm: true``) of one ``kline.1.{symbol}`` push; pongs and acks give none."""
    pushed = _push(_kline_message, text, "kline.1.")
    if pushed is None:
        return []
    symbol, bars = pushed
    return [(symbol, parse.candle(VENUE, "ws:kline", b.start, b.open, b.high, b.low, b.close, b.turnover, None)) for b in bars if b.confirm]


def _push(decoder: msgspec.json.Decoder[StreamMessage[T]], text: str | bytes, prefix: str) -> tuple[str, list[T]] | None:
    """The symbol and data of one push on a ``{prefix}{symbol}`` topic; None for pongs and acks."""
    endpoint = "ws:" + prefix.split(".")[0]
    message = parse.decode(decoder, text, VENUE, endpoint)
    if message.op is not None:
        if message.success is False:
            raise BadPayload(VENUE, f"ws:{message.op}", f"refused: {message.ret_msg}")
        return None
    if message.topic is None or not message.topic.startswith(prefix) or message.data is None:
        raise BadPayload(VENUE, endpoint, f"unexpected message on topic {message.topic!r}")
    return message.topic.removeprefix(prefix), message.data


def parse_liquidations(text: str | bytes) -> list[tuple[str, LiquidationTuple]]:
    """Events of one ``allLiquidation`` push; pongs and subscription acks give none."""
    pushed = _push(_stream, text, "allLiquidation.")
    if pushed is None:
        return []
    out: list[tuple[str, LiquidationTuple]] = []
    for item in pushed[1]:
        if item.S not in ("Buy", "Sell"):
            raise BadPayload(VENUE, "ws:allLiquidation", f"unknown side {item.S!r}")
        side = SIDE_LONG if item.S == "Buy" else SIDE_SHORT
        out.append((item.s, parse.liquidation(VENUE, "ws:allLiquidation", item.T, side, item.p, item.v)))
    return out


class BybitCollector(ExchangeCollector):
    exchange = VENUE
    candle_page_bars = 1000
    oi_history_page_rows = 200
    long_short_page_rows = 500
    # 600 requests per 5 s per IP; a breach is a 10-minute 403.
    rate_limit = (100.0, 120.0)
    forbidden_backoff_s = 600.0
    # Pause after a retCode rate limit (10006), seconds.
    rate_code_backoff_s = 10.0
    # 10 args per subscribe message; liqmap keeps 200 topics on one connection.
    kline_limits = StreamLimits(topics_per_connection=200, topics_per_message=10, message_interval_s=0.05)
    kline_ping = json.dumps({"op": "ping"})
    # Instruments per page of instruments-info (its largest).
    instruments_page = 1000
    _liquidation_streams: SymbolStreams | None = None

    async def fetch_listing(self) -> dict[str, float]:
        symbols: set[str] = set()
        cursor = ""
        for _ in range(50):
            params: dict[str, str | int] = {"limit": self.instruments_page}
            if cursor:
                params["cursor"] = cursor
            page, cursor = self._checked("instruments-info", parse_instruments, await self._get("/v5/market/instruments-info", params))
            symbols |= page
            if not cursor:
                break
        volumes = self._checked("tickers", parse_ticker_volumes, await self._get("/v5/market/tickers", {}))
        return {symbol: volumes.get(symbol, 0.0) for symbol in symbols}

    def kline_url(self) -> str:
        return self.settings.bybit_ws_url

    def kline_topics(self, symbol: str) -> list[str]:
        return [f"kline.1.{symbol}"]

    def kline_frames(self, topics: list[str], subscribe: bool) -> list[str]:
        return _frames(topics, "subscribe" if subscribe else "unsubscribe", self.kline_limits.topics_per_message)

    def parse_kline_message(self, text: str) -> list[tuple[str, parse.CandleTuple]]:
        return parse_kline_message(text)

    def open_liquidation_stream(self) -> None:
        """``allLiquidation.{symbol}`` of every market, packed on connections like the klines."""
        self._liquidation_streams = SymbolStreams(
            VENUE,
            self.settings.bybit_ws_url,
            self.kline_limits,
            lambda symbol: [f"allLiquidation.{symbol}"],
            self.kline_frames,
            self.kline_ping,
            self.handle_stream_message,
            self.http.session,
            self.ws_policy(),
        )
        self._liquidation_streams.set_symbols(self._symbols)

    def markets_changed(self, added: list[str], removed: list[str]) -> None:
        """The liquidation streams follow the market list: new markets subscribed, gone ones dropped."""
        if self._liquidation_streams is not None:
            self._liquidation_streams.set_symbols(self._symbols)

    @property
    def feed(self) -> WsFeed | None:
        """The first liquidation connection."""
        streams = self._liquidation_streams
        return streams.connections[0].feed if streams is not None and streams.connections else None

    async def close(self) -> None:
        if self._liquidation_streams is not None:
            await self._liquidation_streams.stop()
        await super().close()

    @staticmethod
    def rest_url(settings: Settings) -> str:
        return settings.bybit_rest_url

    async def _get(self, endpoint: str, params: dict[str, str | int]) -> bytes:
        return await self.http.get(endpoint, {"category": "linear", **params})

    def _checked(self, endpoint: str, parse, *args):  # noqa: ANN001, ANN202
        try:
            return parse(*args)
        except _RateCode as exc:
            raise self.http.block(exc.endpoint, self.rate_code_backoff_s, f"retCode rate limit: {exc}") from None

    async def fetch_candles(self, symbol: str, start_ms: int, end_ms: int, now_ms: int) -> np.ndarray:
        limit = max(1, min(self.candle_page_bars, (end_ms - start_ms) // MINUTE_MS))
        body = await self._get("/v5/market/kline", {"symbol": symbol, "interval": "1", "start": start_ms, "end": end_ms - 1, "limit": limit})
        return self._checked("kline", parse_klines, body)

    async def fetch_open_interest_history(self, symbol: str, start_ms: int, end_ms: int, candles: np.ndarray) -> np.ndarray:
        params = {"symbol": symbol, "intervalTime": "5min", "startTime": start_ms, "endTime": end_ms - 1, "limit": self.oi_history_page_rows}
        body = await self._get("/v5/market/open-interest", params)
        return self._checked("open-interest", parse_open_interest, body, candles)

    async def fetch_long_short(self, symbol: str, start_ms: int, end_ms: int) -> np.ndarray:
        params = {"symbol": symbol, "period": "5min", "startTime": start_ms, "endTime": end_ms - 1, "limit": self.long_short_page_rows}
        return self._checked("account-ratio", parse_account_ratio, await self._get("/v5/market/account-ratio", params))

    async def fetch_snapshot(self, symbol: str) -> Snapshot:
        return self._checked("tickers", parse_ticker, await self._get("/v5/market/tickers", {"symbol": symbol}))

    async def fetch_tiers(self, symbol: str) -> dict[str, str | int | float]:
        found = self._checked("risk-limit", parse_risk_limits, await self._get("/v5/market/risk-limit", {"symbol": symbol}))
        return {tiers.META_FIELD: tiers.encode(found), tiers.META_SOURCE_FIELD: "bybit risk-limit"}

    def stream(self) -> tuple[str, list[str], str | None]:
        # At most 10 topics per subscribe request.
        frames = _frames([f"allLiquidation.{symbol}" for symbol in self._symbols], "subscribe", 10)
        return self.settings.bybit_ws_url, frames, json.dumps({"op": "ping"})

    def parse_stream_message(self, text: str) -> list[tuple[str, LiquidationTuple]]:
        return parse_liquidations(text)


def _frames(topics: list[str], op: str, size: int) -> list[str]:
    return [json.dumps({"op": op, "args": part}) for part in chunked(topics, size)]
