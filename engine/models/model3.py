"""model3: model2 + time decay with replacement + tier weights calibrated on realized liquidations.

The fitted parameters live in ``model3_fit.json`` beside this file, written by
``liqmap calibrate`` (see ``model3.md``); they are part of the parameters,
hence of the hash. See ``model3.md`` for what the model assumes and where it
is weak.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.grid import PriceGrid
from engine.kernels import StepInputs
from engine.models.common import load_fit
from engine.models.margin import BINANCE_BTCUSDT, MarginTable
from engine.models.model2 import Model2Params, path_inputs
from engine.series import MarketSeries

NAME = "model3"
FIT_FILE = "model3_fit.json"
DESCRIPTION = (
    "model2 where positions also age: every outstanding level decays with a fitted "
    "half-life and the notional that closes this way reopens at the current price "
    "(the book keeps its size, its mass drifts toward where the market trades). The "
    "leverage tier weights, the half-life and the share of new open interest that is "
    "leveraged are fitted to realized liquidations on earlier data than any bar "
    "the model is scored on."
)
# Tiers the calibration chooses weights among: the leverages the venues' BTC
# brackets offer (Binance: up to 125x).
CANDIDATE_LEVERAGES: tuple[float, ...] = (5.0, 10.0, 20.0, 25.0, 50.0, 75.0, 100.0, 125.0)


FIT = load_fit(FIT_FILE)
VERSION: str = FIT["version"]
CREATED: str = FIT["created"]
_FITTED = FIT["params"]


@dataclass(frozen=True, slots=True)
class Model3Params:
    """Parameters of model3 (defaults: the fit in ``model3_fit.json``).

    Attributes
    ----------
    leverages, weights, margin_table, min_position_usd, size_points, flow_weight
        As in :class:`engine.models.model2.Model2Params`.
    half_life_hours : float
        Half-life of outstanding levels (> 0).
    reopen_share : float
        Share of the notional closed by decay that reopens at the current
        price, in [0, 1] (1: the book keeps its size).
    leveraged_share : float
        Share of new open interest opening positions in the tiers, in (0, 1];
        fitted so the model's consumed notional matches realized liquidations
        over the calibration bars.
    """

    leverages: tuple[float, ...] = tuple(_FITTED["leverages"])
    weights: tuple[float, ...] = tuple(_FITTED["weights"])
    half_life_hours: float = float(_FITTED["half_life_hours"])
    reopen_share: float = float(_FITTED["reopen_share"])
    leveraged_share: float = float(_FITTED["leveraged_share"])
    margin_table: MarginTable = field(default=BINANCE_BTCUSDT)
    min_position_usd: float = 1_000.0
    size_points: int = 3
    flow_weight: float = 1.0

    def __post_init__(self) -> None:
        self.path_params  # noqa: B018 -- validates the shared parameters
        if not self.half_life_hours > 0:
            raise ValueError(f"half_life_hours must be positive, got {self.half_life_hours}")
        if not 0 <= self.reopen_share <= 1:
            raise ValueError(f"reopen_share must lie in [0, 1], got {self.reopen_share}")
        if not 0 < self.leveraged_share <= 1:
            raise ValueError(f"leveraged_share must lie in (0, 1], got {self.leveraged_share}")

    @property
    def path_params(self) -> Model2Params:
        """The model2 part of the parameters."""
        return Model2Params(
            leverages=self.leverages,
            weights=self.weights,
            margin_table=self.margin_table,
            min_position_usd=self.min_position_usd,
            size_points=self.size_points,
            flow_weight=self.flow_weight,
        )

    def to_json(self) -> dict[str, Any]:
        """The parameters as a JSON-able dict (what the params hash is taken of)."""
        out = self.path_params.to_json()
        out.update(
            half_life_hours=self.half_life_hours,
            leveraged_share=self.leveraged_share,
            reopen_share=self.reopen_share,
        )
        return out

    def reach(self) -> tuple[float, float]:
        return self.path_params.reach()


def prepare(series: MarketSeries, grid: PriceGrid, params: Model3Params) -> StepInputs:
    """Per-step inputs of the level recurrence under model3 (model2's path, with decay and reopening)."""
    return path_inputs(
        series,
        grid,
        params.path_params,
        new_share=params.leveraged_share,
        half_life_hours=params.half_life_hours,
        reopen_share=params.reopen_share,
    )
