"""OKX v5 swaps: REST ``/api/v5``, ``liquidation-orders`` liquidations.

Formats: envelopes ``{"code":"0","msg":"","data":[...]}`` with business errors on
HTTP 200 (50011 = rate limit, 50013 = busy, 51001 = no such instrument); candles are
newest first with a ``confirm`` flag, USD volume is ``volCcyQuote``, no taker split;
sizes are contracts, worth ``ctVal`` coins each (from ``/public/instruments``);
liquidation messages come out of time order, and ``posSide`` tells which side was
liquidated (``short`` + ``buy`` = a short was liquidated).
"""

from __future__ import annotations

import asyncio
import json
from typing import Generic, TypeVar

import msgspec
import numpy as np

from service.clock import Clock, Sleep, now_ms
from service.store.rows import SIDE_LONG, SIDE_SHORT
from service.collect.venues import parse
from service.store import tiers
from service.collect.venues.base import MINUTE_MS, ExchangeCollector, Snapshot
from service.collect.venues.errors import BadPayload, VenueRejected, VenueUnavailable
from service.collect.venues.parse import LiquidationTuple
from service.collect.venues.streams import StreamLimits, chunked
from service.markets import from_okx_instrument, okx_family, okx_instrument
from service.settings import Settings

VENUE = "okx"
T = TypeVar("T")

RATE_LIMIT_CODE = "50011"
BUSY_CODE = "50013"
# /market/candles keeps the newest 1,440 bars; older ones come from /market/history-candles.
RECENT_CANDLES_MS = 1_400 * MINUTE_MS


class Envelope(msgspec.Struct, Generic[T]):
    code: str
    msg: str = ""
    data: list[T] = []


class Candle(msgspec.Struct, array_like=True):
    ts: int
    open: float
    high: float
    low: float
    close: float
    volume_contracts: float
    volume_coins: float
    volume_quote: float
    confirm: int


class OpenInterestHistRow(msgspec.Struct, array_like=True):
    ts: int
    oi: float
    oi_coins: float
    oi_usd: float


class AccountRatioRow(msgspec.Struct, array_like=True):
    ts: int
    ratio: float


class TakerVolumeRow(msgspec.Struct, array_like=True):
    ts: int
    sell: float
    buy: float


class OpenInterest(msgspec.Struct):
    instId: str
    oi: float
    ts: int
    oiUsd: float | None = None


class MarkPrice(msgspec.Struct):
    instId: str
    markPx: float
    ts: int


class FundingRate(msgspec.Struct):
    instId: str
    fundingRate: float
    nextFundingTime: int | None = None
    fundingTime: int | None = None


class PositionTier(msgspec.Struct):
    tier: int
    minSz: float
    maxSz: float
    mmr: float
    maxLever: float


class Instrument(msgspec.Struct):
    instId: str
    ctVal: float
    settleCcy: str = ""
    ctType: str = ""
    state: str = ""


class TickerVolume(msgspec.Struct):
    instId: str
    last: float
    volCcy24h: float


class Detail(msgspec.Struct):
    bkPx: float
    posSide: str
    side: str
    sz: float
    ts: int


class LiquidationItem(msgspec.Struct):
    instId: str
    details: list[Detail]


class ChannelArg(msgspec.Struct):
    channel: str
    instId: str = ""


class StreamMessage(msgspec.Struct, Generic[T]):
    arg: ChannelArg | None = None
    data: list[T] | None = None
    event: str | None = None
    code: str | None = None
    msg: str | None = None


def _decoder(kind: type) -> msgspec.json.Decoder:
    return msgspec.json.Decoder(Envelope[kind], strict=False)  # type: ignore[valid-type]


_candles = _decoder(Candle)
_oi_hist = _decoder(OpenInterestHistRow)
_account_ratio = _decoder(AccountRatioRow)
_taker_volume = _decoder(TakerVolumeRow)
_open_interest = _decoder(OpenInterest)
_mark = _decoder(MarkPrice)
_funding = _decoder(FundingRate)
_tiers = _decoder(PositionTier)
_instruments = _decoder(Instrument)
_stream = msgspec.json.Decoder(StreamMessage[LiquidationItem], strict=False)
_ticker_volumes = _decoder(TickerVolume)
_candle_message = msgspec.json.Decoder(StreamMessage[Candle], strict=False)


