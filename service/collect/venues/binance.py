"""Binance USDⓈ-M futures: REST ``/fapi``, open-interest history, ``!forceOrder@arr`` liquidations.

Formats: klines are arrays oldest first (index 7 quote volume, 10 taker-buy quote
volume, both USDT); open interest is in coins (× mark price for USD); the
all-market liquidation stream mixes USDⓈ-M (``st == 1``) with COIN-M, whose sizes are
contracts, so only ``st == 1`` is kept; side ``SELL`` means a long was liquidated.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import msgspec
import numpy as np

from engine.models.margin import shipped_binance_table
from service.clock import Clock, Sleep, now_ms
from service.store.rows import SIDE_LONG, SIDE_SHORT
from service.collect.venues import parse
from service.store import tiers
from service.collect.venues.base import MINUTE_MS, ExchangeCollector, LiquidationSink, Snapshot
from service.collect.venues.ws import WsFeed
from service.collect.venues.binance_brackets import default_tiers
from service.collect.venues.errors import BadPayload, VenueError
from service.collect.venues.parse import LiquidationTuple
from service.collect.venues.streams import StreamLimits, chunked
from service.settings import Settings

VENUE = "binance"
MARK_STREAM = "!markPrice@arr@1s"


class Kline(msgspec.Struct, array_like=True):
    open_time: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    close_time: int
    quote_volume: float
    trades: int
    taker_buy_volume: float
    taker_buy_quote_volume: float
    ignore: str | float | None = None


class OpenInterest(msgspec.Struct):
    openInterest: float
    symbol: str
    time: int


class OpenInterestHistRow(msgspec.Struct):
    symbol: str
    sumOpenInterest: float
    sumOpenInterestValue: float
    timestamp: int


class AccountRatioRow(msgspec.Struct):
    longAccount: float
    shortAccount: float
    timestamp: int
    longShortRatio: float | None = None


class PremiumIndex(msgspec.Struct):
    symbol: str
    markPrice: float
    indexPrice: float
    lastFundingRate: float
    nextFundingTime: int
    time: int


class ForceOrderDetail(msgspec.Struct):
    s: str
    S: str
    q: float
    p: float
    ap: float
    X: str
    z: float
    T: int
    l: float | None = None  # noqa: E741 - the venue's field name


class ForceOrder(msgspec.Struct):
    e: str
    E: int
    o: ForceOrderDetail
    st: int | None = None
    ps: str | None = None


class Combined(msgspec.Struct):
    stream: str
    data: ForceOrder


class RiskBracket(msgspec.Struct):
    bracketNotionalFloor: float
    bracketNotionalCap: float
    bracketMaintenanceMarginRate: float
    cumFastMaintenanceAmount: float
    maxOpenPosLeverage: float


class SymbolBrackets(msgspec.Struct):
    symbol: str
    riskBrackets: list[RiskBracket]


class BracketsData(msgspec.Struct):
    brackets: list[SymbolBrackets]


class BracketsResponse(msgspec.Struct):
    data: BracketsData


class ListedSymbol(msgspec.Struct):
    symbol: str
    contractType: str = ""
    status: str = ""
    quoteAsset: str = ""
    marginAsset: str = ""


class ExchangeInfo(msgspec.Struct):
    symbols: list[ListedSymbol]


class Ticker24h(msgspec.Struct):
    symbol: str
    quoteVolume: float


class StreamKline(msgspec.Struct):
    t: int
    o: float
    h: float
    l: float  # noqa: E741 - the venue's field name
    c: float
    q: float
    Q: float
    x: bool


class KlineEvent(msgspec.Struct):
    e: str
    s: str
    k: StreamKline


class StreamError(msgspec.Struct):
    code: int
    msg: str


class KlineMessage(msgspec.Struct):
    stream: str | None = None
    data: KlineEvent | None = None
    id: int | None = None
    error: StreamError | None = None


class MarkPriceUpdate(msgspec.Struct):
    e: str
    E: int
    s: str
    p: float
    i: float
    r: float
    T: int


class MarkPrices(msgspec.Struct):
    stream: str | None = None
    data: list[MarkPriceUpdate] | None = None
    id: int | None = None


_mark_prices = msgspec.json.Decoder(MarkPrices, strict=False)
_klines = msgspec.json.Decoder(list[Kline], strict=False)
_exchange_info = msgspec.json.Decoder(ExchangeInfo, strict=False)
_tickers = msgspec.json.Decoder(list[Ticker24h], strict=False)
_kline_message = msgspec.json.Decoder(KlineMessage, strict=False)
_open_interest = msgspec.json.Decoder(OpenInterest, strict=False)
_oi_hist = msgspec.json.Decoder(list[OpenInterestHistRow], strict=False)
_premium = msgspec.json.Decoder(PremiumIndex, strict=False)
_account_ratio = msgspec.json.Decoder(list[AccountRatioRow], strict=False)
_combined = msgspec.json.Decoder(Combined, strict=False)
_force_order = msgspec.json.Decoder(ForceOrder, strict=False)
_brackets = msgspec.json.Decoder(BracketsResponse, strict=False)


def kline_weight(limit: int) -> int:
    """Request weight of a klines call by its ``limit``."""
    if limit < 100:
        return 1
    if limit < 500:
        return 2
    if limit <= 1000:
        return 5
    return 10


def parse_klines(body: bytes) -> np.ndarray:
    """Candle rows from ``/fapi/v1/klines``: USD volume is the quote volume, taker buy its quote part."""
    page = parse.decode(_klines, body, VENUE, "klines")
    return parse.candles(
        VENUE,
        "klines",
        [k.open_time for k in page],
        [(k.open, k.high, k.low, k.close) for k in page],
        [k.quote_volume for k in page],
        [k.taker_buy_quote_volume for k in page],
    )


def parse_listing(info_body: bytes, tickers_body: bytes) -> dict[str, float]:
    """USDT-margined perpetuals trading now (``exchangeInfo``) → 24h quote volume (``ticker/24hr``)."""
    info = parse.decode(_exchange_info, info_body, VENUE, "exchangeInfo")
    volumes = {t.symbol: t.quoteVolume for t in parse.decode(_tickers, tickers_body, VENUE, "ticker/24hr")}
    return {
        s.symbol: volumes.get(s.symbol, 0.0)
        for s in info.symbols
        if s.contractType == "PERPETUAL" and s.status == "TRADING" and s.quoteAsset == "USDT" and s.marginAsset == "USDT"
    }


def parse_kline_message(text: str | bytes) -> list[tuple[str, parse.CandleTuple]]:
    """The closed bar (``x: true``) of one combined-stream kline message; bars in progress and acks give none."""
    message = parse.decode(_kline_message, text, VENUE, "ws:kline")
    if message.error is not None:
        raise BadPayload(VENUE, "ws:kline", f"refused: {message.error.code} {message.error.msg}")
    if message.data is None:
        if message.id is not None:
            return []  # {"result": null, "id": n}: a subscription done
        raise BadPayload(VENUE, "ws:kline", "unexpected message")
    event = message.data
    if event.e != "kline":
        raise BadPayload(VENUE, "ws:kline", f"unexpected event {event.e!r}")
    k = event.k
    if not k.x:
        return []
    return [(event.s, parse.candle(VENUE, "ws:kline", k.t, k.o, k.h, k.l, k.c, k.q, k.Q))]


def parse_open_interest_history(body: bytes) -> np.ndarray:
    """Rows from ``openInterestHist``: ``sumOpenInterestValue`` (USDT) at ``timestamp`` (the period's end)."""
    page = parse.decode(_oi_hist, body, VENUE, "openInterestHist")
    return parse.open_interest(VENUE, "openInterestHist", [r.timestamp for r in page], [r.sumOpenInterestValue for r in page])


def parse_long_short(body: bytes) -> np.ndarray:
    """Rows from ``globalLongShortAccountRatio``: ``longAccount`` / ``shortAccount`` (shares, 0..1) at ``timestamp``."""
    page = parse.decode(_account_ratio, body, VENUE, "globalLongShortAccountRatio")
    return parse.long_short(VENUE, "globalLongShortAccountRatio", [r.timestamp for r in page], [r.longAccount for r in page], [r.shortAccount for r in page])


def parse_snapshot(open_interest_body: bytes, premium_body: bytes) -> Snapshot:
    """Open interest (coins × mark price) and mark/funding from ``openInterest`` + ``premiumIndex``."""
    premium = parse.decode(_premium, premium_body, VENUE, "premiumIndex")
    mark = parse.number(VENUE, "premiumIndex", lambda: premium.markPrice, "markPrice")
    return snapshot_at_mark(open_interest_body, _mark_meta(mark, premium.indexPrice, premium.lastFundingRate, premium.nextFundingTime, premium.time))


def snapshot_at_mark(open_interest_body: bytes, meta: dict[str, str | int | float]) -> Snapshot:
    """Open interest (coins × the mark price in ``meta``) from ``openInterest``, with ``meta``."""
    current = parse.decode(_open_interest, open_interest_body, VENUE, "openInterest")
    oi = parse.open_interest(VENUE, "openInterest", [current.time], [current.openInterest * float(meta["mark_price"])])
    return Snapshot(oi, dict(meta))


def _mark_meta(mark: float, index: float, funding: float, next_funding_ms: int, at_ms: int) -> dict[str, str | int | float]:
    return {"mark_price": mark, "index_price": index, "funding_rate": funding, "next_funding_ms": next_funding_ms, "state_ms": at_ms}


def parse_mark_prices(text: str | bytes) -> dict[str, dict[str, str | int | float]]:
    """Mark, index, funding per symbol from one ``!markPrice@arr`` push (combined-stream wrapped)."""
    message = parse.decode(_mark_prices, text, VENUE, "ws:markPrice")
    if message.data is None:
        if message.id is not None:
            return {}
        raise BadPayload(VENUE, "ws:markPrice", "unexpected message")
    out: dict[str, dict[str, str | int | float]] = {}
    for u in message.data:
        mark = parse.number(VENUE, "ws:markPrice", lambda u=u: u.p, "p")
        out[u.s] = _mark_meta(mark, u.i, u.r, u.T, u.E)
    return out


def parse_force_order(text: str | bytes) -> list[tuple[str, LiquidationTuple]]:
    """Events of one ``forceOrder`` message (combined-stream wrapped or bare); COIN-M ignored."""
    try:
        event = _combined.decode(text).data
    except (msgspec.DecodeError, msgspec.ValidationError):
        event = parse.decode(_force_order, text, VENUE, "ws:forceOrder")
    if event.e != "forceOrder":
        return []
    if event.st is not None and event.st != 1:
        return []
    order = event.o
    if order.S not in ("SELL", "BUY"):
        raise BadPayload(VENUE, "ws:forceOrder", f"unknown side {order.S!r}")
    side = SIDE_LONG if order.S == "SELL" else SIDE_SHORT
    price = order.ap if order.ap > 0 else order.p
    quantity = order.z if order.z > 0 else order.q
    return [(order.s, parse.liquidation(VENUE, "ws:forceOrder", order.T, side, price, quantity))]


def parse_brackets(body: bytes) -> dict[str, list[tiers.Tier]]:
    """Tiers per symbol from the keyless web brackets endpoint."""
    response = parse.decode(_brackets, body, VENUE, "brackets")
    out: dict[str, list[tiers.Tier]] = {}
    for entry in response.data.brackets:
        ordered = sorted(entry.riskBrackets, key=lambda b: b.bracketNotionalFloor)
        out[entry.symbol] = [
            tiers.Tier(b.bracketNotionalFloor, b.bracketNotionalCap, b.bracketMaintenanceMarginRate, b.cumFastMaintenanceAmount, b.maxOpenPosLeverage)
            for b in ordered
        ]
    return out


class BinanceCollector(ExchangeCollector):
    exchange = VENUE
    candle_page_bars = 1500
    oi_history_page_rows = 500
    long_short_page_rows = 500
    # 2400 weight per minute per IP.
    rate_limit = (400.0, 40.0)
    snapshot_weight = 2.0  # openInterest 1 + premiumIndex 1 (0 while mark prices stream)
    mark_fresh_ms = 10_000
    # 1024 streams per connection; 10 messages per second from the client (pongs included).
    kline_limits = StreamLimits(topics_per_connection=1024, topics_per_message=200, message_interval_s=0.25)
    forbidden_backoff_s = 120.0  # the web application firewall

    def __init__(self, settings: Settings, symbols: list[str] | None = None, *, clock: Clock = now_ms, sleep: Sleep = asyncio.sleep) -> None:
        super().__init__(settings, symbols, clock=clock, sleep=sleep)
        # openInterestHist has its own limit: 1000 requests per 5 minutes per IP.
        self.history_budget = self.budget(50, 1000 / 300)
        self._brackets: dict[str, list[tiers.Tier]] = {}
        self._brackets_at_ms = 0
        self._request_id = 0
        # Mark, index and funding per symbol as streamed; used while fresher than mark_fresh_ms.
        self.marks: dict[str, dict[str, str | int | float]] = {}
        self._mark_feed: WsFeed | None = None
        self._marks_arrived = asyncio.Event()

    @staticmethod
    def rest_url(settings: Settings) -> str:
        return settings.binance_rest_url

    async def fetch_candles(self, symbol: str, start_ms: int, end_ms: int, now_ms: int) -> np.ndarray:
        limit = max(1, min(self.candle_page_bars, (end_ms - start_ms) // MINUTE_MS))
        params = {"symbol": symbol, "interval": "1m", "startTime": start_ms, "endTime": end_ms - 1, "limit": limit}
        return parse_klines(await self.http.get("/fapi/v1/klines", params, weight=kline_weight(limit)))

    async def fetch_open_interest_history(self, symbol: str, start_ms: int, end_ms: int, candles: np.ndarray) -> np.ndarray:
        await self.history_budget.acquire("openInterestHist")
        params = {"symbol": symbol, "period": "5m", "startTime": start_ms, "endTime": end_ms - 1, "limit": self.oi_history_page_rows}
        return parse_open_interest_history(await self.http.get("/futures/data/openInterestHist", params))

    async def fetch_long_short(self, symbol: str, start_ms: int, end_ms: int) -> np.ndarray:
        await self.history_budget.acquire("globalLongShortAccountRatio")  # the same 1000 per 5 minutes
        params = {"symbol": symbol, "period": "5m", "startTime": start_ms, "endTime": end_ms - 1, "limit": self.long_short_page_rows}
        return parse_long_short(await self.http.get("/futures/data/globalLongShortAccountRatio", params))

    async def fetch_snapshot(self, symbol: str) -> Snapshot:
        open_interest = await self.http.get("/fapi/v1/openInterest", {"symbol": symbol})
        streamed = self.marks.get(symbol)
        if streamed is not None and self.clock() - int(streamed["state_ms"]) <= self.mark_fresh_ms:
            return snapshot_at_mark(open_interest, streamed)
        premium = await self.http.get("/fapi/v1/premiumIndex", {"symbol": symbol})
        return parse_snapshot(open_interest, premium)

    def state_weight(self) -> float:
        """openInterest, plus premiumIndex unless mark prices stream in."""
        streaming = self._mark_feed is not None and self._mark_feed.connected.is_set()
        return self.snapshot_weight - 1 if streaming else self.snapshot_weight

    async def start(self, sink: LiquidationSink | None = None) -> None:
        """The liquidation stream, and with kline streams on, every symbol's mark price (``!markPrice@arr@1s``)."""
        await super().start(sink)
        if self.settings.kline_streams:
            url = f"{self.settings.binance_kline_ws_url}?streams={MARK_STREAM}"
            self._mark_feed = WsFeed(VENUE, url, [], None, self.handle_mark_message, self.http.session, self.ws_policy())
            self._mark_feed.start()

    async def close(self) -> None:
        if self._mark_feed is not None:
            await self._mark_feed.stop()
        await super().close()

    def handle_mark_message(self, text: str) -> None:
        try:
            self.marks.update(parse_mark_prices(text))
        except BadPayload as exc:
            self._count(exc)
            return
        self._marks_arrived.set()

    async def wait_marks(self, predicate: Callable[[], bool]) -> None:
        """Wait until ``predicate()`` holds, checked after every mark-price push (tests, tools)."""
        while not predicate():
            self._marks_arrived.clear()
            await self._marks_arrived.wait()

    async def fetch_tiers(self, symbol: str) -> dict[str, str | int | float]:
        """Brackets from the keyless web endpoint (one call for all symbols), else the shipped table."""
        source = "binance web brackets"
        now = self.clock()
        if now - self._brackets_at_ms >= self.tiers_refresh_ms / 2:
            self._brackets_at_ms = now
            try:
                body = await self.http.post_json(
                    "/bapi/futures/v1/friendly/future/common/brackets", b"{}", url=self.settings.binance_web_url
                )
                self._brackets = parse_brackets(body)
            except VenueError as exc:
                self._count(exc)
        found = self._brackets.get(symbol)
        if not found:
            found, source = default_tiers(symbol), shipped_binance_table(symbol).source
        return {tiers.META_FIELD: tiers.encode(found), tiers.META_SOURCE_FIELD: source}

    async def fetch_listing(self) -> dict[str, float]:
        info = await self.http.get("/fapi/v1/exchangeInfo", {}, weight=1)
        tickers = await self.http.get("/fapi/v1/ticker/24hr", {}, weight=40)
        return parse_listing(info, tickers)

    def kline_url(self) -> str:
        return self.settings.binance_kline_ws_url

    def kline_topics(self, symbol: str) -> list[str]:
        return [f"{symbol.lower()}@kline_1m"]

    def kline_frames(self, topics: list[str], subscribe: bool) -> list[str]:
        method = "SUBSCRIBE" if subscribe else "UNSUBSCRIBE"
        size = self.kline_limits.topics_per_message
        frames = []
        for part in chunked(topics, size):
            self._request_id += 1
            frames.append(json.dumps({"method": method, "params": part, "id": self._request_id}))
        return frames

    def parse_kline_message(self, text: str) -> list[tuple[str, parse.CandleTuple]]:
        return parse_kline_message(text)

    def stream(self) -> tuple[str, list[str], str | None]:
        # Binance pings us; protocol-level pongs are automatic.
        return self.settings.binance_ws_url, [], None

    def parse_stream_message(self, text: str) -> list[tuple[str, LiquidationTuple]]:
        return parse_force_order(text)
