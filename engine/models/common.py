"""Mechanics several models share: open interest steps, the price path inside a bar, taker flow, volatility."""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np

from engine.ranges import DAY_MS, HOUR_MS, MINUTE_MS
from engine.series import MarketSeries
from engine.types import BoolArray, Float64Array, Int64Array

# The path inside a bar: open → first extreme → second extreme → close.
PATH_STEPS = 3
# Cadences an open-interest feed comes at (those a multiple of the bar width are tried).
OPEN_INTEREST_CADENCES_MS: tuple[int, ...] = tuple(
    minutes * MINUTE_MS for minutes in (1, 5, 15, 30, 60, 120, 240, 360, 720, 1440)
)
# A bar "holds" a reading (carried or on the line between two) within this
# much: relative to the value, plus a cent for values written with 2 decimals.
READING_RTOL = 1e-7
READING_ATOL = 0.01


def load_fit(filename: str) -> dict[str, Any]:
    """A fitted model's stored fit (``version``, ``created``, ``params``, ``calibration``) from the package."""
    text = resources.files("engine.models").joinpath(filename).read_text(encoding="utf-8")
    fit: dict[str, Any] = json.loads(text)
    return fit


def check_tiers(leverages: tuple[float, ...], weights: tuple[float, ...]) -> None:
    """Refuse tiers that are empty, of unequal length, at leverage <= 1, or whose weights are not a distribution."""
    if len(leverages) != len(weights) or not leverages:
        raise ValueError("leverages and weights must be non-empty and of one length")
    if any(leverage <= 1 for leverage in leverages):
        raise ValueError(f"every leverage must exceed 1, got {leverages}")
    if any(weight < 0 for weight in weights) or abs(sum(weights) - 1.0) > 1e-9:
        raise ValueError(f"weights must be non-negative and sum to 1, got {weights}")


def open_interest_steps(open_interest_usd: Float64Array) -> tuple[Float64Array, Float64Array]:
    """New open interest and the outstanding book's scale factor per bar.

    Parameters
    ----------
    open_interest_usd : Float64Array, shape (n,)
        Open interest at each bar's close, USD; NaN where unknown.

    Returns
    -------
    new_usd : Float64Array, shape (n,)
        ``max(ΔOI, 0)``, USD; 0 on the first bar and wherever ΔOI is NaN.
    scale : Float64Array, shape (n,)
        ``oi[t] / oi[t-1]`` where open interest fell, else 1.
    """
    previous = np.concatenate((open_interest_usd[:1], open_interest_usd[:-1]))
    delta = open_interest_usd - previous
    delta = np.where(np.isfinite(delta), delta, 0.0)
    new_usd = np.maximum(delta, 0.0)
    falling = delta < 0
    # A fall implies previous > current >= 0, so the division is safe there.
    safe_previous = np.where(falling, previous, 1.0)
    scale = np.where(falling, open_interest_usd / safe_previous, 1.0)
    return new_usd, scale


def typical_price(series: MarketSeries) -> Float64Array:
    """``(high + low + close) / 3`` per bar, USD, shape (n,)."""
    return (series.high + series.low + series.close) / 3.0


def bar_hours(series: MarketSeries) -> Float64Array:
    """Hours each bar advances the clock: since the previous bar's open (the step for the first), shape (n,)."""
    elapsed = np.diff(series.ts_ms, prepend=series.ts_ms[:1] - series.step_ms)
    return elapsed.astype(np.float64) / HOUR_MS


@dataclass(frozen=True, slots=True)
class CandlePath:
    """The path price is taken to walk inside each bar, as ``PATH_STEPS`` straight segments.

    A bar that closes at or above its open goes open → low → high → close,
    one that closes below goes open → high → low → close (the extreme nearer
    the close comes last).

    Attributes
    ----------
    low, high : Float64Array, shape (n * PATH_STEPS,)
        Lowest and highest price of each segment, bar by bar.
    entry : Float64Array, shape (n * PATH_STEPS,)
        Midpoint of each segment: where positions opened during it enter.
    """

    low: Float64Array
    high: Float64Array
    entry: Float64Array


def candle_path(series: MarketSeries) -> CandlePath:
    """The segments of every bar's path (see :class:`CandlePath`)."""
    rising = series.close >= series.open
    first = np.where(rising, series.low, series.high)
    second = np.where(rising, series.high, series.low)
    points = np.stack((series.open, first, second, series.close), axis=1)
    start, end = points[:, :-1], points[:, 1:]
    return CandlePath(
        low=np.minimum(start, end).reshape(-1),
        high=np.maximum(start, end).reshape(-1),
        entry=((start + end) / 2.0).reshape(-1),
    )


