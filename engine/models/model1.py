"""model1: every leverage tier at fixed weights, one flat maintenance margin rate.

See ``model1.md`` beside this file for what it assumes and where it is weak.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.grid import PriceGrid
from engine.kernels import StepInputs
from engine.models.common import check_tiers, open_interest_steps, typical_price
from engine.series import MarketSeries
from engine.types import Float64Array

NAME = "model1"
VERSION = "1.0.0"
CREATED = "2026-11-24"
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
        check_tiers(self.leverages, self.weights)
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


def prepare(series: MarketSeries, grid: PriceGrid, params: Model1Params) -> StepInputs:
    """Per-step inputs of the level recurrence under model1: one step per bar, one column per tier.

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
    """
    new_usd, scale = open_interest_steps(series.open_interest_usd)
    tiers = len(params.leverages)
    return StepInputs(
        long_clear_from=grid.long_clear_from(series.low),
        short_clear_below=grid.short_clear_below(series.high),
        scale=scale,
        entry_price=typical_price(series),
        long_new_usd=new_usd * params.long_share,
        short_new_usd=new_usd * (1.0 - params.long_share),
        long_multipliers=params.long_multipliers(),
        short_multipliers=params.short_multipliers(),
        weights=np.asarray(params.weights, dtype=np.float64),
        column_tier=np.arange(tiers, dtype=np.int64),
        tier_leverage=np.asarray(params.leverages, dtype=np.float64),
    )
