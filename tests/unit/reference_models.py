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
    row = math.floor((price - grid.bottom) * (1.0 / grid.step))
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


@dataclass
class PathLevel:
    """One outstanding level of a path model; ``row`` -1 is beyond the grid (never crossed)."""

    side: str
    tier: int
    row: int
    price: float
    usd: float


@dataclass
class PathReferenceRun:
    """Result of a path-model reference run."""

    long_usd: np.ndarray  # (columns, rows) float32, all tiers
    short_usd: np.ndarray
    consumed_long_usd: np.ndarray  # (n,) per bar
    consumed_short_usd: np.ndarray
    final_long_usd: np.ndarray  # (tiers, rows) float64
    final_short_usd: np.ndarray
    beyond_long_usd: float
    beyond_short_usd: float


def snapshot_columns(ts: list[int], starts: list[int], column_ms: int) -> dict[int, list[int]]:
    """The columns to record after each bar: column ``c`` after the last bar opening before its end."""
    out: dict[int, list[int]] = {}
    for column, start in enumerate(starts):
        last_bar = -1
        for t in range(len(ts)):
            if ts[t] < start + column_ms:
                last_bar = t
        if last_bar >= 0:
            out.setdefault(last_bar, []).append(column)
    return out


def consume(levels: list[PathLevel], low: float, high: float, consumed_long: list[float], consumed_short: list[float], t: int) -> list[PathLevel]:
    """Remove the levels a segment trades through (counted as consumed at bar ``t``); levels beyond the grid stay."""
    surviving = []
    for level in levels:
        if level.row >= 0 and level.side == "long" and low <= level.price:
            consumed_long[t] += level.usd
        elif level.row >= 0 and level.side == "short" and high >= level.price:
            consumed_short[t] += level.usd
        else:
            surviving.append(level)
    return surviving


def snapshot(levels: list[PathLevel], columns: list[int], long_out: list[list[float]], short_out: list[list[float]]) -> None:
    for column in columns:
        for level in levels:
            if level.row >= 0:
                target = long_out if level.side == "long" else short_out
                target[column][level.row] += level.usd


def path_result(levels, long_out, short_out, consumed_long, consumed_short, tiers: int, grid: PriceGrid) -> PathReferenceRun:
    """The run's outputs from the snapshots, the consumption and the final levels."""
    final_long = np.zeros((tiers, grid.rows))
    final_short = np.zeros((tiers, grid.rows))
    beyond = {"long": 0.0, "short": 0.0}
    for level in levels:
        if level.row < 0:
            beyond[level.side] += level.usd
        elif level.side == "long":
            final_long[level.tier, level.row] += level.usd
        else:
            final_short[level.tier, level.row] += level.usd
    columns = len(long_out)
    return PathReferenceRun(
        long_usd=np.array(long_out, dtype=np.float64).astype(np.float32).reshape(columns, grid.rows),
        short_usd=np.array(short_out, dtype=np.float64).astype(np.float32).reshape(columns, grid.rows),
        consumed_long_usd=np.array(consumed_long, dtype=np.float64),
        consumed_short_usd=np.array(consumed_short, dtype=np.float64),
        final_long_usd=final_long,
        final_short_usd=final_short,
        beyond_long_usd=beyond["long"],
        beyond_short_usd=beyond["short"],
    )


def reference_multipliers(leverage: float, notional: float, brackets) -> tuple[float, float]:
    """Liquidation price over entry for an isolated position under a bracket table, by the book.

    Walks the mark notional x from the position's notional in tiny steps
    would be too slow; instead, try every bracket's solution of
    ``margin + PnL = x * mmr - cum`` and keep the one inside its bracket.
    """
    cums = []
    floor = cum = previous_mmr = 0.0
    for cap, mmr, _ in brackets:
        cum += floor * (mmr - previous_mmr)
        cums.append((floor, cap, mmr, cum))
        floor, previous_mmr = cap, mmr
    results = []
    for sign in (-1.0, 1.0):  # long, short
        found = None
        for index, (low, cap, mmr, cum) in enumerate(cums):
            high = math.inf if index == len(cums) - 1 else cap
            # long: N/L + x - N = x*mmr - cum ; short: N/L + N - x = x*mmr - cum
            x = (notional * (1 + sign / leverage) + sign * cum) / (1 + sign * mmr)
            if low <= x < high:
                found = x
                break
        results.append(found / notional)
    return results[0], results[1]