def taker_long_share(series: MarketSeries, flow_weight: float) -> Float64Array:
    """Share of each bar's new positions that open long, from taker flow, shape (n,).

    ``0.5 + flow_weight · (taker_buy / volume − 0.5)``, clipped to [0, 1];
    0.5 where the venue reports no taker flow or the bar has no volume.
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        buy_share = series.taker_buy_usd / series.volume_usd
    known = np.isfinite(buy_share) & (series.volume_usd > 0)
    share = 0.5 + flow_weight * (np.where(known, np.clip(buy_share, 0.0, 1.0), 0.5) - 0.5)
    return np.clip(share, 0.0, 1.0)


def per_step(values: Float64Array, steps: int) -> Float64Array:
    """Each bar's value repeated for its ``steps`` steps."""
    return values if steps == 1 else np.repeat(values, steps)


def _held_and_moved(close_ms: Int64Array, open_interest_usd: Float64Array, cadence_ms: int) -> tuple[bool, bool]:
    """Whether every bar between two consecutive readings holds one of them or the line between (see :func:`_explains`), and whether any such pair differs."""
    finite = np.isfinite(open_interest_usd)
    reading = finite & (close_ms % cadence_ms == 0)
    reading_close = close_ms[reading]
    reading_value = open_interest_usd[reading]
    if reading_close.shape[0] < 2:
        return True, False
    before = np.searchsorted(reading_close, close_ms, side="right") - 1
    after = np.searchsorted(reading_close, close_ms, side="left")
    between = finite & ~reading & (before >= 0) & (after < reading_close.shape[0])
    first, second = before[between], after[between]
    between_idx = np.flatnonzero(between)
    consecutive = reading_close[second] - reading_close[first] == cadence_ms
    first, second, between_idx = first[consecutive], second[consecutive], between_idx[consecutive]
    if not between_idx.size:
        return True, False
    value = open_interest_usd[between_idx]
    earlier, later = reading_value[first], reading_value[second]
    tolerance = READING_RTOL * np.abs(value) + READING_ATOL
    line = earlier + (later - earlier) * (close_ms[between_idx] - reading_close[first]) / cadence_ms
    held = (np.abs(value - earlier) <= tolerance) | (np.abs(value - line) <= tolerance)
    moved = np.abs(later - earlier) > tolerance
    return bool(held.all()), bool(moved.any())


def _explains(close_ms: Int64Array, open_interest_usd: Float64Array, cadence_ms: int, step_ms: int) -> bool:
    """Whether readings every ``cadence_ms`` (bars closing at its multiples) explain every bar between two of them.

    A bar strictly between two consecutive readings (both present) must hold
    the earlier reading (carried forward) or the straight line between the
    two (interpolated). At least one such bar must lie between two readings
    that differ: without one, nothing says the feed is this coarse.
    """
    # A bar the first few readings cannot explain refutes the cadence without reading the rest.
    head = 4 * cadence_ms // step_ms + 64
    if close_ms.shape[0] > 2 * head and not _held_and_moved(close_ms[:head], open_interest_usd[:head], cadence_ms)[0]:
        return False
    held, moved = _held_and_moved(close_ms, open_interest_usd, cadence_ms)
    return held and moved


def open_interest_step_ms(series: MarketSeries) -> int:
    """The cadence of the open interest's own readings, a multiple of the bar width.

    Open interest often comes coarser than the candles (Binance keeps 5m
    history for 1m candles; the recorded 1h files have a reading every 4h)
    and reaches the bars carried forward or linearly interpolated between
    readings. The cadence is the largest of
    :data:`OPEN_INTEREST_CADENCES_MS` (a multiple of the bar width) whose
    readings explain every bar between two of them (see :func:`_explains`);
    the bar width where none larger does.
    """
    step = series.step_ms
    close_ms = series.ts_ms + step
    for cadence in sorted(OPEN_INTEREST_CADENCES_MS, reverse=True):
        if cadence > step and cadence % step == 0 and DAY_MS % cadence == 0 and _explains(close_ms, series.open_interest_usd, cadence, step):
            return cadence
    return step


