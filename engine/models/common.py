"""Mechanics several models share: open interest steps, the price path inside a bar, taker flow."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.ranges import HOUR_MS
from engine.series import MarketSeries
from engine.types import Float64Array

# The path inside a bar: open → first extreme → second extreme → close.
PATH_STEPS = 3


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