def reference_sizes(leverage: float, brackets, min_position: float, points: int) -> list[float]:
    allowed = [cap for cap, _, max_leverage in brackets if max_leverage >= leverage]
    cap = allowed[-1] if allowed else brackets[0][0]
    return [min_position * (cap / min_position) ** ((j + 0.5) / points) for j in range(points)]


def reference_path_model(
    series: MarketSeries,
    grid: PriceGrid,
    column_start_ms,
    column_ms: int,
    *,
    leverages,
    weights,
    brackets,
    min_position: float = 1_000.0,
    points: int = 3,
    flow_weight: float = 1.0,
    new_share: float = 1.0,
    half_life_hours: float | None = None,
    reopen_share: float = 0.0,
) -> PathReferenceRun:
    """model2 (no decay) and model3 (decay, reopening, a leveraged share) by the book.

    Each bar is walked as three straight segments:
    open → low → high → close when it closes at or above its open, else
    open → high → low → close; on each of the three segments, in order:
    remove the levels the segment trades through; scale every level by the
    cube root of the bar's open interest ratio (when it fell); multiply every
    level by ``0.5 ** (hours / 3 / half_life)`` and reopen ``reopen_share`` of
    what that closed, per side and tier, at the segment's midpoint; open a
    third of the bar's new open interest (times ``new_share``) at the
    segment's midpoint, split long/short by taker flow, over tiers by weight
    and over ``points`` position sizes equally.
    """
    n = len(series)
    ts = [int(v) for v in series.ts_ms]
    o = [float(v) for v in series.open]
    h = [float(v) for v in series.high]
    lo_ = [float(v) for v in series.low]
    c = [float(v) for v in series.close]
    oi = [float(v) for v in series.open_interest_usd]
    volume = [float(v) for v in series.volume_usd]
    taker = [float(v) for v in series.taker_buy_usd]
    starts = [int(v) for v in column_start_ms]
    tiers = len(leverages)
    multipliers = [
        [reference_multipliers(leverage, size, brackets) for size in reference_sizes(leverage, brackets, min_position, points)]
        for leverage in leverages
    ]

    snapshots_after = snapshot_columns(ts, starts, column_ms)
    long_out = [[0.0] * grid.rows for _ in starts]
    short_out = [[0.0] * grid.rows for _ in starts]
    consumed_long = [0.0] * n
    consumed_short = [0.0] * n
    levels: list[PathLevel] = []

    for t in range(n):
        change = oi[t] - oi[t - 1] if t > 0 else 0.0
        if not math.isfinite(change):
            change = 0.0
        ratio = oi[t] / oi[t - 1] if change < 0 else 1.0
        hours = (ts[t] - ts[t - 1]) / 3_600_000 if t > 0 else series.step_ms / 3_600_000
        buy = taker[t] / volume[t] if (math.isfinite(taker[t]) and math.isfinite(volume[t]) and volume[t] > 0) else 0.5
        long_share = min(max(0.5 + flow_weight * (min(max(buy, 0.0), 1.0) - 0.5), 0.0), 1.0)
        path = [o[t], lo_[t], h[t], c[t]] if c[t] >= o[t] else [o[t], h[t], lo_[t], c[t]]
        for segment in range(3):
            a, b = path[segment], path[segment + 1]
            low, high, entry = min(a, b), max(a, b), (a + b) / 2.0
            levels = consume(levels, low, high, consumed_long, consumed_short, t)
            if ratio != 1.0:
                for level in levels:
                    level.usd *= ratio ** (1.0 / 3.0)
            closed = {(side, tier): 0.0 for side in ("long", "short") for tier in range(tiers)}
            if half_life_hours is not None:
                keep = 0.5 ** (hours / 3.0 / half_life_hours)
                for level in levels:
                    closed[(level.side, level.tier)] += level.usd * (1.0 - keep)
                    level.usd *= keep
            new = max(change, 0.0) * new_share / 3.0
            for tier in range(tiers):
                for point in range(points):
                    for side, share, index in (("long", long_share, 0), ("short", 1.0 - long_share, 1)):
                        usd = new * share * weights[tier] / points
                        if weights[tier] > 0:
                            usd += reopen_share * closed[(side, tier)] / points
                        if usd == 0.0:
                            continue
                        row = snap_to_row(entry * multipliers[tier][point][index], grid)
                        price = float(grid.centres[row]) if row >= 0 else math.nan
                        levels.append(PathLevel(side=side, tier=tier, row=row, price=price, usd=usd))
        snapshot(levels, snapshots_after.get(t, []), long_out, short_out)
    return path_result(levels, long_out, short_out, consumed_long, consumed_short, tiers, grid)