@dataclass(frozen=True, slots=True)
class OpenInterestReadings:
    """Open interest per bar as its own readings give it (see :func:`open_interest_readings`).

    Attributes
    ----------
    cadence_ms : int
        The readings' cadence (:func:`open_interest_step_ms`).
    level_usd : Float64Array, shape (n,)
        Open interest as last read before the bar's reading step began (the
        first step: its own reading), USD; NaN where unknown.
    new_usd : Float64Array, shape (n,)
        The step's rise of open interest, shared over its bars in proportion
        to their volume (equally where a bar's volume is unknown), USD.
    scale : Float64Array, shape (n,)
        The step's fall ratio spread evenly (geometrically) over its bars; 1
        where it did not fall.
    """

    cadence_ms: int
    level_usd: Float64Array
    new_usd: Float64Array
    scale: Float64Array


def open_interest_readings(series: MarketSeries) -> OpenInterestReadings:
    """Entries and exits from the open interest's own steps, not from values smeared between readings.

    Bars are grouped into reading steps ``((k-1)·c, k·c]`` by their close
    (``c`` the cadence); a step's value is the open interest of its last bar
    with one (the reading). The rise from the previous step's value opens
    positions over the step's bars, the fall shrinks the book over them; a
    step whose value or previous value is unknown changes nothing. With a
    cadence equal to the bar width this is :func:`open_interest_steps`.
    """
    cadence = open_interest_step_ms(series)
    n = len(series)
    if n == 0:
        empty = np.empty(0, dtype=np.float64)
        return OpenInterestReadings(cadence, empty, empty, empty)
    step_key = (series.ts_ms + series.step_ms - 1) // cadence
    starts = np.flatnonzero(np.concatenate(([True], step_key[1:] != step_key[:-1])))
    owner = np.cumsum(np.concatenate(([0], (step_key[1:] != step_key[:-1]).astype(np.int64))))
    count = np.diff(np.concatenate((starts, [n])))
    # The last finite value of each step: carry the values forward, read each step's last bar.
    open_interest = series.open_interest_usd
    last_known = np.where(np.isfinite(open_interest), np.arange(n), -1)
    last_known = np.maximum.accumulate(last_known)
    ends = np.concatenate((starts[1:], [n])) - 1
    known_at_end = last_known[ends]
    value = np.where(known_at_end >= starts, open_interest[np.maximum(known_at_end, 0)], np.nan)
    previous = np.concatenate((value[:1], value[:-1]))
    change = value - previous
    change = np.where(np.isfinite(change), change, 0.0)
    volume = series.volume_usd
    volume_known = np.isfinite(volume) & (volume >= 0)
    step_volume = np.add.reduceat(np.where(volume_known, volume, 0.0), starts)
    by_volume = (np.add.reduceat(volume_known.astype(np.int64), starts) == count) & (step_volume > 0)
    share = np.where(by_volume[owner], np.where(volume_known, volume, 0.0) / np.where(by_volume, step_volume, 1.0)[owner], 1.0 / count[owner])
    falling = change < 0
    ratio = np.where(falling, value / np.where(falling, previous, 1.0), 1.0)
    return OpenInterestReadings(
        cadence_ms=cadence,
        level_usd=previous[owner],
        new_usd=np.maximum(change, 0.0)[owner] * share,
        scale=(ratio ** (1.0 / count))[owner],
    )


def trailing_volatility(series: MarketSeries, half_life_hours: float) -> Float64Array:
    """Volatility per square-root hour known before each bar opens, shape (n,).

    Each bar's Parkinson variance ``ln(high/low)² / (4·ln 2)``, per hour of
    its width, averaged over the bars before it with weights halving every
    ``half_life_hours`` of age (the first bar: its own). Per-hour variance
    adds up over time, so the estimate does not depend much on the bar width.
    """
    n = len(series)
    if n == 0:
        return np.empty(0, dtype=np.float64)
    variance = np.log(series.high / series.low) ** 2 / (4.0 * np.log(2.0)) / (series.step_ms / HOUR_MS)
    age_hours = (series.ts_ms - series.ts_ms[-1]).astype(np.float64) / HOUR_MS
    weight = 0.5 ** (-age_hours / half_life_hours)
    weight_sum = np.cumsum(weight)
    weighted = np.cumsum(weight * variance)
    out = variance.copy()
    known = weight_sum[:-1] > 0
    out[1:] = np.where(known, weighted[:-1] / np.where(known, weight_sum[:-1], 1.0), variance[1:])
    return np.sqrt(out)
