"""model4: a book anchored to open interest that turns over with volume, sized by volatility, on the market's own margin tiers.

The fitted parameters live in ``model4_fit.json`` beside this file, written by
``liqmap calibrate`` (see ``model4.md``); they are part of the parameters,
hence of the hash. The margin table is not a parameter: it is the market's
(a frame records which one it used).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
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
    load_fit,
    open_interest_readings,
    per_step,
    trailing_volatility,
)
from engine.models.margin import MarginTable, shipped_binance_table, tier_multipliers
from engine.series import MarketSeries
from engine.types import Float64Array

NAME = "model4"
FIT_FILE = "model4_fit.json"
DESCRIPTION = (
    "Positions are a share of open interest that turns over with trading: as "
    "volume trades, that share of the book closes and as much opens again "
    "along the bar's path, so the book sits where the market traded and "
    "stays in proportion to open interest; rises of open interest (taken "
    "from its own readings, not from values smeared between them) open more. "
    "The share is larger when the market has been calm (inverse to recent "
    "volatility). Liquidation prices follow the market's own maintenance-margin "
    "tiers. Tier weights, the turnover rate, the volatility exponent and the "
    "share are fitted jointly on BTC, ETH and SOL, on earlier bars than any "
    "it is scored on."
)
# Volatility per square-root hour the leveraged share is stated at.
REFERENCE_VOLATILITY = 0.005
# A step closes at most this share of the book (an absurd volume cannot empty it in one step).
MAX_CLOSED_PER_STEP = 1.0 - 1e-6


FIT = load_fit(FIT_FILE)
VERSION: str = FIT["version"]
CREATED: str = FIT["created"]
_FITTED = FIT["params"]


@dataclass(frozen=True, slots=True)
class Model4Params:
    """Parameters of model4 (defaults: the fit in ``model4_fit.json``).

    Attributes
    ----------
    leverages, weights : tuple of float
        Tiers and the share of the book in each (fitted).
    turnover_rate : float
        Share of the book that closes (and reopens at the current price) per
        unit of turnover, ``volume / open interest`` (fitted).
    turnover_per_hour_unknown : float
        Turnover per hour assumed where a bar's volume is unknown (the median
        of the calibration bars).
    leveraged_share : float
        Book per side as a share of open interest at the reference volatility
        :data:`REFERENCE_VOLATILITY` (fitted so predicted and realized USD meet).
    volatility_exponent : float
        The share scales with ``(reference / trailing volatility) ** exponent`` (fitted).
    volatility_half_life_hours : float
        Half-life of the trailing volatility's weights.
    max_volatility_factor : float
        Cap of that scaling (a flat market would otherwise inflate the book).
    min_position_usd, size_points
        Position sizes per tier, as in :class:`engine.models.model2.Model2Params`.
    """

    leverages: tuple[float, ...] = tuple(_FITTED["leverages"])
    weights: tuple[float, ...] = tuple(_FITTED["weights"])
    turnover_rate: float = float(_FITTED["turnover_rate"])
    turnover_per_hour_unknown: float = float(_FITTED["turnover_per_hour_unknown"])
    leveraged_share: float = float(_FITTED["leveraged_share"])
    volatility_exponent: float = float(_FITTED["volatility_exponent"])
    volatility_half_life_hours: float = float(_FITTED["volatility_half_life_hours"])
    max_volatility_factor: float = 10.0
    min_position_usd: float = 1_000.0
    size_points: int = 3

    def __post_init__(self) -> None:
        check_tiers(self.leverages, self.weights)
        for name in ("turnover_rate", "turnover_per_hour_unknown", "leveraged_share", "volatility_half_life_hours", "max_volatility_factor", "min_position_usd"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number, got {value}")
        if not (math.isfinite(self.volatility_exponent) and self.volatility_exponent >= 0):
            raise ValueError(f"volatility_exponent must be at least 0, got {self.volatility_exponent}")
        if self.size_points < 1:
            raise ValueError(f"size_points must be at least 1, got {self.size_points}")

    def to_json(self) -> dict[str, Any]:
        """The parameters as a JSON-able dict (what the params hash is taken of)."""
        return {
            "entry_price": "segment midpoint",
            "leveraged_share": self.leveraged_share,
            "margin_table": "the market's (recorded in each frame)",
            "max_volatility_factor": self.max_volatility_factor,
            "min_position_usd": self.min_position_usd,
            "open_interest": "entries from its own readings",
            "price_path": "open, nearer extreme, farther extreme, close",
            "reference_volatility": REFERENCE_VOLATILITY,
            "size_points": self.size_points,
            "tiers": [
                {"leverage": leverage, "weight": weight}
                for leverage, weight in zip(self.leverages, self.weights, strict=True)
            ],
            "turnover_per_hour_unknown": self.turnover_per_hour_unknown,
            "turnover_rate": self.turnover_rate,
            "volatility_exponent": self.volatility_exponent,
            "volatility_half_life_hours": self.volatility_half_life_hours,
        }

    def reach(self, margin_table: MarginTable | None = None) -> tuple[float, float]:
        """Lowest and highest liquidation price as multiples of the entry price, under a market's table (default: the shipped default)."""
        if margin_table is None:
            margin_table = shipped_binance_table()
        long_multipliers, short_multipliers = tier_columns(self.leverages, margin_table, self.min_position_usd, self.size_points)
        return float(long_multipliers.min()), float(short_multipliers.max())