def reference_cadence(series: MarketSeries, cadences_ms) -> int:
    """The open interest's reading cadence, by the book (see ``engine.models.common.open_interest_step_ms``).

    For each cadence from the largest: a reading is a bar closing at a
    multiple of it with a known value; every known bar strictly between two
    readings one cadence apart must hold the earlier reading or the straight
    line between the two, and at least one such bar must sit between two
    readings that differ.
    """
    step = series.step_ms
    closes = [int(t) + step for t in series.ts_ms]
    values = [float(v) for v in series.open_interest_usd]
    for cadence in sorted(cadences_ms, reverse=True):
        if cadence <= step or cadence % step or 86_400_000 % cadence:
            continue
        readings = {close: value for close, value in zip(closes, values) if close % cadence == 0 and math.isfinite(value)}
        checked = moved = False
        explained = True
        for close, value in zip(closes, values):
            if close % cadence == 0 or not math.isfinite(value):
                continue
            before = close - close % cadence
            after = before + cadence
            if before not in readings or after not in readings:
                continue
            earlier, later = readings[before], readings[after]
            tolerance = 1e-7 * abs(value) + 0.01
            line = earlier + (later - earlier) * (close - before) / cadence
            checked = True
            moved = moved or abs(later - earlier) > tolerance
            if abs(value - earlier) > tolerance and abs(value - line) > tolerance:
                explained = False
                break
        if explained and checked and moved and len(readings) >= 2:
            return cadence
    return step


