"""Building frames from the store's inputs: the one path the refresher and on-request builds share.

A frame's inputs are fixed by its market, range and end alone (never by when or where it is
built): ranges on 1m bases read the 1m bars of :data:`FINE_LOAD_MS` before the end, long
ranges read their roll-ups. So a frame built again later, in another process, for the same
id gives the same bytes, and history need only keep a record of it (see
:mod:`service.store.records`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from engine.aggregate import aggregate_series
from engine.build import build_frames
from engine.frame import Frame
from engine.models import ModelSpec
from engine.models.margin import MarginTable
from engine.ranges import DAY_MS, RANGES, base_step_ms
from engine.rollup import INPUT_STEP_MS, Rollup
from engine.series import MarketSeries
from service.compute.inputs import from_first_open_interest, series_from_rows
from service.markets import AGGREGATE_EXCHANGE, coin_of
from service.store.chunks import ROLLUPS
from service.store.reader import StoreReader
from service.store.records import FrameRecord, digest
from service.store.tiers import margin_table_of
from service.store.rows import ROLLUP_DTYPE
from service.wire.codec import encode_event
from service.wire.packed import pack_frame

# 1m bars read for ranges on a 1m base: the longest of them (7d) and a day more, so that a
# window's first bars have open interest before them to join on.
FINE_LOAD_MS = max(spec.span_ms for spec in RANGES.values() if base_step_ms(spec, INPUT_STEP_MS) == INPUT_STEP_MS) + DAY_MS


def is_fine(range_name: str) -> bool:
    """Whether a range runs on the 1m bars themselves (else on a roll-up)."""
    return base_step_ms(RANGES[range_name], INPUT_STEP_MS) == INPUT_STEP_MS


def rollup_step(range_name: str) -> int:
    return base_step_ms(RANGES[range_name], INPUT_STEP_MS)


@dataclass(frozen=True, slots=True)
class Inputs:
    """What the engine needs to build a market's frames ending at one time (picklable, for worker processes).

    ``series`` is the 1m window (:data:`FINE_LOAD_MS`) where a range on a 1m base is asked
    for, else just the last 1m bar (it fixes the frame's end); ``rollups`` holds the bases of
    the long ranges asked for; ``sources``: for an ``all`` market, what each venue covered;
    ``margin_table``: the maintenance-margin tiers the market's venue published (None: the
    engine's shipped table of the symbol), for models that place levels by them.
    """

    series: MarketSeries
    rollups: dict[int, Rollup] = field(default_factory=dict)
    sources: dict[str, dict[str, Any]] | None = None
    margin_table: MarginTable | None = None

    @property
    def data_until_ms(self) -> int:
        return int(self.series.ts_ms[-1]) + self.series.step_ms


def rollup_from_rows(rows: np.ndarray, step_ms: int) -> Rollup:
    series = MarketSeries(
        step_ms,
        rows["ts_ms"].astype(np.int64),
        *(rows[name].astype(np.float64) for name in ("open", "high", "low", "close", "volume_usd", "taker_buy_usd", "open_interest_usd")),
    )
    return Rollup(series, rows["first_input_ms"].astype(np.int64))


def rollup_rows(rollup: Rollup) -> np.ndarray:
    rows = np.zeros(len(rollup), dtype=ROLLUP_DTYPE)
    series = rollup.series
    for name in ("ts_ms", "open", "high", "low", "close", "volume_usd", "taker_buy_usd", "open_interest_usd"):
        rows[name] = getattr(series, name)
    rows["first_input_ms"] = rollup.first_input_ms
    return rows


async def venues_of(store: StoreReader, coin: str) -> list[tuple[str, str]]:
    """The venue markets an ``all`` market of ``coin`` sums (the synthetic market is no venue)."""
    return [(venue, symbol) for venue, symbol in await store.markets() if venue not in (AGGREGATE_EXCHANGE, "synthetic") and coin_of(symbol) == coin]


async def _venue_series(store: StoreReader, exchange: str, symbol: str, start_ms: int, end_ms: int) -> MarketSeries:
    candles = await store.read_candles(exchange, symbol, start_ms, end_ms)
    open_interest = await store.read_open_interest(exchange, symbol, start_ms - DAY_MS, end_ms)
    return await asyncio.to_thread(series_from_rows, candles, open_interest, INPUT_STEP_MS)


async def load_fine(
    store: StoreReader, exchange: str, symbol: str, until_ms: int, venues: Sequence[tuple[str, str]] | None = None
) -> tuple[MarketSeries, dict[str, dict[str, Any]] | None] | None:
    """The 1m series of the :data:`FINE_LOAD_MS` before ``until_ms`` (from its first bar with open
    interest), and for an ``all`` market what each of ``venues`` covered; None without bars."""
    start = until_ms - FINE_LOAD_MS
    if exchange != AGGREGATE_EXCHANGE:
        series = await _venue_series(store, exchange, symbol, start, until_ms)
        return (from_first_open_interest(series), None) if len(series) else None
    parts = {}
    for venue, venue_symbol in sorted(venues if venues is not None else await venues_of(store, symbol)):
        series = await _venue_series(store, venue, venue_symbol, start, until_ms)
        if len(series):
            parts[venue] = from_first_open_interest(series)
    if not parts:
        return None
    aggregated = await asyncio.to_thread(aggregate_series, parts)
    return from_first_open_interest(aggregated.series), {venue: asdict(c) for venue, c in aggregated.coverage.items()}


# A venue whose bars lag the freshest venue's by more than this does not hold an ``all``
# market back (it is down or slow; it joins again when it catches up).
AGGREGATE_WAIT_MS = 5 * 60_000


async def last_bar_ms(store: StoreReader, exchange: str, symbol: str, until_ms: int | None = None) -> int | None:
    """Open time of the newest 1m bar before ``until_ms`` (any time: None) of a market.

    For an ``all`` market: the newest bar every venue has, among the venues within
    :data:`AGGREGATE_WAIT_MS` of the freshest; so a coin's frame of a minute is built once its
    venues' bars of that minute are in, not once per venue as they arrive.
    """
    markets = await venues_of(store, symbol) if exchange == AGGREGATE_EXCHANGE else [(exchange, symbol)]
    lasts = []
    for venue, venue_symbol in markets:
        if until_ms is None:
            last = await store.last_candle_ts(venue, venue_symbol)
        else:
            bars = await store.read_candles(venue, venue_symbol, until_ms - DAY_MS, until_ms)
            last = int(bars["ts_ms"][-1]) if len(bars) else None
        if last is not None:
            lasts.append(last)
    if not lasts:
        return None
    freshest = max(lasts)
    return min(last for last in lasts if freshest - last <= AGGREGATE_WAIT_MS)


def anchor_bar(ts_ms: int) -> MarketSeries:
    """A stand-in 1m bar opening at ``ts_ms``: where frames of long ranges built from roll-ups end."""
    one = np.ones(1)
    return MarketSeries(INPUT_STEP_MS, np.array([ts_ms], dtype=np.int64), one, one, one, one, one, one, one)


async def load_inputs(
    store: StoreReader,
    exchange: str,
    symbol: str,
    range_names: Sequence[str],
    until_ms: int,
    *,
    sources: dict[str, dict[str, Any]] | None = None,
    margin_table: dict[str, Any] | None = None,
) -> Inputs | None:
    """The inputs of a market's frames of ``range_names`` ending at ``until_ms`` (a bar's end); None without bars.

    ``sources`` and ``margin_table`` (as a frame records them): what a frame was first built
    with; a rebuild sums the same venues and places levels by the same tiers, whatever the
    venue publishes now.
    """
    venues = None
    if sources is not None and exchange == AGGREGATE_EXCHANGE:
        venues = [(venue, venue_symbol) for venue, venue_symbol in await venues_of(store, symbol) if venue in sources]
    if any(is_fine(name) for name in range_names):
        loaded = await load_fine(store, exchange, symbol, until_ms, venues)
        if loaded is None:
            return None
        series, found_sources = loaded
    else:
        last = await last_bar_ms(store, exchange, symbol, until_ms)
        if last is None:
            return None
        series, found_sources = anchor_bar(last), None
    rollups = {}
    for name in range_names:
        if is_fine(name):
            continue
        step = rollup_step(name)
        spec = RANGES[name]
        rows = await store.read_rows(ROLLUPS[step], exchange, symbol, until_ms - spec.span_ms - spec.column_ms, until_ms)
        rollups[step] = rollup_from_rows(rows, step)
    if margin_table is not None:
        table = MarginTable.from_rows(margin_table["brackets"], margin_table.get("source", ""))
    else:
        table = None if exchange == AGGREGATE_EXCHANGE else margin_table_of(await store.market_meta(exchange, symbol), exchange)
    return Inputs(series, rollups, sources if sources is not None else found_sources, table)


@dataclass(frozen=True, slots=True)
class Built:
    """A frame built for storing: its record, stored form and announcement."""

    frame: Frame
    record: FrameRecord
    packed: bytes
    event: bytes


def build(
    inputs: Inputs,
    *,
    exchange: str,
    symbol: str,
    models: Sequence[str | ModelSpec],
    ranges: Sequence[str],
    rows: int,
    generated_at_ms: int,
    leverage: str | None = None,
) -> list[Built]:
    """Every model × range frame of ``inputs``, packed (CPU work: run it in a thread or process)."""
    frames = build_frames(
        inputs.series,
        models=models,
        ranges=ranges,
        exchange=exchange,
        symbol=symbol,
        generated_at_ms=generated_at_ms,
        rows=rows,
        leverage=leverage,
        sources=inputs.sources,
        rollups=inputs.rollups or None,
        margin_table=inputs.margin_table,
    )
    out = []
    for frame in frames:
        packed = pack_frame(frame)
        record = FrameRecord(
            id=frame.frame_id,
            exchange=frame.exchange,
            symbol=frame.symbol,
            model=frame.model,
            model_version=frame.model_version,
            params_hash=frame.params_hash,
            range=frame.range,
            generated_at=frame.generated_at_ms,
            data_until=frame.data_until_ms,
            coverage_start=frame.coverage_start_ms,
            rows=rows,
            leverage=frame.leverage,
            sources=frame.sources,
            margin_table=frame.margin_table,
            digest=digest(packed),
        )
        out.append(Built(frame, record, packed, encode_event(frame)))
    return out