@lru_cache(maxsize=64)
def tier_columns(leverages: tuple[float, ...], table: MarginTable, min_position_usd: float, points: int) -> tuple[Float64Array, Float64Array]:
    """Long and short multipliers per (tier, size point), flattened, shape (tiers · points,) each.

    A tier above the market's highest leverage opens at that leverage: the
    venue would not let the position be larger.
    """
    highest = max(max_leverage for _, _, max_leverage in table.brackets)
    offered = tuple(min(leverage, highest) for leverage in leverages)
    long_multipliers, short_multipliers = tier_multipliers(offered, table, min_position_usd, points)
    out = (long_multipliers.reshape(-1), short_multipliers.reshape(-1))
    for array in out:
        array.flags.writeable = False  # shared through the cache
    return out


def volatility_factor(series: MarketSeries, params: Model4Params) -> Float64Array:
    """``(reference / trailing volatility) ** exponent`` per bar, capped; shape (n,)."""
    sigma = trailing_volatility(series, params.volatility_half_life_hours)
    with np.errstate(divide="ignore"):
        factor = (REFERENCE_VOLATILITY / sigma) ** params.volatility_exponent
    return np.minimum(np.where(np.isfinite(factor), factor, params.max_volatility_factor), params.max_volatility_factor)


def turnover(series: MarketSeries, level_usd: Float64Array, per_hour_unknown: float) -> Float64Array:
    """Volume over open interest per bar; ``per_hour_unknown`` × the bar's hours where either is unknown."""
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = series.volume_usd / level_usd
    known = np.isfinite(ratio) & (level_usd > 0) & (series.volume_usd >= 0)
    return np.where(known, ratio, per_hour_unknown * bar_hours(series))


def prepare(series: MarketSeries, grid: PriceGrid, params: Model4Params, margin_table: MarginTable | None = None) -> StepInputs:
    """Per-step inputs of the level recurrence under model4 (see ``model4.md``).

    Each bar is walked as model2's three segments. On each: levels traded
    through are consumed; a falling reading step shrinks the book; a share
    ``1 − exp(−turnover_rate · turnover / 3)`` of the book closes; and each
    side opens ``share · (open interest · that share + the step's rise / 3)``
    at the segment's midpoint, over the tiers by weight and their position
    sizes equally, with ``share = leveraged_share · volatility factor``.

    Parameters
    ----------
    series : MarketSeries
        Window bars, positive finite prices.
    grid : PriceGrid
    params : Model4Params
    margin_table : MarginTable or None
        The market's maintenance-margin brackets; None: the shipped default
        (:func:`engine.models.margin.shipped_binance_table`).
    """
    if margin_table is None:
        margin_table = shipped_binance_table()
    readings = open_interest_readings(series)
    path = candle_path(series)
    closed = 1.0 - np.exp(-params.turnover_rate * turnover(series, readings.level_usd, params.turnover_per_hour_unknown) / PATH_STEPS)
    closed = np.minimum(closed, MAX_CLOSED_PER_STEP)
    share = params.leveraged_share * volatility_factor(series, params)
    level = np.where(np.isfinite(readings.level_usd), readings.level_usd, 0.0)
    opened = share * (level * closed + readings.new_usd / PATH_STEPS)
    long_multipliers, short_multipliers = tier_columns(params.leverages, margin_table, params.min_position_usd, params.size_points)
    points = params.size_points
    new_per_step = per_step(opened, PATH_STEPS)
    return StepInputs(
        long_clear_from=grid.long_clear_from(path.low),
        short_clear_below=grid.short_clear_below(path.high),
        scale=per_step(readings.scale ** (1.0 / PATH_STEPS), PATH_STEPS),
        entry_price=path.entry,
        long_new_usd=new_per_step,
        short_new_usd=new_per_step,
        long_multipliers=long_multipliers,
        short_multipliers=short_multipliers,
        weights=np.repeat(np.asarray(params.weights, dtype=np.float64) / points, points),
        column_tier=np.repeat(np.arange(len(params.leverages), dtype=np.int64), points),
        tier_leverage=np.asarray(params.leverages, dtype=np.float64),
        decay=per_step(1.0 - closed, PATH_STEPS),
        reopen_share=0.0,
        steps_per_bar=PATH_STEPS,
    )