def reference_model4(
    series: MarketSeries,
    grid: PriceGrid,
    column_start_ms,
    column_ms: int,
    *,
    leverages,
    weights,
    brackets,
    min_position: float,
    points: int,
    turnover_rate: float,
    turnover_per_hour_unknown: float,
    leveraged_share: float,
    volatility_exponent: float,
    volatility_half_life_hours: float,
    max_volatility_factor: float,
    reference_volatility: float,
    cadences_ms,
) -> PathReferenceRun:
    """model4 by the book.

    Reading steps: bars grouped by ``ceil(close / cadence)``; a step's value
    is its last known open interest; its rise over the previous step's value
    opens positions on its bars in proportion to their volume (equally when a
    volume is unknown or all are zero), its fall shrinks the book by the
    ratio's ``1 / (bars · 3)``-th power on every segment. Each segment of
    model2's path, in order: remove the levels traded through; shrink by a
    falling step; close ``1 − exp(−rate · turnover / 3)`` of every level
    (turnover: volume / the previous step's value, or the unknown-volume
    rate × hours since the previous bar); open, on each side, ``share ·
    (previous step's value · closed share + the bar's rise / 3)`` at the
    segment's midpoint over the tiers by weight and the size points equally,
    a tier's leverage capped at the table's highest; ``share`` is
    ``leveraged_share · min((reference / σ) ** exponent, cap)`` with ``σ`` the
    exponentially weighted Parkinson volatility per √hour of the bars before.
    """
    n = len(series)
    step = series.step_ms
    ts = [int(v) for v in series.ts_ms]
    o = [float(v) for v in series.open]
    h = [float(v) for v in series.high]
    lo_ = [float(v) for v in series.low]
    c = [float(v) for v in series.close]
    oi = [float(v) for v in series.open_interest_usd]
    volume = [float(v) for v in series.volume_usd]
    starts = [int(v) for v in column_start_ms]
    tiers = len(leverages)
    highest = max(b[2] for b in brackets)
    multipliers = [
        [reference_multipliers(min(leverage, highest), size, brackets) for size in reference_sizes(min(leverage, highest), brackets, min_position, points)]
        for leverage in leverages
    ]

    # Reading steps.
    cadence = reference_cadence(series, cadences_ms)
    keys = [(t + step - 1) // cadence for t in ts]
    order: list[int] = []
    members: dict[int, list[int]] = {}
    for index, key in enumerate(keys):
        if key not in members:
            members[key] = []
            order.append(key)
        members[key].append(index)
    value: dict[int, float] = {}
    for key in order:
        known = [oi[i] for i in members[key] if math.isfinite(oi[i])]
        value[key] = known[-1] if known else math.nan
    new = [0.0] * n
    ratio_per_bar = [1.0] * n
    level = [math.nan] * n
    for position, key in enumerate(order):
        previous = value[order[position - 1]] if position > 0 else value[key]
        change = value[key] - previous
        if not math.isfinite(change):
            change = 0.0
        bars = members[key]
        vols = [volume[i] for i in bars]
        by_volume = all(math.isfinite(v) and v >= 0 for v in vols) and sum(vols) > 0
        for i in bars:
            level[i] = previous
            if change > 0:
                new[i] = change * (volume[i] / sum(vols) if by_volume else 1.0 / len(bars))
            if change < 0:
                ratio_per_bar[i] = (value[key] / previous) ** (1.0 / len(bars))

    # Volatility known before each bar.
    variance = [math.log(h[t] / lo_[t]) ** 2 / (4 * math.log(2)) / (step / 3_600_000) for t in range(n)]
    sigma = []
    for t in range(n):
        if t == 0:
            sigma.append(math.sqrt(variance[0]))
            continue
        weights_before = [0.5 ** ((ts[t] - ts[i]) / 3_600_000 / volatility_half_life_hours) for i in range(t)]
        sigma.append(math.sqrt(sum(w * v for w, v in zip(weights_before, variance)) / sum(weights_before)))

    snapshots_after = snapshot_columns(ts, starts, column_ms)
    long_out = [[0.0] * grid.rows for _ in starts]
    short_out = [[0.0] * grid.rows for _ in starts]
    consumed_long = [0.0] * n
    consumed_short = [0.0] * n
    levels: list[PathLevel] = []
    for t in range(n):
        hours = (ts[t] - ts[t - 1]) / 3_600_000 if t > 0 else step / 3_600_000
        if math.isfinite(volume[t]) and volume[t] >= 0 and math.isfinite(level[t]) and level[t] > 0:
            turnover = volume[t] / level[t]
        else:
            turnover = turnover_per_hour_unknown * hours
        closed = min(1.0 - math.exp(-turnover_rate * turnover / 3.0), 1.0 - 1e-6)
        if volatility_exponent == 0:
            factor = 1.0
        elif sigma[t] == 0:
            factor = max_volatility_factor
        else:
            factor = min((reference_volatility / sigma[t]) ** volatility_exponent, max_volatility_factor)
        share = leveraged_share * factor
        opened = share * ((level[t] if math.isfinite(level[t]) else 0.0) * closed + new[t] / 3.0)
        path = [o[t], lo_[t], h[t], c[t]] if c[t] >= o[t] else [o[t], h[t], lo_[t], c[t]]
        for segment in range(3):
            a, b = path[segment], path[segment + 1]
            low, high, entry = min(a, b), max(a, b), (a + b) / 2.0
            levels = consume(levels, low, high, consumed_long, consumed_short, t)
            for lvl in levels:
                lvl.usd *= ratio_per_bar[t] ** (1.0 / 3.0) * (1.0 - closed)
            for tier in range(tiers):
                for point in range(points):
                    for side, index in (("long", 0), ("short", 1)):
                        usd = opened * weights[tier] / points
                        if usd == 0.0:
                            continue
                        row = snap_to_row(entry * multipliers[tier][point][index], grid)
                        price = float(grid.centres[row]) if row >= 0 else math.nan
                        levels.append(PathLevel(side=side, tier=tier, row=row, price=price, usd=usd))
        snapshot(levels, snapshots_after.get(t, []), long_out, short_out)
    return path_result(levels, long_out, short_out, consumed_long, consumed_short, tiers, grid)
