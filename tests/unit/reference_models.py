"""Slow, obviously correct reference implementations of the heatmap models.

The test oracle for the vectorised engine (and the baseline the benchmark
compares against): explicit level objects, one plain Python loop per step and
per level, no numpy beyond reading the inputs and returning the result.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from engine.grid import PriceGrid
from engine.series import MarketSeries


@dataclass
class Level:
    """One outstanding liquidation level."""

    side: str  # "long" or "short"
    row: int
    price: float  # the centre of its row: what crossings are judged against
    usd: float


@dataclass
class ReferenceRun:
    """Result of a reference run; shapes as in ``engine.build.ModelRun``."""

    long_usd: np.ndarray  # (columns, rows) float32
    short_usd: np.ndarray  # (columns, rows) float32
    consumed_long_usd: np.ndarray  # (n,) float64
    consumed_short_usd: np.ndarray  # (n,) float64
    out_of_grid_usd: float


def snap_to_row(price: float, grid: PriceGrid) -> int:
    """Row a price falls in, or -1 off the grid."""
    row = math.floor((price - grid.bottom) / grid.step)
    if 0 <= row < grid.rows:
        return row
    return -1


def reference_model1(
    series: MarketSeries,
    grid: PriceGrid,
    column_start_ms: list[int] | np.ndarray,
    column_ms: int,
    *,
    leverages: tuple[float, ...] = (5.0, 10.0, 25.0, 50.0, 100.0),
    weights: tuple[float, ...] = (0.15, 0.30, 0.25, 0.20, 0.10),
    mmr: float = 0.004,
    long_share: float = 0.5,
) -> ReferenceRun:
    """model1 by the book.

    Each bar ``t``, in order: remove every level the bar trades through
    (long: low <= level price, short: high >= level price) and count it as
    consumed; if open interest fell, multiply every remaining level by
    ``oi[t] / oi[t-1]``; open new levels for ``max(oi[t] - oi[t-1], 0)`` at
    the typical price, one per tier and side. Column ``c`` shows the levels
    as they stand after the last bar opening before its end.
    """
    n = len(series)
    ts = [int(v) for v in series.ts_ms]
    low = [float(v) for v in series.low]
    high = [float(v) for v in series.high]
    close = [float(v) for v in series.close]
    oi = [float(v) for v in series.open_interest_usd]
    starts = [int(v) for v in column_start_ms]

    # Columns to record after each bar.
    snapshots_after: dict[int, list[int]] = {}
    for column, start in enumerate(starts):
        last_bar = -1
        for t in range(n):
            if ts[t] < start + column_ms:
                last_bar = t
        if last_bar >= 0:
            snapshots_after.setdefault(last_bar, []).append(column)

    long_out = [[0.0] * grid.rows for _ in starts]
    short_out = [[0.0] * grid.rows for _ in starts]
    consumed_long = [0.0] * n
    consumed_short = [0.0] * n
    out_of_grid = 0.0
    levels: list[Level] = []

    for t in range(n):
        surviving = []
        for level in levels:
            if level.side == "long" and low[t] <= level.price:
                consumed_long[t] += level.usd
            elif level.side == "short" and high[t] >= level.price:
                consumed_short[t] += level.usd
            else:
                surviving.append(level)
        levels = surviving

        change = oi[t] - oi[t - 1] if t > 0 else 0.0
        if not math.isfinite(change):
            change = 0.0
        if change < 0:
            for level in levels:
                level.usd *= oi[t] / oi[t - 1]

        if change > 0:
            entry = (high[t] + low[t] + close[t]) / 3.0
            for leverage, weight in zip(leverages, weights, strict=True):
                for side, share, multiplier in (
                    ("long", long_share, 1.0 - 1.0 / leverage + mmr),
                    ("short", 1.0 - long_share, 1.0 + 1.0 / leverage - mmr),
                ):
                    usd = change * share * weight
                    row = snap_to_row(entry * multiplier, grid)
                    if row < 0:
                        out_of_grid += usd
                    else:
                        levels.append(Level(side=side, row=row, price=float(grid.centres[row]), usd=usd))

        for column in snapshots_after.get(t, []):
            for level in levels:
                target = long_out if level.side == "long" else short_out
                target[column][level.row] += level.usd

    return ReferenceRun(
        long_usd=np.array(long_out, dtype=np.float64).astype(np.float32).reshape(len(starts), grid.rows),
        short_usd=np.array(short_out, dtype=np.float64).astype(np.float32).reshape(len(starts), grid.rows),
        consumed_long_usd=np.array(consumed_long, dtype=np.float64),
        consumed_short_usd=np.array(consumed_short, dtype=np.float64),
        out_of_grid_usd=out_of_grid,
    )
