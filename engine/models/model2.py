"""model2: model1 + long/short attribution from taker flow, tiered maintenance margin, a price path inside each bar.

See ``model2.md`` beside this file for what it assumes and where it is weak.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from engine.grid import PriceGrid
from engine.kernels import StepInputs
from engine.models.common import (
    PATH_STEPS,
    bar_hours,
    candle_path,
    check_tiers,
    open_interest_steps,
    per_step,
    taker_long_share,
)
from engine.models.margin import BINANCE_BTCUSDT, MarginTable, tier_multipliers
from engine.series import MarketSeries
from engine.types import Float64Array, Int64Array

NAME = "model2"
VERSION = "2.0.0"
CREATED = "2026-11-24"
DESCRIPTION = (
    "model1 with three refinements: new open interest opens longs and shorts in "
    "proportion to taker buying and selling (half each where the venue reports no "
    "taker flow); liquidation prices follow the venue's tiered maintenance margin "
    "for a spread of position sizes; and each bar is walked as a path (open, the "
    "nearer extreme, the farther extreme, close) so levels opened early in a bar "
    "can be taken out later in the same bar."
)


@dataclass(frozen=True, slots=True)
class Model2Params:
    """Parameters of model2.

    Attributes
    ----------
    leverages : tuple of float
        Leverage of each tier (> 1 each).
    weights : tuple of float
        Share of new open interest going to each tier; non-negative, sums to 1.
    margin_table : MarginTable
        The venue's maintenance-margin brackets.
    min_position_usd : float
        Smallest position size; sizes are log-uniform from here to the
        largest the table allows at each tier's leverage.
    size_points : int
        Position sizes each tier is represented by (quantiles of that spread).
    flow_weight : float
        How strongly taker flow tilts new positions: long share
        ``0.5 + flow_weight · (taker_buy / volume − 0.5)``.
    """

    leverages: tuple[float, ...] = (5.0, 10.0, 25.0, 50.0, 100.0)
    weights: tuple[float, ...] = (0.15, 0.30, 0.25, 0.20, 0.10)
    margin_table: MarginTable = field(default=BINANCE_BTCUSDT)
    min_position_usd: float = 1_000.0
    size_points: int = 3
    flow_weight: float = 1.0

    def __post_init__(self) -> None:
        check_tiers(self.leverages, self.weights)
        if self.size_points < 1:
            raise ValueError(f"size_points must be at least 1, got {self.size_points}")
        if not 0 <= self.flow_weight <= 1:
            raise ValueError(f"flow_weight must lie in [0, 1], got {self.flow_weight}")
        # Refuses tiers the table gives no valid liquidation price for.
        _columns(self.leverages, self.weights, self.margin_table, self.min_position_usd, self.size_points)

    def to_json(self) -> dict[str, Any]:
        """The parameters as a JSON-able dict (what the params hash is taken of)."""
        return {
            "entry_price": "segment midpoint",
            "flow_weight": self.flow_weight,
            "margin_table": self.margin_table.to_json(),
            "min_position_usd": self.min_position_usd,
            "price_path": "open, nearer extreme, farther extreme, close",
            "size_points": self.size_points,
            "tiers": [
                {"leverage": leverage, "weight": weight}
                for leverage, weight in zip(self.leverages, self.weights, strict=True)
            ],
        }

    def columns(self) -> tuple[Float64Array, Float64Array, Float64Array, Int64Array]:
        """Per (tier, size point) column: long and short multipliers, weight and tier, shape (k,) each."""
        return _columns(self.leverages, self.weights, self.margin_table, self.min_position_usd, self.size_points)

    def reach(self) -> tuple[float, float]:
        """Lowest and highest liquidation price as multiples of the entry price."""
        long_multipliers, short_multipliers, _, _ = self.columns()
        return float(long_multipliers.min()), float(short_multipliers.max())


@lru_cache(maxsize=64)
def _columns(
    leverages: tuple[float, ...],
    weights: tuple[float, ...],
    table: MarginTable,
    min_position_usd: float,
    points: int,
) -> tuple[Float64Array, Float64Array, Float64Array, Int64Array]:
    long_multipliers, short_multipliers = tier_multipliers(leverages, table, min_position_usd, points)
    column_weight = np.repeat(np.asarray(weights, dtype=np.float64) / points, points)
    column_tier = np.repeat(np.arange(len(leverages), dtype=np.int64), points)
    out = (long_multipliers.reshape(-1), short_multipliers.reshape(-1), column_weight, column_tier)
    for array in out:
        array.flags.writeable = False  # shared through the cache
    return out


def path_inputs(
    series: MarketSeries,
    grid: PriceGrid,
    params: Model2Params,
    *,
    new_share: float = 1.0,
    half_life_hours: float | None = None,
    reopen_share: float = 0.0,
) -> StepInputs:
    """Per-step inputs of a path model: ``PATH_STEPS`` steps per bar, one column per (tier, size point).

    Each bar's new open interest (times ``new_share``) opens in equal parts
    on its path's segments, at each segment's midpoint; a falling open
    interest's scale factor is spread evenly (geometrically) over the
    segments; with ``half_life_hours`` the book also decays with the time the
    bar advances the clock, and ``reopen_share`` of what decays reopens at
    the segment's entry.

    Parameters
    ----------
    series : MarketSeries
        Window bars, ``n`` of them, positive finite prices.
    grid : PriceGrid
    params : Model2Params
    new_share : float
        Share of new open interest that opens positions in the tiers.
    half_life_hours : float or None
        Half-life of outstanding levels; None for no decay.
    reopen_share : float
        See :class:`engine.kernels.StepInputs`.

    Returns
    -------
    StepInputs
        ``n * PATH_STEPS`` steps.
    """
    new_usd, scale = open_interest_steps(series.open_interest_usd)
    path = candle_path(series)
    long_share = taker_long_share(series, params.flow_weight)
    new_per_step = per_step(new_usd * new_share / PATH_STEPS, PATH_STEPS)
    long_per_step = per_step(long_share, PATH_STEPS)
    decay = None
    if half_life_hours is not None:
        decay = per_step(0.5 ** (bar_hours(series) / (PATH_STEPS * half_life_hours)), PATH_STEPS)
    long_multipliers, short_multipliers, weights, column_tier = params.columns()
    return StepInputs(
        long_clear_from=grid.long_clear_from(path.low),
        short_clear_below=grid.short_clear_below(path.high),
        scale=per_step(scale ** (1.0 / PATH_STEPS), PATH_STEPS),
        entry_price=path.entry,
        long_new_usd=new_per_step * long_per_step,
        short_new_usd=new_per_step * (1.0 - long_per_step),
        long_multipliers=long_multipliers,
        short_multipliers=short_multipliers,
        weights=weights,
        column_tier=column_tier,
        tier_leverage=np.asarray(params.leverages, dtype=np.float64),
        decay=decay,
        reopen_share=reopen_share,
        steps_per_bar=PATH_STEPS,
    )


def prepare(series: MarketSeries, grid: PriceGrid, params: Model2Params) -> StepInputs:
    """Per-step inputs of the level recurrence under model2 (see :func:`path_inputs`)."""
    return path_inputs(series, grid, params)
