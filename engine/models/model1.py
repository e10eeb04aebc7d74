"""model1: every leverage tier at fixed weights, one flat maintenance margin rate.

See ``model1.md`` beside this file for what it assumes and where it is weak.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.grid import PriceGrid
from engine.kernels import StepInputs
from engine.series import MarketSeries
from engine.types import Float64Array

NAME = "model1"
VERSION = "1.0.0"
DESCRIPTION = (
    "Every rise in open interest opens equal long and short positions at the bar's "
    "typical price, spread over 5/10/25/50/100x leverage at fixed weights; each "
    "position's liquidation price uses one flat maintenance margin rate. A level "
    "disappears once price trades through it, and falling open interest shrinks "
    "all outstanding levels in proportion."
)


@dataclass(frozen=True, slots=True)
class Model1Params:
    """Parameters of model1.

    Attributes
    ----------
    leverages : tuple of float
        Leverage of each tier (> 1 each).
    weights : tuple of float
        Share of new open interest going to each tier; non-negative, sums to 1.
    mmr : float
        Maintenance margin rate, a fraction of notional, the same for every tier.
    long_share : float
        Share of new open interest opening long positions; the rest opens shorts.
    """

    leverages: tuple[float, ...] = (5.0, 10.0, 25.0, 50.0, 100.0)
    weights: tuple[float, ...] = (0.15, 0.30, 0.25, 0.20, 0.10)
    mmr: float = 0.004
    long_share: float = 0.5

    def __post_init__(self) -> None:
        if len(self.leverages) != len(self.weights) or not self.leverages:
            raise ValueError("leverages and weights must be non-empty and of one length")
        if any(leverage <= 1 for leverage in self.leverages):
            raise ValueError(f"every leverage must exceed 1, got {self.leverages}")
        if any(weight < 0 for weight in self.weights) or abs(sum(self.weights) - 1.0) > 1e-9:
            raise ValueError(f"weights must be non-negative and sum to 1, got {self.weights}")
        if not 0 <= self.mmr < 1 / max(self.leverages):
            # Beyond 1/L a long would be liquidated above its own entry.
            raise ValueError(f"mmr must lie in [0, 1/max leverage), got {self.mmr}")
        if not 0 <= self.long_share <= 1:
            raise ValueError(f"long_share must lie in [0, 1], got {self.long_share}")

    def to_json(self) -> dict[str, Any]:
        """The parameters as a JSON-able dict (what the params hash is taken of)."""
        return {
            "entry_price": "typical",
            "long_share": self.long_share,
            "mmr": self.mmr,
            "tiers": [
                {"leverage": leverage, "weight": weight}
                for leverage, weight in zip(self.leverages, self.weights, strict=True)
            ],
        }

    def long_multipliers(self) -> Float64Array:
        """Long liquidation price over entry price per tier, ``1 - 1/L + mmr``, shape (k,)."""
        leverage = np.asarray(self.leverages, dtype=np.float64)
        return 1.0 - 1.0 / leverage + self.mmr

    def short_multipliers(self) -> Float64Array:
        """Short liquidation price over entry price per tier, ``1 + 1/L - mmr``, shape (k,)."""
        leverage = np.asarray(self.leverages, dtype=np.float64)
        return 1.0 + 1.0 / leverage - self.mmr

    def reach(self) -> tuple[float, float]:
        """Lowest and highest liquidation price as multiples of the entry price."""
        return float(self.long_multipliers().min()), float(self.short_multipliers().max())


def entry_price(series: MarketSeries) -> Float64Array:
    """Typical price ``(high + low + close) / 3`` per bar, USD, shape (n,)."""
    return (series.high + series.low + series.close) / 3.0


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


def prepare(series: MarketSeries, grid: PriceGrid, params: Model1Params) -> StepInputs:
    """Per-step inputs of the level recurrence under model1.

    Parameters
    ----------
    series : MarketSeries
        Window bars, ``n`` of them, positive finite prices.
    grid : PriceGrid
        Rows levels are snapped into (a level belongs to the row its exact
        price falls in) and whose centres decide consumption.
    params : Model1Params

    Returns
    -------
    StepInputs
        ``k`` = number of tiers additions per side and step.
    """
    new_usd, scale = open_interest_steps(series.open_interest_usd)
    entry = entry_price(series)
    weights = np.asarray(params.weights, dtype=np.float64)
    long_price = entry[:, None] * params.long_multipliers()[None, :]
    short_price = entry[:, None] * params.short_multipliers()[None, :]
    long_usd = (new_usd * params.long_share)[:, None] * weights[None, :]
    short_usd = (new_usd * (1.0 - params.long_share))[:, None] * weights[None, :]
    return StepInputs(
        long_clear_from=grid.long_clear_from(series.low),
        short_clear_below=grid.short_clear_below(series.high),
        scale=scale,
        long_rows=grid.row_of(long_price),
        long_add_usd=long_usd,
        short_rows=grid.row_of(short_price),
        short_add_usd=short_usd,
    )
