"""Realized liquidations summed per time bucket, per trailing window, or picked by size.

Pure numpy over store rows (``service.store.rows.LIQUIDATION_DTYPE``): no IO, no
per-event Python loops. Events of several markets are summed together by
concatenating their rows first (:func:`stack`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from engine.ranges import DAY_MS, HOUR_MS, MINUTE_MS
from engine.types import Float64Array, Int64Array
from service.store.rows import LIQUIDATION_DTYPE, SIDE_LONG, SIDE_SHORT

WEEK_MS = 7 * DAY_MS

# Bucket widths of the history routes, by their Coinglass names.
INTERVALS_MS: dict[str, int] = {
    "1m": MINUTE_MS,
    "3m": 3 * MINUTE_MS,
    "5m": 5 * MINUTE_MS,
    "15m": 15 * MINUTE_MS,
    "30m": 30 * MINUTE_MS,
    "1h": HOUR_MS,
    "4h": 4 * HOUR_MS,
    "6h": 6 * HOUR_MS,
    "8h": 8 * HOUR_MS,
    "12h": 12 * HOUR_MS,
    "1d": DAY_MS,
    "1w": WEEK_MS,
}

# Weeks start on Monday 00:00 UTC, as the exchanges' weekly candles do; the
# epoch (1970-01-01) was a Thursday, so Monday 1970-01-05 is the origin.
_WEEK_ORIGIN_MS = 4 * DAY_MS


def bucket_start(ts_ms: int, interval_ms: int) -> int:
    """Start of the bucket holding ``ts_ms``: a multiple of ``interval_ms`` since the epoch (weeks: since a Monday)."""
    origin = _WEEK_ORIGIN_MS if interval_ms == WEEK_MS else 0
    return ts_ms - (ts_ms - origin) % interval_ms


@dataclass(frozen=True, slots=True)
class BucketWindow:
    """``count`` consecutive buckets of ``interval_ms`` from ``first_ms`` (epoch ms)."""

    first_ms: int
    interval_ms: int
    count: int

    @property
    def end_ms(self) -> int:
        """End (exclusive) of the last bucket."""
        return self.first_ms + self.count * self.interval_ms


def history_window(
    interval_ms: int,
    *,
    end_ms: int,
    limit: int,
    start_ms: int | None = None,
    coverage_start_ms: int | None = None,
) -> BucketWindow | None:
    """The buckets a history request covers, or None when there are none.

    The last bucket is the one holding ``end_ms``. With ``start_ms`` the buckets
    run from the one holding it, the oldest ``limit`` of them; without, they are
    the newest ``limit``. Buckets before the one holding ``coverage_start_ms``
    (the first stored event) are left out: the store knows nothing of them, and
    zeros there would claim a quiet market. No coverage at all: None.
    """
    if coverage_start_ms is None:
        return None
    last = bucket_start(end_ms, interval_ms)
    covered = bucket_start(coverage_start_ms, interval_ms)
    if start_ms is None:
        first = max(last - (limit - 1) * interval_ms, covered)
    else:
        first = max(bucket_start(start_ms, interval_ms), covered)
    if first > last:
        return None
    count = min((last - first) // interval_ms + 1, limit)
    return BucketWindow(first_ms=first, interval_ms=interval_ms, count=count)


def span_window(start_ms: int, end_ms: int, interval_ms: int, max_buckets: int) -> BucketWindow:
    """The buckets covering ``[start_ms, end_ms)``: from the one holding ``start_ms`` to the one holding
    ``end_ms - 1``, the newest ``max_buckets`` of them. ``start_ms < end_ms``."""
    last = bucket_start(end_ms - 1, interval_ms)
    first = max(bucket_start(start_ms, interval_ms), last - (max_buckets - 1) * interval_ms)
    return BucketWindow(first_ms=first, interval_ms=interval_ms, count=(last - first) // interval_ms + 1)


def stack(parts: Sequence[np.ndarray]) -> tuple[np.ndarray, Int64Array]:
    """Events of several markets as one array, and the index of the part each came from.

    Returns
    -------
    events : ndarray of LIQUIDATION_DTYPE, shape (n,)
    owner : Int64Array, shape (n,)
        ``owner[i]`` is the position in ``parts`` of the array ``events[i]`` came from.
    """
    if not parts:
        return np.zeros(0, dtype=LIQUIDATION_DTYPE), np.zeros(0, dtype=np.int64)
    lengths = np.fromiter((len(part) for part in parts), dtype=np.int64, count=len(parts))
    return np.concatenate(parts), np.repeat(np.arange(len(parts), dtype=np.int64), lengths)


def _side_usd(events: np.ndarray) -> tuple[Float64Array, Float64Array]:
    """USD of each event counted on its side, zero on the other: ``(long_usd, short_usd)``, shape (n,) each."""
    usd = events["usd"].astype(np.float64)
    side = events["side"]
    return np.where(side == SIDE_LONG, usd, 0.0), np.where(side == SIDE_SHORT, usd, 0.0)


def bucket_totals(events: np.ndarray, window: BucketWindow) -> tuple[Int64Array, Float64Array, Float64Array]:
    """Realized liquidations summed per bucket.

    Parameters
    ----------
    events : ndarray of LIQUIDATION_DTYPE, shape (n,)
        Any order; events outside the window are ignored.
    window : BucketWindow

    Returns
    -------
    starts : Int64Array, shape (count,)
        Bucket start times, epoch ms, oldest first.
    long_usd, short_usd : Float64Array, shape (count,)
        USD of liquidated longs / shorts whose event time falls in each bucket.
    """
    starts = window.first_ms + np.arange(window.count, dtype=np.int64) * window.interval_ms
    index = (events["ts_ms"].astype(np.int64) - window.first_ms) // window.interval_ms
    inside = (index >= 0) & (index < window.count)
    long_usd, short_usd = _side_usd(events[inside])
    index = index[inside]
    return (
        starts,
        np.bincount(index, weights=long_usd, minlength=window.count),
        np.bincount(index, weights=short_usd, minlength=window.count),
    )


def window_totals(events: np.ndarray, owner: Int64Array, groups: int, now_ms: int, windows_ms: Sequence[int]) -> tuple[Float64Array, Float64Array]:
    """Realized liquidations per group over trailing windows ending at ``now_ms``.

    Parameters
    ----------
    events : ndarray of LIQUIDATION_DTYPE, shape (n,)
    owner : Int64Array, shape (n,)
        Group of each event, ``0 <= owner < groups``.
    groups : int
    now_ms : int
        End of every window (inclusive), epoch ms.
    windows_ms : sequence of int, length w
        Window lengths; an event counts in a window when ``now_ms - window <= ts <= now_ms``.

    Returns
    -------
    long_usd, short_usd : Float64Array, shape (groups, w)
    """
    widths = np.asarray(windows_ms, dtype=np.int64)
    age = now_ms - events["ts_ms"].astype(np.int64)
    long_usd, short_usd = _side_usd(events)
    out_long = np.zeros((groups, len(widths)), dtype=np.float64)
    out_short = np.zeros((groups, len(widths)), dtype=np.float64)
    for column, width in enumerate(widths.tolist()):
        inside = (age >= 0) & (age <= width)
        out_long[:, column] = np.bincount(owner[inside], weights=long_usd[inside], minlength=groups)
        out_short[:, column] = np.bincount(owner[inside], weights=short_usd[inside], minlength=groups)
    return out_long, out_short


def window_totals_by_group(
    parts: Sequence[np.ndarray], group_of_part: Sequence[int], groups: int, now_ms: int, windows_ms: Sequence[int]
) -> tuple[Float64Array, Float64Array]:
    """:func:`window_totals` of the events of several markets, each market counted in its group.

    Parameters
    ----------
    parts : sequence of ndarray of LIQUIDATION_DTYPE
        Events of each market.
    group_of_part : sequence of int, same length
        The group (``0 <= group < groups``) each market's events count in.
    """
    events, owner = stack(parts)
    return window_totals(events, np.asarray(group_of_part, dtype=np.int64)[owner], groups, now_ms, windows_ms)


def newest_at_least(events: np.ndarray, min_usd: float, limit: int) -> Int64Array:
    """Positions of the newest ``limit`` events worth at least ``min_usd``, newest first."""
    keep = np.flatnonzero(events["usd"] >= min_usd)
    order = np.argsort(-events["ts_ms"][keep], kind="stable")
    return keep[order[:limit]]