class RateCode(Exception):
    """Code 50011 on HTTP 200: the collector turns it into a back-off of the venue."""


def _data(decoder: msgspec.json.Decoder, body: bytes, endpoint: str) -> list:
    envelope = parse.decode(decoder, body, VENUE, endpoint)
    if envelope.code == RATE_LIMIT_CODE:
        raise RateCode(envelope.msg)
    if envelope.code == BUSY_CODE:
        raise VenueUnavailable(VENUE, endpoint, f"code {envelope.code}: {envelope.msg}")
    if envelope.code != "0":
        raise VenueRejected(VENUE, endpoint, f"code {envelope.code}: {envelope.msg}")
    return envelope.data


def _one(items: list[T], endpoint: str) -> T:
    if len(items) != 1:
        raise BadPayload(VENUE, endpoint, f"expected one row, got {len(items)}")
    return items[0]


def parse_candles(body: bytes, endpoint: str = "candles") -> np.ndarray:
    """Confirmed (closed) bars, oldest first; USD volume is ``volCcyQuote``."""
    page = [c for c in _data(_candles, body, endpoint) if c.confirm == 1]
    return parse.candles(VENUE, endpoint, [c.ts for c in page], [(c.open, c.high, c.low, c.close) for c in page], [c.volume_quote for c in page], None)


def parse_open_interest_history(body: bytes) -> np.ndarray:
    """Rows ``[ts, oi, oiCcy, oiUsd]`` → ``oiUsd`` at ``ts``."""
    page = _data(_oi_hist, body, "open-interest-history")
    return parse.open_interest(VENUE, "open-interest-history", [r.ts for r in page], [r.oi_usd for r in page])


def parse_long_short(body: bytes) -> np.ndarray:
    """Rows ``[ts, longShortAcctRatio]`` (newest first) → shares of accounts long and short (OKX publishes the ratio alone)."""
    page = _data(_account_ratio, body, "long-short-account-ratio-contract")
    if any(not r.ratio >= 0 for r in page):
        raise BadPayload(VENUE, "long-short-account-ratio-contract", "the long/short ratio must be a number >= 0")
    long_share, short_share = parse.shares_of_ratio([r.ratio for r in page])
    return parse.long_short(VENUE, "long-short-account-ratio-contract", [r.ts for r in page], long_share, short_share)


def parse_taker_volume(body: bytes) -> np.ndarray:
    """Rows ``[ts, sellVol, buyVol]`` (``unit=2``: USD; newest first) → taker buy and sell USD per period."""
    page = _data(_taker_volume, body, "taker-volume-contract")
    return parse.taker(VENUE, "taker-volume-contract", [r.ts for r in page], [r.buy for r in page], [r.sell for r in page])


def parse_snapshot(oi_body: bytes, mark_body: bytes, funding_body: bytes, contract_value: float) -> Snapshot:
    """Open interest = contracts × ctVal × mark price, stamped at its ``ts``; mark and funding."""
    current = _one(_data(_open_interest, oi_body, "open-interest"), "open-interest")
    mark = _one(_data(_mark, mark_body, "mark-price"), "mark-price")
    return snapshot_of(current, mark, parse_funding(funding_body), contract_value)


def parse_funding(body: bytes) -> FundingRate:
    return _one(_data(_funding, body, "funding-rate"), "funding-rate")


def parse_swap_state(oi_body: bytes, mark_body: bytes) -> tuple[dict[str, OpenInterest], dict[str, MarkPrice]]:
    """Open interest and mark price of every swap, by instrument, from the calls without ``instId``."""
    return (
        {row.instId: row for row in _data(_open_interest, oi_body, "open-interest")},
        {row.instId: row for row in _data(_mark, mark_body, "mark-price")},
    )


def snapshot_of(current: OpenInterest, mark: MarkPrice, funding: FundingRate, contract_value: float) -> Snapshot:
    """Open interest = contracts × ctVal × mark price, stamped at its ``ts``; mark and funding."""
    mark_price = parse.number(VENUE, "mark-price", lambda: mark.markPx, "markPx")
    oi = parse.open_interest(VENUE, "open-interest", [current.ts], [current.oi * contract_value * mark_price])
    meta: dict[str, str | int | float] = {
        "mark_price": mark_price,
        "funding_rate": funding.fundingRate,
        "contract_value": contract_value,
        "state_ms": mark.ts,
    }
    if funding.nextFundingTime is not None:
        meta["next_funding_ms"] = funding.nextFundingTime
    return Snapshot(oi, meta)


