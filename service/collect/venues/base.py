"""What every venue's collector shares: polling, backfill, liquidation ingest, error accounting.

A venue adapter subclasses :class:`ExchangeCollector` and supplies the calls
(one page of candles, one page of open-interest history, the current open
interest with mark price and funding, the margin tiers) and the parser of its
liquidation stream. This class turns those into the
:class:`~service.collect.source.MarketSource` behaviour the pipeline expects.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, TypeVar

import numpy as np

from service.clock import Clock, Sleep, now_ms
from service.store.rows import CANDLE_DTYPE, FUNDING_DTYPE, LIQUIDATION_DTYPE, LONG_SHORT_DTYPE, OPEN_INTEREST_DTYPE, TAKER_DTYPE, empty
from service.collect.venues import parse as canonical
from service.collect.venues.budget import RequestBudget, poll_interval_s
from service.collect.venues.errors import BadPayload, RateLimited, VenueError, VenueUnavailable
from service.collect.venues.http import HttpPolicy, VenueHttp
from service.collect.venues.parse import LiquidationTuple
from service.collect.venues.streams import SymbolStreams, StreamLimits
from service.collect.venues.ws import WsFeed, WsPolicy, cancel
from service.metrics import KLINE_CONNECTIONS, MARKETS_FOLLOWED, STATE_POLL_SECONDS, STREAMED_BARS
from service.settings import Settings
from service.store.outage import STORE, is_store_error
from service.collect.source import Batch

log = logging.getLogger(__name__)
T = TypeVar("T")

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS

# Where liquidations go as they arrive (the store's add_liquidations); returns how many were new.
LiquidationSink = Callable[[str, str, np.ndarray], Awaitable[int]]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The current state of a market from one poll: open interest (one row) and metadata."""

    open_interest: np.ndarray
    meta: dict[str, str | int | float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BackfillChunk:
    """One step of a backfill: rows for bars opening in ``[start_ms, end_ms)``."""

    start_ms: int
    end_ms: int
    batch: Batch
    skipped: bool = False  # already stored; nothing was fetched


@dataclass(slots=True)
class LiquidationStats:
    received: int = 0  # events parsed from the stream for our symbols
    duplicates: int = 0  # dropped as identical to a recent event
    dropped: int = 0  # dropped because the buffer was full (store unreachable for long)
    stored: int = 0  # new rows the sink reported


class LiquidationBuffer:
    """Per-symbol queue of parsed events between the stream and the store, with dedupe.

    Venues resend events (reconnect snapshots, at-least-once delivery); an event identical
    to one of the last ``remember`` of its symbol is dropped here, and the store drops
    identical rows too. Order does not matter: rows are kept by event time.
    """

    def __init__(self, max_events: int = 200_000, remember: int = 20_000) -> None:
        self.max_events = max_events
        self.remember = remember
        self.stats = LiquidationStats()
        self._pending: dict[str, list[LiquidationTuple]] = {}
        self._recent: dict[str, tuple[set[LiquidationTuple], deque[LiquidationTuple]]] = {}
        self._changed = asyncio.Event()

    def add(self, symbol: str, event: LiquidationTuple) -> bool:
        seen, order = self._recent.setdefault(symbol, (set(), deque()))
        if event in seen:
            self.stats.duplicates += 1
            return False
        seen.add(event)
        order.append(event)
        if len(order) > self.remember:
            seen.discard(order.popleft())
        pending = self._pending.setdefault(symbol, [])
        if len(pending) >= self.max_events:
            pending.pop(0)
            self.stats.dropped += 1
        pending.append(event)
        self.stats.received += 1
        self._changed.set()
        return True

    def drain(self, symbol: str) -> np.ndarray:
        events = self._pending.pop(symbol, None)
        return canonical.liquidation_rows(events) if events else empty(LIQUIDATION_DTYPE)

    def symbols(self) -> list[str]:
        return [symbol for symbol, events in self._pending.items() if events]

    def resend(self, symbol: str, since_ms: int) -> int:
        """Queue again the remembered events of ``symbol`` from ``since_ms`` on (the store lost them);
        the store keeps one of identical events, so those it still has are not added twice."""
        seen = self._recent.get(symbol)
        events = [event for event in seen[1] if event[0] >= since_ms] if seen else []
        if events:
            self._pending[symbol] = events + self._pending.get(symbol, [])
            self._changed.set()
        return len(events)

    def requeue(self, symbol: str, rows: np.ndarray) -> None:
        """Put rows back after a failed write (they go first; order does not matter)."""
        events = [tuple(row) for row in rows.tolist()]
        self._pending[symbol] = events + self._pending.get(symbol, [])  # type: ignore[operator]

    async def changed(self) -> None:
        """Wait for the next event added."""
        self._changed.clear()
        await self._changed.wait()


def closed_bars(rows: np.ndarray, step_ms: int, now_ms: int) -> np.ndarray:
    """Candles whose bar has closed by ``now_ms`` (venues also return the bar in progress)."""
    return rows[rows["ts_ms"] + step_ms <= now_ms]


class ExchangeCollector(ABC):
    """A live venue as a :class:`~service.collect.source.MarketSource` (plus ``start``/``close``).

    Parameters
    ----------
    settings : Settings
        Base URLs, markets, timeouts, budgets.
    symbols : sequence of str, optional
        Canonical symbols to collect (default ``settings.markets``).
    clock, sleep
        The time the collector reads (back-offs, budgets, what is due) and its waits on it
        (the wall clock and asyncio.sleep; tests pass a clock of their own).
    """

    exchange: ClassVar[str]
    step_ms: int = MINUTE_MS
    # Bars per candle request, open-interest history step and rows per request.
    candle_page_bars: ClassVar[int]
    oi_history_step_ms: ClassVar[int] = 5 * MINUTE_MS
    oi_history_page_rows: ClassVar[int]
    # The public account long/short ratio: its period and rows per request.
    long_short_step_ms: ClassVar[int] = 5 * MINUTE_MS
    long_short_page_rows: ClassVar[int]
    # Venues whose bars do not split volume by taker side publish it per 5-minute period: rows
    # per request of that (0: the bars split it, nothing to fetch).
    taker_page_rows: ClassVar[int] = 0
    # Published limit as (burst weight, weight per second); budgets take a share of it.
    rate_limit: ClassVar[tuple[float, float]]
    # Request weight of one fetch_snapshot (open interest, mark price, funding).
    snapshot_weight: ClassVar[float] = 1.0
    forbidden_backoff_s: ClassVar[float] = 60.0
    backfill_chunk_ms: ClassVar[int] = DAY_MS
    tiers_refresh_ms: ClassVar[int] = HOUR_MS
    # After an outage longer than this, poll also fetches open-interest history for the gap.
    gap_fill_after_ms: ClassVar[int] = 10 * MINUTE_MS
    # Candle pages one poll may fetch when catching up (the rest waits for the next poll).
    max_catch_up_pages: ClassVar[int] = 10
    # Kline streams: the venue's caps per connection and message, and how late a closed bar
    # may arrive on its stream before a poll fetches it over REST instead.
    kline_limits: ClassVar[StreamLimits]
    kline_ping: ClassVar[str | None] = None
    stream_grace_ms: ClassVar[int] = 20_000

    def __init__(self, settings: Settings, symbols: Sequence[str] | None = None, *, clock: Clock = now_ms, sleep: Sleep = asyncio.sleep) -> None:
        self.settings = settings
        self.clock = clock
        self.sleep = sleep
        self.selection = settings.market_selection()
        # A fixed list (given, or LIQMAP_MARKETS symbols), or the venue's list read by refresh_markets().
        self._listed = symbols is None and self.selection.from_listing
        self._symbols = list(symbols if symbols is not None else ([] if self._listed else self.selection.symbols))
        self._markets_due = 0
        self.listing: dict[str, float] = {}
        burst, per_s = self.rate_limit
        self.http = VenueHttp(
            self.exchange,
            self.rest_url(settings),
            self.budget(burst, per_s),
            HttpPolicy(timeout_s=settings.http_timeout_s, forbidden_backoff_s=self.forbidden_backoff_s),
            clock,
        )
        self.liquidations = LiquidationBuffer()
        # Failures per endpoint ("klines", "ws:forceOrder", ...), bad payloads among them.
        self.errors: Counter[str] = Counter()
        self.bad_payloads: Counter[str] = Counter()
        self._next_bar: dict[str, int] = {}
        self._tiers_due: dict[str, int] = {}
        self._long_short_from: dict[str, int] = {}
        self._taker_from: dict[str, int] = {}
        self._feed: WsFeed | None = None
        self._sink: LiquidationSink | None = None
        self._flush_task: asyncio.Task[None] | None = None
        self._flushed = asyncio.Condition()
        self.klines: SymbolStreams | None = None
        self._bars: dict[str, list[canonical.CandleTuple]] = {}
        self._bar_arrived = asyncio.Event()
        self.streamed_bars = 0
        self._followed: int | None = None
        self._snapshot_due: dict[str, int] = {}

    def budget(self, burst: float, per_s: float) -> RequestBudget:
        """This process's share (``request_budget_share``) of a published limit, on the collector's clock."""
        share = self.settings.request_budget_share
        return RequestBudget(burst * share, per_s * share, self.clock, self.sleep)

    # --- what a venue adapter provides -------------------------------------------------

    @staticmethod
    @abstractmethod
    def rest_url(settings: Settings) -> str: ...

    @abstractmethod
    async def fetch_candles(self, symbol: str, start_ms: int, end_ms: int, now_ms: int) -> np.ndarray:
        """At most ``candle_page_bars`` bars opening in ``[start_ms, end_ms)``, oldest first (any closed state)."""

    @abstractmethod
    async def fetch_open_interest_history(self, symbol: str, start_ms: int, end_ms: int, candles: np.ndarray) -> np.ndarray:
        """Open interest observed in ``[start_ms, end_ms)`` at ``oi_history_step_ms`` (one page).

        ``candles`` are 1m bars around the window, for venues that report coins, not USD.
        """

    @abstractmethod
    async def fetch_long_short(self, symbol: str, start_ms: int, end_ms: int) -> np.ndarray:
        """The venue's account long/short ratio for periods ending in ``[start_ms, end_ms)`` (one page, LONG_SHORT_DTYPE)."""

    async def fetch_taker(self, symbol: str, start_ms: int, end_ms: int) -> np.ndarray:
        """Taker volumes of the periods starting in ``[start_ms, end_ms)`` (one page, TAKER_DTYPE); venues with ``taker_page_rows``."""
        raise NotImplementedError(f"{self.exchange} splits taker volume in its bars")

    @abstractmethod
    async def fetch_snapshot(self, symbol: str) -> Snapshot:
        """Open interest now (USD, stamped when observed), mark price and funding."""

    @abstractmethod
    async def fetch_tiers(self, symbol: str) -> dict[str, str | int | float]:
        """Maintenance-margin tiers as market metadata (see :mod:`service.store.tiers`)."""

    @abstractmethod
    def stream(self) -> tuple[str, list[str], str | None]:
        """The liquidation stream: URL, subscribe frames, application ping frame."""

    @abstractmethod
    def parse_stream_message(self, text: str) -> list[tuple[str, LiquidationTuple]]:
        """Events of one stream message as ``(canonical symbol, event)``; ``BadPayload`` if malformed."""

    async def prepare(self) -> None:
        """Load what parsing needs before the first call (OKX: contract sizes)."""

    @abstractmethod
    async def fetch_listing(self) -> dict[str, float]:
        """Every USDT-margined perpetual the venue trades now: canonical symbol → 24h quote volume, USD."""

    @abstractmethod
    def kline_url(self) -> str:
        """Where the venue streams 1m klines."""

    @abstractmethod
    def kline_topics(self, symbol: str) -> list[str]:
        """The stream topics of one symbol's 1m klines."""

    @abstractmethod
    def kline_frames(self, topics: list[str], subscribe: bool) -> list[str]:
        """Frames that subscribe (or unsubscribe) ``topics``, each within ``kline_limits.topics_per_message``."""

    @abstractmethod
    def parse_kline_message(self, text: str) -> list[tuple[str, canonical.CandleTuple]]:
        """Closed bars of one kline message as ``(canonical symbol, bar)``; acks give none."""

    # --- the market list -----------------------------------------------------------------

    async def refresh_markets(self, now: int | None = None) -> bool:
        """With LIQMAP_MARKETS ``all`` or ``top:N``, read the venue's list again when due; returns whether it changed.

        A failed or empty answer keeps the markets as they were (tried again in a minute).
        """
        if not self._listed:
            return False
        now = self.clock() if now is None else now
        if now < self._markets_due:
            return False
        try:
            listing = await self.fetch_listing()
        except VenueError as exc:
            self._count(exc)
            self._markets_due = now + MINUTE_MS
            return False
        # Names become store keys and URL paths: letters and digits only (any script).
        listing = {symbol: volume for symbol, volume in listing.items() if symbol.isalnum()}
        if not listing:
            log.warning("%s listed no USDT perpetual; keeping the %d markets followed", self.exchange, len(self._symbols))
            self._markets_due = now + MINUTE_MS
            return False
        self.listing = listing
        self._markets_due = now + int(self.settings.markets_refresh_s * 1000)
        picked = self.selection.pick(listing)
        added, removed = sorted(set(picked) - set(self._symbols)), sorted(set(self._symbols) - set(picked))
        self._symbols = picked
        if added or removed:
            log.info("%s markets: %d followed, %d added (%s), %d removed (%s)", self.exchange, len(picked), len(added), ",".join(added[:10]), len(removed), ",".join(removed[:10]))
            self.markets_changed(added, removed)
        return bool(added or removed)

    def markets_changed(self, added: list[str], removed: list[str]) -> None:
        """Hook for venues whose liquidation stream is subscribed per symbol (Bybit)."""

    # --- candles over the kline streams --------------------------------------------------

    def ws_policy(self) -> WsPolicy:
        return WsPolicy(
            ping_interval_s=self.settings.ws_ping_interval_s,
            idle_timeout_s=self.settings.ws_idle_timeout_s,
            backoff_base_s=self.settings.ws_backoff_base_s,
            backoff_max_s=self.settings.ws_backoff_max_s,
        )

    def follow(self, symbols: Sequence[str]) -> None:
        """Stream the klines of ``symbols`` (the markets this process collects); others stop."""
        self._followed = len(symbols)
        MARKETS_FOLLOWED.labels(self.exchange).set(len(symbols))
        STATE_POLL_SECONDS.labels(self.exchange).set(self.snapshot_interval_s())
        if not self.settings.kline_streams:
            return
        if self.klines is None:
            self.klines = SymbolStreams(
                self.exchange,
                self.kline_url(),
                self.kline_limits,
                self.kline_topics,
                self.kline_frames,
                self.kline_ping,
                self.handle_kline_message,
                self.http.session,
                self.ws_policy(),
            )
        self.klines.set_symbols(symbols)
        KLINE_CONNECTIONS.labels(self.exchange).set(len(self.klines.connections))
        for symbol in [s for s in self._bars if not self.klines.follows(s)]:
            del self._bars[symbol]

    def handle_kline_message(self, text: str) -> int:
        """Buffer the closed bars of one kline message for the next poll; returns how many. Never raises."""
        try:
            bars = self.parse_kline_message(text)
        except BadPayload as exc:
            self._count(exc)
            return 0
        added = 0
        for symbol, row in bars:
            if self.klines is not None and self.klines.follows(symbol):
                self._bars.setdefault(symbol, []).append(row)
                added += 1
        if added:
            self.streamed_bars += added
            STREAMED_BARS.labels(self.exchange).inc(added)
            self._bar_arrived.set()
        return added

    async def wait_streamed(self, predicate: Callable[[], bool]) -> None:
        """Wait until ``predicate()`` holds, checked after every streamed closed bar (tests, tools)."""
        while not predicate():
            self._bar_arrived.clear()
            await self._bar_arrived.wait()

    def streamed(self, symbol: str) -> np.ndarray:
        """Closed bars of ``symbol`` that arrived on its stream and were not taken yet (kept)."""
        return canonical.candle_rows(self._bars.get(symbol, []))

    # --- MarketSource ------------------------------------------------------------------

    def symbols(self) -> list[str]:
        return list(self._symbols)

    async def start(self, sink: LiquidationSink | None = None) -> None:
        """Open the liquidation stream; with ``sink``, write events to it as they arrive."""
        try:
            await self.prepare()
        except VenueError as exc:
            self._count(exc)
        self.open_liquidation_stream()
        self._sink = sink
        if sink is not None:
            self._flush_task = asyncio.create_task(self._flush_loop(), name=f"liquidations:{self.exchange}")

    def open_liquidation_stream(self) -> None:
        """One connection with the subscription of :meth:`stream` (venues streaming per symbol override it)."""
        url, subscribe, app_ping = self.stream()
        self._feed = WsFeed(self.exchange, url, subscribe, app_ping, self.handle_stream_message, self.http.session, self.ws_policy())
        self._feed.start()

    async def close(self) -> None:
        if self._feed is not None:
            await self._feed.stop()
        if self.klines is not None:
            await self.klines.stop()
        if self._flush_task is not None:
            await cancel(self._flush_task)
            self._flush_task = None
            await self.flush_liquidations()
        await self.http.close()

    @property
    def feed(self) -> WsFeed | None:
        return self._feed

    async def backfill(self, symbol: str, start_ms: int, end_ms: int) -> Batch:
        """Candles, open-interest history, current state and tiers for ``[start_ms, end_ms)``.

        Open-interest history that the venue no longer has (or refuses) leaves that part
        of the range without open interest; candles that cannot be had raise.
        """
        try:
            parts = [chunk.batch async for chunk in self.backfill_chunks(symbol, start_ms, end_ms, patient=False)]
        except VenueError as exc:
            self._count(exc)
            raise
        batch = _concat(parts)
        batch.meta.update(await self._state(symbol, batch, always=True))
        if len(batch.long_short):
            self._long_short_from[symbol] = int(batch.long_short["ts_ms"][-1]) + 1
        if len(batch.taker):
            self._taker_from[symbol] = int(batch.taker["ts_ms"][-1]) + 1
        self._next_bar[symbol] = max(self._next_bar.get(symbol, 0), _closed_until(end_ms, self.step_ms))
        if len(batch.candles):
            self._next_bar[symbol] = max(self._next_bar[symbol], int(batch.candles["ts_ms"][-1]) + self.step_ms)
        return batch

    async def backfill_chunks(
        self,
        symbol: str,
        start_ms: int,
        end_ms: int,
        *,
        skip: Callable[[int, int], Awaitable[bool]] | None = None,
        patient: bool = True,
    ) -> AsyncIterator[BackfillChunk]:
        """Backfill in ``backfill_chunk_ms`` steps, oldest first; ``skip(start, end)`` true skips a chunk.

        ``patient`` (one-shot jobs): each call is retried, a venue's back-off of up to
        ``settings.backfill_max_wait_s`` is slept out, unreachable venues are retried with
        growing pauses; then the error is raised. Otherwise (a scheduled round) the
        first error is raised and the next round tries again.
        """
        await self._attempt(self.prepare, patient)
        now = min(end_ms, self.clock())
        start = start_ms - start_ms % self.step_ms
        for chunk_start in range(start, end_ms, self.backfill_chunk_ms):
            chunk_end = min(chunk_start + self.backfill_chunk_ms, end_ms)
            if skip is not None and await skip(chunk_start, chunk_end):
                yield BackfillChunk(chunk_start, chunk_end, Batch(), skipped=True)
                continue
            candles = await self._candles_between(symbol, chunk_start, chunk_end, now, patient=patient)
            open_interest = await self._open_interest_between(symbol, chunk_start, chunk_end, candles, patient=patient)
            long_short = await self._long_short_between(symbol, chunk_start, chunk_end, patient=patient)
            taker = await self._taker_between(symbol, chunk_start, min(chunk_end, now - now % self.long_short_step_ms), patient=patient)
            yield BackfillChunk(chunk_start, chunk_end, Batch(candles=candles, open_interest=open_interest, long_short=long_short, taker=taker))

    async def poll(self, symbol: str, now_ms: int) -> Batch:
        """New closed bars since the last poll, open interest now, fresh tiers, buffered liquidations
        (those only without a sink: with one, they are written as they arrive).

        Each part is fetched on its own: a failing call is logged and counted, its part is
        left for the next poll (bars are fetched from the last one stored), the others go on.
        """
        batch = Batch()
        first = self._next_bar.setdefault(symbol, _closed_until(now_ms, self.step_ms) - self.step_ms)
        batch.candles = await self._new_candles(symbol, first, now_ms)
        if len(batch.candles):
            self._next_bar[symbol] = int(batch.candles["ts_ms"][-1]) + self.step_ms
            if now_ms - first > self.gap_fill_after_ms:
                try:
                    batch.open_interest = await self._open_interest_between(symbol, first, now_ms, batch.candles)
                except VenueError as exc:
                    self._count(exc)
        batch.meta.update(await self._state(symbol, batch))
        # Account ratios of the periods ended since the last ones fetched (a period is 5 minutes).
        ended = now_ms - now_ms % self.long_short_step_ms + 1
        since = self._long_short_from.get(symbol, ended - self.long_short_step_ms)
        if ended > since:
            batch.long_short = await self._long_short_between(symbol, since, ended)
            if len(batch.long_short):
                self._long_short_from[symbol] = int(batch.long_short["ts_ms"][-1]) + 1
        # Taker volumes of the periods that ended since (stamped at their start).
        started = now_ms - now_ms % self.long_short_step_ms
        since = self._taker_from.get(symbol, started - self.long_short_step_ms)
        if self.taker_page_rows and started > since:
            batch.taker = await self._taker_between(symbol, since, started)
            if len(batch.taker):
                self._taker_from[symbol] = int(batch.taker["ts_ms"][-1]) + 1
        if self._sink is None:  # else the stream's events are written as they arrive
            batch.liquidations = self.liquidations.drain(symbol)
        return batch

    async def _new_candles(self, symbol: str, first: int, now_ms: int) -> np.ndarray:
        """Closed bars from ``first`` on: streamed ones, with REST for what the stream missed.

        While the symbol's stream is up, REST fetches only a gap: bars before the first one
        streamed (a reconnect, a late subscription) or, with nothing streamed, bars closed more
        than ``stream_grace_ms`` ago. Without a stream every bar comes over REST. Streamed bars
        after a gap are kept back until the gap is filled, so no gap is ever stored behind.
        """
        streamed = self.streamed(symbol)
        streamed = streamed[streamed["ts_ms"] >= first]
        self._bars.pop(symbol, None)
        live = self.klines is not None and self.klines.connected(symbol)
        if not live:
            gap_end = now_ms
        elif len(streamed):
            gap_end = int(streamed["ts_ms"][0])
        else:
            gap_end = _closed_until(now_ms - self.stream_grace_ms, self.step_ms)
        fetched = empty(CANDLE_DTYPE)
        if first < gap_end:
            page_ms = self.candle_page_bars * self.step_ms
            try:
                fetched = await self._candles_between(symbol, first, gap_end, now_ms, max_pages=self.max_catch_up_pages)
            except VenueError as exc:
                self._count(exc)
                self._keep(symbol, streamed)
                return empty(CANDLE_DTYPE)
            if gap_end - first > self.max_catch_up_pages * page_ms:
                self._keep(symbol, streamed)  # the rest of the gap comes first, at the next poll
                return fetched
        return _join(fetched, streamed, CANDLE_DTYPE)

    def _keep(self, symbol: str, rows: np.ndarray) -> None:
        if len(rows):
            self._bars[symbol] = [tuple(row) for row in rows.tolist()] + self._bars.get(symbol, [])  # type: ignore[misc]

    # --- liquidation stream --------------------------------------------------------------

    def handle_stream_message(self, text: str) -> int:
        """Parse one stream message into the buffer; returns the new events. Never raises."""
        try:
            events = self.parse_stream_message(text)
        except BadPayload as exc:
            self._count(exc)
            return 0
        wanted = self._symbols
        added = 0
        for symbol, event in events:
            if symbol in wanted and self.liquidations.add(symbol, event):
                added += 1
        return added

    async def flush_liquidations(self) -> int:
        """Write buffered events to the sink; returns how many were new to the store."""
        if self._sink is None:
            return 0
        new = 0
        for symbol in self.liquidations.symbols():
            rows = self.liquidations.drain(symbol)
            try:
                async with asyncio.timeout(self.settings.job_timeout_s):
                    new += await self._sink(self.exchange, symbol, rows)
            except Exception as exc:
                if is_store_error(exc):
                    STORE.down(exc, f"storing {self.exchange} liquidations")  # said once per outage
                else:
                    log.exception("%s: storing %d liquidations of %s failed; kept for the next try", self.exchange, len(rows), symbol)
                self.liquidations.requeue(symbol, rows)
            else:
                STORE.up()
        self.liquidations.stats.stored += new
        async with self._flushed:
            self._flushed.notify_all()
        return new

    def keep_liquidations(self, symbol: str, rows: np.ndarray) -> None:
        """Take back events a poll handed over whose write failed: they go with the next write."""
        if len(rows):
            self.liquidations.requeue(symbol, rows)

    def resend_liquidations(self, symbol: str, since_ms: int) -> int:
        """Write again the streamed events of ``symbol`` from ``since_ms`` on that this collector
        still remembers (the store lost its newest writes); returns how many were queued."""
        return self.liquidations.resend(symbol, since_ms)

    async def wait_stored(self, count: int) -> None:
        """Wait until the sink has taken ``count`` new events in all (for tests and tools)."""
        async with self._flushed:
            await self._flushed.wait_for(lambda: self.liquidations.stats.stored >= count)

    async def _flush_loop(self) -> None:
        while True:
            if not self.liquidations.symbols():
                await self.liquidations.changed()
            await self.flush_liquidations()
            await asyncio.sleep(self.settings.liquidation_flush_s)

    # --- helpers -------------------------------------------------------------------------

    def snapshot_interval_s(self) -> float:
        """Seconds between two polls of a market's open interest, from the markets collected and the budget.

        Polling every market's state may spend :data:`~service.collect.venues.budget.STATE_SHARE`
        of this process's request budget (the rest is for backfill, gaps and tiers); with more
        markets than that pays for each round, they are polled every few rounds.
        """
        markets = self._followed if self._followed is not None else len(self._symbols)
        return poll_interval_s(markets, self.state_weight(), self.http.budget.per_s, self.settings.collect_interval_s)

    def state_weight(self) -> float:
        """Request weight of one fetch_snapshot now."""
        return self.snapshot_weight

    async def _state(self, symbol: str, batch: Batch, *, always: bool = False) -> dict[str, str | int | float]:
        """Open interest now (appended to the batch) and mark/funding when due, and tiers when due."""
        meta: dict[str, str | int | float] = {}
        now = self.clock()
        if always or now >= self._snapshot_due.get(symbol, 0):
            try:
                snapshot = await self.fetch_snapshot(symbol)
                batch.open_interest = _join(batch.open_interest, snapshot.open_interest, OPEN_INTEREST_DTYPE)
                meta.update(snapshot.meta)
                if "funding_rate" in snapshot.meta and len(snapshot.open_interest):
                    # The rate the venue shows now (it moves until the funding time), stamped with the snapshot.
                    observed = int(snapshot.open_interest["ts_ms"][-1])
                    batch.funding = _join(batch.funding, canonical.funding(observed, float(snapshot.meta["funding_rate"])), FUNDING_DTYPE)
                # Half a round early, so that the poll of the round it falls in takes it.
                self._snapshot_due[symbol] = now + int((self.snapshot_interval_s() - self.settings.collect_interval_s / 2) * 1000)
            except VenueError as exc:
                self._count(exc)
        now = self.clock()
        if now >= self._tiers_due.get(symbol, 0):
            try:
                meta.update(await self.fetch_tiers(symbol))
                self._tiers_due[symbol] = now + self.tiers_refresh_ms
            except VenueError as exc:
                self._count(exc)
        return meta

    async def _candles_between(
        self, symbol: str, start_ms: int, end_ms: int, now_ms: int, *, patient: bool = False, max_pages: int | None = None
    ) -> np.ndarray:
        pages: list[np.ndarray] = []
        page_ms = self.candle_page_bars * self.step_ms
        stop = min(end_ms, _closed_until(now_ms, self.step_ms))
        for count, page_start in enumerate(range(start_ms, stop, page_ms)):
            if max_pages is not None and count >= max_pages:
                break
            page_end = min(page_start + page_ms, stop)
            fetch = lambda s=page_start, e=page_end: self.fetch_candles(symbol, s, e, now_ms)  # noqa: E731
            page = await self._attempt(fetch, patient)
            page = page[(page["ts_ms"] >= page_start) & (page["ts_ms"] < page_end)]
            pages.append(closed_bars(page, self.step_ms, now_ms))
        return _join_all(pages, CANDLE_DTYPE)

    async def _open_interest_between(self, symbol: str, start_ms: int, end_ms: int, candles: np.ndarray, *, patient: bool = False) -> np.ndarray:
        """History pages over the window; a venue that has none (too old, refused) gives none."""
        page_ms = self.oi_history_page_rows * self.oi_history_step_ms
        fetch = lambda s, e: self.fetch_open_interest_history(symbol, s, e, candles)  # noqa: E731
        return await self._history_pages(fetch, start_ms, end_ms, page_ms, OPEN_INTEREST_DTYPE, patient)

    async def _long_short_between(self, symbol: str, start_ms: int, end_ms: int, *, patient: bool = False) -> np.ndarray:
        """Account-ratio pages over the window; a venue that has none (too old, refused) gives none."""
        page_ms = self.long_short_page_rows * self.long_short_step_ms
        fetch = lambda s, e: self.fetch_long_short(symbol, s, e)  # noqa: E731
        return await self._history_pages(fetch, start_ms, end_ms, page_ms, LONG_SHORT_DTYPE, patient)

    async def _taker_between(self, symbol: str, start_ms: int, end_ms: int, *, patient: bool = False) -> np.ndarray:
        """Taker-volume pages over the window, where the venue's bars do not split it (else none)."""
        if not self.taker_page_rows:
            return empty(TAKER_DTYPE)
        page_ms = self.taker_page_rows * self.long_short_step_ms
        fetch = lambda s, e: self.fetch_taker(symbol, s, e)  # noqa: E731
        return await self._history_pages(fetch, start_ms, end_ms, page_ms, TAKER_DTYPE, patient)

    async def _history_pages(
        self, fetch: Callable[[int, int], Awaitable[np.ndarray]], start_ms: int, end_ms: int, page_ms: int, dtype: np.dtype, patient: bool
    ) -> np.ndarray:
        """``fetch(start, end)`` page by page over the window, rows kept inside their page; failed pages are counted and skipped."""
        pages: list[np.ndarray] = []
        for page_start in range(start_ms, end_ms, page_ms):
            page_end = min(page_start + page_ms, end_ms)
            try:
                page = await self._attempt(lambda s=page_start, e=page_end: fetch(s, e), patient)
            except VenueError as exc:
                self._count(exc)
                continue
            pages.append(page[(page["ts_ms"] >= page_start) & (page["ts_ms"] < page_end)])
        return _join_all(pages, dtype)

    async def _attempt(self, call: Callable[[], Awaitable[T]], patient: bool, attempts: int = 4) -> T:
        """``call()``; if ``patient``, retried through back-offs (up to backfill_max_wait_s) and outages."""
        if not patient:
            return await call()
        pause = 1.0
        for attempt in range(attempts):
            try:
                return await call()
            except RateLimited as exc:
                wait = (exc.until_ms - self.clock()) / 1000
                if wait > self.settings.backfill_max_wait_s or attempt == attempts - 1:
                    raise
                self._count(exc)
                await self.sleep(max(wait, 0.0))
            except (VenueUnavailable, BadPayload) as exc:
                if attempt == attempts - 1:
                    raise
                self._count(exc)
                await self.sleep(pause)
                pause *= 2
        raise AssertionError("unreachable")

    def _count(self, exc: VenueError) -> None:
        self.errors[exc.endpoint] += 1
        if isinstance(exc, BadPayload):
            self.bad_payloads[exc.endpoint] += 1
        log.warning("%s", exc)

    def request_counts(self) -> Counter[str]:
        """Calls made per endpoint since start."""
        return Counter(self.http.budget.requests)


def _closed_until(now_ms: int, step_ms: int) -> int:
    """Open time of the bar in progress at ``now_ms``: every earlier bar has closed."""
    return now_ms - now_ms % step_ms


def _join(a: np.ndarray, b: np.ndarray, dtype: np.dtype) -> np.ndarray:
    return _join_all([a, b], dtype)


def _join_all(parts: list[np.ndarray], dtype: np.dtype) -> np.ndarray:
    parts = [part for part in parts if len(part)]
    if not parts:
        return empty(dtype)
    return canonical.sorted_unique(np.concatenate(parts))


def _concat(batches: list[Batch]) -> Batch:
    return Batch(
        candles=_join_all([b.candles for b in batches], CANDLE_DTYPE),
        open_interest=_join_all([b.open_interest for b in batches], OPEN_INTEREST_DTYPE),
        liquidations=empty(LIQUIDATION_DTYPE),
        long_short=_join_all([b.long_short for b in batches], LONG_SHORT_DTYPE),
        taker=_join_all([b.taker for b in batches], TAKER_DTYPE),
    )
