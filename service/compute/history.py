"""Stored market series over a history request's buckets: which rows answer, read through the StoreReader.

The 1m rows (bars, open interest) are kept ``candle_retention_days``; the roll-ups the
long ranges run on (10m, 30m, 1h, 2h bars with the open interest at each close) much
longer. A request whose interval is a multiple of a roll-up step is answered from the
coarsest such roll-up where the 1m rows no longer reach, and from the 1m rows after: a
daily price history covers a year, not nine days. Funding rates and account ratios have
no roll-ups: they reach back as far as their rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from engine.rollup import INPUT_STEP_MS
from service.compute import series
from service.compute.realized import BucketWindow, history_window
from service.store.chunks import CANDLES, OPEN_INTEREST, ROLLUPS, TAKER, RowKind
from service.store.reader import StoreReader
from service.store.rows import CANDLE_DTYPE

Markets = Sequence[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class HistoryQuery:
    """A history request's buckets as asked: width, how many at most, and the time span (epoch ms)."""

    interval_ms: int
    limit: int
    start_time: int | None
    end_time: int | None


@dataclass(frozen=True, slots=True)
class Bars:
    """One market's bars over a window, oldest first: roll-up bars, then 1m bars.

    ``rows`` are CANDLE_DTYPE (their ``ts_ms`` the bar's open); ``close_ms`` the end of each bar.
    """

    rows: np.ndarray
    close_ms: np.ndarray


def rollup_step(interval_ms: int) -> int | None:
    """The coarsest roll-up step an interval is a whole number of (None: the 1m rows only)."""
    steps = [step for step in ROLLUPS if interval_ms % step == 0]
    return max(steps) if steps else None


async def window(store: StoreReader, kind: RowKind, markets: Markets, request: HistoryQuery, now: int, *, rollups: bool = False) -> BucketWindow | None:
    """The buckets a request covers (None: nothing stored). Coverage starts where every one of
    ``markets`` has rows of ``kind`` (or, with ``rollups``, of the roll-up answering for it)."""
    kinds = [kind]
    step = rollup_step(request.interval_ms) if rollups else None
    if step is not None:
        kinds.append(ROLLUPS[step])
    firsts = [await store.first_row_times(one, list(markets)) for one in kinds]
    per_market = [[first for first in column if first is not None] for column in zip(*firsts)]
    coverage = None if not per_market or not all(per_market) else max(min(found) for found in per_market)
    end = now if request.end_time is None else min(request.end_time, now)  # nothing is known of later times
    return history_window(request.interval_ms, end_ms=end, limit=request.limit, start_ms=request.start_time, coverage_start_ms=coverage)


async def bars(store: StoreReader, markets: Markets, window: BucketWindow, start_ms: int | None = None) -> list[Bars]:
    """Each market's bars opening in ``[start_ms (default: the window's first), window end)``: roll-up
    bars (whole ones, ending where the 1m bars begin) where the 1m bars no longer reach, then 1m bars."""
    start = window.first_ms if start_ms is None else start_ms
    fine = await store.read_rows_of(CANDLES, list(markets), start, window.end_ms)
    step = rollup_step(window.interval_ms)
    coarse = await store.read_rows_of(ROLLUPS[step], list(markets), start, window.end_ms) if step is not None else [None] * len(fine)
    out = []
    for minutes, rolled in zip(fine, coarse):
        first_fine = int(minutes["ts_ms"][0]) if len(minutes) else window.end_ms
        parts, closes = [], []
        if rolled is not None and step is not None:
            rolled = rolled[rolled["ts_ms"] + step <= first_fine]
            older = np.zeros(len(rolled), dtype=CANDLE_DTYPE)
            for name in CANDLE_DTYPE.names:
                older[name] = rolled[name]
            parts.append(older)
            closes.append(rolled["ts_ms"] + step)
        parts.append(minutes)
        closes.append(minutes["ts_ms"] + INPUT_STEP_MS)
        out.append(Bars(np.concatenate(parts), np.concatenate(closes).astype(np.int64)))
    return out


async def taker_volumes(store: StoreReader, market: tuple[str, str], window: BucketWindow) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Taker buy and sell USD of one market per bucket: from its bars where they split volume by taker
    side, else from the venue's own per-period taker volumes (OKX)."""
    (found,) = await bars(store, [market], window)
    time, buy, sell = series.taker_volumes(found.rows, window)
    if len(time):
        return time, buy, sell
    (periods,) = await store.read_rows_of(TAKER, [market], window.first_ms, window.end_ms)
    return series.period_sums(periods["ts_ms"], periods["buy_usd"], periods["sell_usd"], window)


async def points(store: StoreReader, kind: RowKind, markets: Markets, window: BucketWindow) -> list[np.ndarray]:
    """Each market's observations of ``kind`` that the window's buckets need (:func:`series.point_read_span`)."""
    start, end = series.point_read_span(window)
    return await store.read_rows_of(kind, list(markets), start, end)


async def open_interest(store: StoreReader, markets: Markets, window: BucketWindow, unit: str) -> tuple[np.ndarray, np.ndarray]:
    """Open interest of ``markets`` summed as observed (USD, or coins at each market's last close by then).

    Where the 1m rows no longer reach, a roll-up's open interest at each of its bars' closes.
    """
    start, end = series.point_read_span(window)
    observed = await points(store, OPEN_INTEREST, markets, window)
    bars_of = await bars(store, markets, window, start_ms=start - window.interval_ms)
    step = rollup_step(window.interval_ms)
    rolled = await store.read_rows_of(ROLLUPS[step], list(markets), start, end) if step is not None else [None] * len(observed)
    parts = []
    for rows, coarse, bar in zip(observed, rolled, bars_of):
        ts, usd = rows["ts_ms"], rows["open_interest_usd"]
        if coarse is not None and step is not None:
            first = int(ts[0]) if len(ts) else end
            coarse = coarse[coarse["ts_ms"] + step < first]
            ts = np.concatenate((coarse["ts_ms"] + step, ts))
            usd = np.concatenate((coarse["open_interest_usd"], usd))
        if unit == "coin":
            usd = series.in_coins(ts, usd, bar.close_ms, bar.rows["close"])
        parts.append((ts, usd))
    return series.summed(parts)


@dataclass(frozen=True, slots=True)
class OpenInterestNow:
    """Open interest of a group of markets now: the newest sum (USD), in coins at each market's last
    close, and its change (%) over trailing windows (None where nothing was observed that far back)."""

    usd: float
    coins: float
    change_percent: list[float | None]


async def open_interest_now(store: StoreReader, groups: Sequence[Markets], now: int, windows_ms: Sequence[int]) -> list[OpenInterestNow | None]:
    """:class:`OpenInterestNow` of each group of markets (None: a group with nothing observed), in two reads."""
    everything = list(dict.fromkeys(market for group in groups for market in group))
    rows = await store.read_rows_of(OPEN_INTEREST, everything, now - max(windows_ms) - 60 * 60_000, now + 1)
    candles = await store.newest_rows_of(CANDLES, everything)
    observed = dict(zip(everything, rows))
    coins = {
        market: float(oi["open_interest_usd"][-1]) / float(bars["close"][-1]) if len(oi) and len(bars) else 0.0
        for market, oi, bars in zip(everything, rows, candles)
    }
    out: list[OpenInterestNow | None] = []
    for group in groups:
        ts, values = series.summed([(observed[m]["ts_ms"], observed[m]["open_interest_usd"]) for m in group])
        last = series.newest(ts, values)
        out.append(None if last is None else OpenInterestNow(last[1], sum(coins[m] for m in group), series.change_percent(ts, values, windows_ms)))
    return out