def parse_position_tiers(body: bytes, contract_value: float, mark_price: float) -> list[tiers.Tier]:
    """Tiers sized in contracts → USD at the mark price; deductions keep the margin continuous."""
    found = sorted(_data(_tiers, body, "position-tiers"), key=lambda t: t.tier)
    if not found:
        raise BadPayload(VENUE, "position-tiers", "no tiers")
    usd = contract_value * mark_price
    return tiers.from_bands([(t.minSz * usd, t.maxSz * usd, t.mmr, t.maxLever) for t in found])


def parse_instruments(body: bytes) -> dict[str, float]:
    """``ctVal`` per instrument id."""
    found = {i.instId: i.ctVal for i in _data(_instruments, body, "instruments")}
    if any(not (value > 0 and np.isfinite(value)) for value in found.values()):
        raise BadPayload(VENUE, "instruments", "ctVal must be positive")
    return found


def parse_listing(instruments_body: bytes, tickers_body: bytes) -> dict[str, float]:
    """Live USDT-margined linear swaps → 24h quote volume (``volCcy24h`` coins × ``last``)."""
    live = {
        symbol
        for i in _data(_instruments, instruments_body, "instruments")
        if i.state == "live" and i.settleCcy == "USDT" and i.ctType == "linear" and (symbol := from_okx_instrument(i.instId)) and symbol.endswith("USDT")
    }
    volumes = {from_okx_instrument(t.instId): t.volCcy24h * t.last for t in _data(_ticker_volumes, tickers_body, "tickers")}
    return {symbol: volumes.get(symbol, 0.0) for symbol in live}


def _push(decoder: msgspec.json.Decoder[StreamMessage[T]], text: str | bytes, channel: str) -> StreamMessage[T] | None:
    """One push on ``channel``; None for pongs and acks, ``BadPayload`` for errors and anything else."""
    if text in ("pong", b"pong"):
        return None
    message = parse.decode(decoder, text, VENUE, f"ws:{channel}")
    if message.event is not None:
        if message.event == "error":
            raise BadPayload(VENUE, f"ws:{channel}", f"refused: {message.code} {message.msg}")
        return None
    if message.arg is None or message.arg.channel != channel or message.data is None:
        raise BadPayload(VENUE, f"ws:{channel}", "unexpected message")
    return message


def parse_candle_message(text: str | bytes) -> list[tuple[str, parse.CandleTuple]]:
    """Confirmed bars (confirm ``1``) of one ``candle1m`` push; pongs and acks give none."""
    message = _push(_candle_message, text, "candle1m")
    if message is None or message.arg is None or message.data is None:
        return []
    symbol = from_okx_instrument(message.arg.instId)
    if symbol is None:
        raise BadPayload(VENUE, "ws:candle1m", f"not a swap: {message.arg.instId!r}")
    return [
        (symbol, parse.candle(VENUE, "ws:candle1m", c.ts, c.open, c.high, c.low, c.close, c.volume_quote, None))
        for c in message.data
        if c.confirm == 1
    ]


def parse_liquidations(text: str | bytes, contract_values: dict[str, float]) -> list[tuple[str, LiquidationTuple]]:
    """Events of one ``liquidation-orders`` push (size = contracts × ctVal); pongs and acks give none."""
    message = _push(_stream, text, "liquidation-orders")
    if message is None or message.data is None:
        return []
    out: list[tuple[str, LiquidationTuple]] = []
    for item in message.data:
        symbol = from_okx_instrument(item.instId)
        contract_value = contract_values.get(item.instId)
        if symbol is None or contract_value is None:
            continue
        for detail in item.details:
            out.append((symbol, parse.liquidation(VENUE, "ws:liquidation-orders", detail.ts, _side(detail), detail.bkPx, detail.sz * contract_value)))
    return out


def _side(detail: Detail) -> int:
    if detail.posSide == "long":
        return SIDE_LONG
    if detail.posSide == "short":
        return SIDE_SHORT
    # One-way (net) mode: the forced order sells a long, buys back a short.
    if detail.side == "sell":
        return SIDE_LONG
    if detail.side == "buy":
        return SIDE_SHORT
    raise BadPayload(VENUE, "ws:liquidation-orders", f"unknown side {detail.posSide!r}/{detail.side!r}")


class OkxCollector(ExchangeCollector):
    exchange = VENUE
    candle_page_bars = 100
    oi_history_page_rows = 100
    long_short_page_rows = 100
    # OKX candles do not split volume by taker side: its taker volume comes per 5 minutes.
    taker_page_rows = 100
    # 20 requests per 2 s per endpoint and IP.
    rate_limit = (20.0, 10.0)
    # Pause after code 50011, seconds.
    rate_code_backoff_s = 2.0
    # Two calls for every swap's open interest and mark price per round, shared by the markets,
    # and each market's funding rate hourly: about 1/60 of a call per market and poll.
    snapshot_weight = 0.05
    # A market's state comes from the answers for every swap while they are younger than this.
    swap_state_ms = 20_000
    # A subscribe message may be 64 KB (~1,300 candle channels); 480 (un)subscribe messages per
    # hour per connection: liqmap keeps 300 channels on one connection, in one message.
    kline_limits = StreamLimits(topics_per_connection=300, topics_per_message=300, message_interval_s=0.1)
    kline_ping = "ping"

    def __init__(self, settings: Settings, symbols: list[str] | None = None, *, clock: Clock = now_ms, sleep: Sleep = asyncio.sleep) -> None:
        super().__init__(settings, symbols, clock=clock, sleep=sleep)
        # The rubik statistics endpoints allow 5 requests per 2 s.
        self.history_budget = self.budget(5, 2.5)
        self.contract_values: dict[str, float] = {}
        self._mark: dict[str, float] = {}
        self._swaps: tuple[int, dict[str, OpenInterest], dict[str, MarkPrice]] | None = None
        self._swap_lock = asyncio.Lock()
        self._funding: dict[str, tuple[int, FundingRate]] = {}

    @staticmethod
    def rest_url(settings: Settings) -> str:
        return settings.okx_rest_url

    def _parsed(self, endpoint: str, parse, *args):  # noqa: ANN001, ANN202
        try:
            return parse(*args)
        except RateCode as exc:
            raise self.http.block(endpoint, self.rate_code_backoff_s, f"code {RATE_LIMIT_CODE}: {exc}") from None

    async def prepare(self) -> None:
        if not self.contract_values:
            body = await self.http.get("/api/v5/public/instruments", {"instType": "SWAP"})
            self.contract_values = self._parsed("instruments", parse_instruments, body)

    async def fetch_listing(self) -> dict[str, float]:
        instruments = await self.http.get("/api/v5/public/instruments", {"instType": "SWAP"})
        tickers = await self.http.get("/api/v5/market/tickers", {"instType": "SWAP"})
        # The same answer carries the contract sizes of new listings.
        self.contract_values = self._parsed("instruments", parse_instruments, instruments)
        return self._parsed("tickers", parse_listing, instruments, tickers)

    def kline_url(self) -> str:
        return self.settings.okx_business_ws_url

    def kline_topics(self, symbol: str) -> list[str]:
        return [okx_instrument(symbol)]

    def kline_frames(self, topics: list[str], subscribe: bool) -> list[str]:
        op = "subscribe" if subscribe else "unsubscribe"
        return [
            json.dumps({"op": op, "args": [{"channel": "candle1m", "instId": inst} for inst in part]})
            for part in chunked(topics, self.kline_limits.topics_per_message)
        ]

    def parse_kline_message(self, text: str) -> list[tuple[str, parse.CandleTuple]]:
        return parse_candle_message(text)

    def _contract_value(self, symbol: str) -> float:
        try:
            return self.contract_values[okx_instrument(symbol)]
        except KeyError:
            raise VenueRejected(VENUE, "instruments", f"no swap {okx_instrument(symbol)}") from None

    async def fetch_candles(self, symbol: str, start_ms: int, end_ms: int, now_ms: int) -> np.ndarray:
        recent = start_ms >= self.clock() - RECENT_CANDLES_MS
        endpoint = "candles" if recent else "history-candles"
        params = {"instId": okx_instrument(symbol), "bar": "1m", "after": end_ms, "before": start_ms - 1, "limit": self.candle_page_bars}
        return self._parsed(endpoint, parse_candles, await self.http.get(f"/api/v5/market/{endpoint}", params), endpoint)

    async def fetch_open_interest_history(self, symbol: str, start_ms: int, end_ms: int, candles: np.ndarray) -> np.ndarray:
        await self.history_budget.acquire("open-interest-history")
        params = {"instId": okx_instrument(symbol), "period": "5m", "begin": start_ms, "end": end_ms - 1, "limit": self.oi_history_page_rows}
        body = await self.http.get("/api/v5/rubik/stat/contracts/open-interest-history", params)
        return self._parsed("open-interest-history", parse_open_interest_history, body)

    async def fetch_long_short(self, symbol: str, start_ms: int, end_ms: int) -> np.ndarray:
        await self.history_budget.acquire("long-short-account-ratio-contract")
        params = {"instId": okx_instrument(symbol), "period": "5m", "begin": start_ms, "end": end_ms - 1, "limit": self.long_short_page_rows}
        body = await self.http.get("/api/v5/rubik/stat/contracts/long-short-account-ratio-contract", params)
        return self._parsed("long-short-account-ratio-contract", parse_long_short, body)

    async def fetch_taker(self, symbol: str, start_ms: int, end_ms: int) -> np.ndarray:
        await self.history_budget.acquire("taker-volume-contract")
        params = {"instId": okx_instrument(symbol), "period": "5m", "unit": 2, "begin": start_ms, "end": end_ms - 1, "limit": self.taker_page_rows}
        body = await self.http.get("/api/v5/rubik/stat/taker-volume-contract", params)
        return self._parsed("taker-volume-contract", parse_taker_volume, body)

    async def fetch_snapshot(self, symbol: str) -> Snapshot:
        """From the open interest and mark price of every swap (two calls, shared by the markets
        polled within ``swap_state_ms``) and the market's funding rate (its own call, hourly)."""
        await self.prepare()
        inst = okx_instrument(symbol)
        open_interest, marks = await self._swap_state()
        if inst not in open_interest or inst not in marks:
            raise VenueRejected(VENUE, "open-interest", f"no open interest or mark price for {inst}")
        funding = self._funding.get(inst)
        if funding is None or self.clock() - funding[0] >= self.tiers_refresh_ms:
            body = await self.http.get("/api/v5/public/funding-rate", {"instId": inst})
            funding = (self.clock(), self._parsed("funding-rate", parse_funding, body))
            self._funding[inst] = funding
        snapshot = self._parsed("open-interest", snapshot_of, open_interest[inst], marks[inst], funding[1], self._contract_value(symbol))
        self._mark[symbol] = float(snapshot.meta["mark_price"])
        return snapshot

    async def _swap_state(self) -> tuple[dict[str, OpenInterest], dict[str, MarkPrice]]:
        async with self._swap_lock:
            if self._swaps is None or self.clock() - self._swaps[0] >= self.swap_state_ms:
                oi_body = await self.http.get("/api/v5/public/open-interest", {"instType": "SWAP"})
                mark_body = await self.http.get("/api/v5/public/mark-price", {"instType": "SWAP"})
                self._swaps = (self.clock(), *self._parsed("open-interest", parse_swap_state, oi_body, mark_body))
            return self._swaps[1], self._swaps[2]

    async def fetch_tiers(self, symbol: str) -> dict[str, str | int | float]:
        mark = self._mark.get(symbol)
        if mark is None:
            raise VenueUnavailable(VENUE, "position-tiers", "no mark price yet to size the tiers")
        params = {"instType": "SWAP", "tdMode": "cross", "instFamily": okx_family(symbol)}
        body = await self.http.get("/api/v5/public/position-tiers", params)
        found = self._parsed("position-tiers", parse_position_tiers, body, self._contract_value(symbol), mark)
        return {tiers.META_FIELD: tiers.encode(found), tiers.META_SOURCE_FIELD: "okx position-tiers"}

    def stream(self) -> tuple[str, list[str], str | None]:
        subscribe = json.dumps({"op": "subscribe", "args": [{"channel": "liquidation-orders", "instType": "SWAP"}]})
        return self.settings.okx_ws_url, [subscribe], "ping"

    def parse_stream_message(self, text: str) -> list[tuple[str, LiquidationTuple]]:
        return parse_liquidations(text, self.contract_values)
