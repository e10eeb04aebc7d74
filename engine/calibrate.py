"""Fitting model3 to realized liquidations: tier weights, half-life, leveraged share.

Deterministic and fast because of two properties of the level recurrence:
tiers never mix, and with decay and reopening proportional to each tier's
own book, a tier's consumption is proportional to its weight. So one run per
candidate half-life, with every candidate tier at unit weight, gives each
tier's consumption per bar; any weighting is then a matrix-vector product,
and the search over weights never reruns the model.

The objective is the mean of the long and short Spearman correlations
between the weighted consumption and realized liquidations over the
calibration bars only (``from_ms <= bar < until_ms``); bars after
``until_ms`` are never looked at. Weights are searched in log space by
coordinate steps (halving step sizes, a fixed sweep order), so the same data
always gives the same fit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.backtest import RealizedLiquidations, consumption, join_bars, per_liquidation_bar, scored_bars
from engine.models import model3_spec
from engine.models.model3 import CANDIDATE_LEVERAGES, Model3Params
from engine.score import spearman
from engine.series import MarketSeries
from engine.types import Float64Array

HALF_LIVES_HOURS: tuple[float, ...] = (3.0, 6.0, 12.0, 24.0, 48.0, 96.0, 192.0)
LOG_STEPS: tuple[float, ...] = (2.0, 1.0, 0.5, 0.25)
MAX_SWEEPS = 8
# A step is taken only if it raises the objective by this much: the objective
# is flat along tiers that are rarely consumed (far, low-leverage ones), and
# without a threshold the search drifts along such directions for nothing.
MIN_GAIN = 2e-4
# Tiers whose fitted weight falls below this are dropped (the rest
# renormalised) when that costs the objective less than MIN_GAIN.
MIN_WEIGHT = 0.02
# Weights below exp(LOG_FLOOR) of the largest count as zero during the search.
LOG_FLOOR = -8.0


@dataclass(frozen=True, slots=True)
class Calibration:
    """A model3 fit.

    Attributes
    ----------
    params : Model3Params
        The fitted parameters (margin table, sizes and flow weight at their defaults).
    objective : float
        Mean of the two sides' Spearman on the calibration bars, with ``params``.
    spearman_long, spearman_short : float
        The two sides' Spearman on the calibration bars.
    predicted_to_realized_long, predicted_to_realized_short : float
        Ratio of totals on the calibration bars, with the fitted leveraged share.
    bars : int
        Calibration bars used.
    from_ms, until_ms : int
        Span of the calibration bars (``until_ms`` exclusive).
    candidates : list of dict
        Objective reached at each candidate half-life (the search's trace).
    """

    params: Model3Params
    objective: float
    spearman_long: float
    spearman_short: float
    predicted_to_realized_long: float
    predicted_to_realized_short: float
    bars: int
    from_ms: int
    until_ms: int
    candidates: list[dict[str, float]]

    def fitted_params(self) -> dict[str, Any]:
        """The fitted part of the parameters, as stored in ``model3_fit.json``."""
        return {
            "leverages": list(self.params.leverages),
            "weights": list(self.params.weights),
            "half_life_hours": self.params.half_life_hours,
            "reopen_share": self.params.reopen_share,
            "leveraged_share": self.params.leveraged_share,
        }


def _objective(long_by_tier: Float64Array, short_by_tier: Float64Array, realized_long: Float64Array, realized_short: Float64Array, weights: Float64Array) -> float:
    long_score = spearman(long_by_tier @ weights, realized_long)
    short_score = spearman(short_by_tier @ weights, realized_short)
    return ((long_score or 0.0) + (short_score or 0.0)) / 2.0


def _search_weights(
    long_by_tier: Float64Array, short_by_tier: Float64Array, realized_long: Float64Array, realized_short: Float64Array
) -> tuple[Float64Array, float]:
    tiers = long_by_tier.shape[1]
    log_weights = np.zeros(tiers)

    def value(candidate: Float64Array) -> float:
        return _objective(long_by_tier, short_by_tier, realized_long, realized_short, np.exp(candidate - candidate.max()))

    best = value(log_weights)
    for step in LOG_STEPS:
        for _ in range(MAX_SWEEPS):
            improved = False
            for tier in range(tiers):
                for direction in (1.0, -1.0):
                    candidate = log_weights.copy()
                    candidate[tier] = max(candidate[tier] + direction * step, candidate.max() + LOG_FLOOR)
                    score = value(candidate)
                    if score > best + MIN_GAIN:
                        best, log_weights, improved = score, candidate, True
            if not improved:
                break
    weights = np.exp(log_weights - log_weights.max())
    return weights / weights.sum(), best


def _prune(
    weights: Float64Array,
    long_by_tier: Float64Array,
    short_by_tier: Float64Array,
    realized_long: Float64Array,
    realized_short: Float64Array,
) -> Float64Array:
    """Drop light tiers (lightest first) wherever that costs less than ``MIN_GAIN``."""
    weights = weights.copy()
    current = _objective(long_by_tier, short_by_tier, realized_long, realized_short, weights)
    for tier in np.argsort(weights, kind="stable"):
        if weights[tier] >= MIN_WEIGHT or np.count_nonzero(weights) == 1:
            continue
        candidate = weights.copy()
        candidate[tier] = 0.0
        candidate /= candidate.sum()
        value = _objective(long_by_tier, short_by_tier, realized_long, realized_short, candidate)
        if value > current - MIN_GAIN:
            weights, current = candidate, value
    return weights


def _rounded(weights: Float64Array, leverages: Sequence[float]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The tiers with weight, weights rounded to 4 decimals summing to exactly 1."""
    keep = weights > 0
    kept = weights[keep] / weights[keep].sum()
    rounded = [round(float(w), 4) for w in kept]
    largest = int(np.argmax(kept))
    rounded[largest] = round(1.0 - (sum(rounded) - rounded[largest]), 4)
    return tuple(float(v) for v in np.asarray(leverages)[keep]), tuple(rounded)


def _significant(value: float, digits: int = 4) -> float:
    if value == 0:
        return 0.0
    return round(value, digits - 1 - int(math.floor(math.log10(abs(value)))))


def calibrate_model3(
    series: MarketSeries,
    liquidations: RealizedLiquidations,
    *,
    from_ms: int,
    until_ms: int,
    half_lives_hours: Sequence[float] = HALF_LIVES_HOURS,
    leverages: Sequence[float] = CANDIDATE_LEVERAGES,
) -> Calibration:
    """Fit model3's tier weights, half-life and leveraged share (see the module docstring).

    Parameters
    ----------
    series : MarketSeries
        Candles with open interest; every row is run (rows before ``from_ms``
        warm the book up), but only bars before ``until_ms`` are scored. Pass
        a series that ends at ``until_ms`` to be sure nothing later is read.
    liquidations : RealizedLiquidations
    from_ms, until_ms : int
        Calibration bars: liquidation bars opening in ``[from_ms, until_ms)``.
    half_lives_hours : sequence of float
        Candidate half-lives.
    leverages : sequence of float
        Candidate tiers.

    Raises
    ------
    ValueError
        No calibration bar.
    """
    join = join_bars(series, liquidations)
    mask = scored_bars(liquidations, join, from_ms) & (liquidations.ts_ms < until_ms)
    if not mask.any():
        raise ValueError("no liquidation bar to calibrate on in the given span")
    m = len(liquidations)
    realized_long = liquidations.long_usd[mask]
    realized_short = liquidations.short_usd[mask]
    tiers = len(leverages)
    unit = tuple(1.0 / tiers for _ in leverages)
    candidates: list[dict[str, float]] = []
    best: tuple[float, float, Float64Array] | None = None
    for half_life in half_lives_hours:
        params = Model3Params(leverages=tuple(leverages), weights=unit, half_life_hours=half_life, reopen_share=1.0, leveraged_share=1.0)
        run = consumption(series, model3_spec(params))
        long_by_tier = np.stack([per_liquidation_bar(run.consumed_long_by_tier[:, g], join, m)[mask] for g in range(tiers)], axis=1)
        short_by_tier = np.stack([per_liquidation_bar(run.consumed_short_by_tier[:, g], join, m)[mask] for g in range(tiers)], axis=1)
        weights, value = _search_weights(long_by_tier, short_by_tier, realized_long, realized_short)
        weights = _prune(weights, long_by_tier, short_by_tier, realized_long, realized_short)
        value = _objective(long_by_tier, short_by_tier, realized_long, realized_short, weights)
        candidates.append({"half_life_hours": half_life, "objective": value})
        if best is None or value > best[0] + 1e-9:
            best = (value, half_life, weights)
    assert best is not None
    _, half_life, weights = best
    kept_leverages, kept_weights = _rounded(weights, leverages)
    unscaled = Model3Params(leverages=kept_leverages, weights=kept_weights, half_life_hours=half_life, reopen_share=1.0, leveraged_share=1.0)
    run = consumption(series, model3_spec(unscaled))
    predicted_long = per_liquidation_bar(run.consumed_long_usd, join, m)[mask]
    predicted_short = per_liquidation_bar(run.consumed_short_usd, join, m)[mask]
    ratio = math.sqrt(predicted_long.sum() / realized_long.sum() * predicted_short.sum() / realized_short.sum())
    share = _significant(min(1.0, 1.0 / ratio)) if ratio > 0 else 1.0
    params = Model3Params(leverages=kept_leverages, weights=kept_weights, half_life_hours=half_life, reopen_share=1.0, leveraged_share=share)
    long_score = spearman(predicted_long, realized_long) or 0.0
    short_score = spearman(predicted_short, realized_short) or 0.0
    return Calibration(
        params=params,
        objective=(long_score + short_score) / 2.0,
        spearman_long=long_score,
        spearman_short=short_score,
        predicted_to_realized_long=float(predicted_long.sum() * share / realized_long.sum()),
        predicted_to_realized_short=float(predicted_short.sum() * share / realized_short.sum()),
        bars=int(mask.sum()),
        from_ms=int(from_ms),
        until_ms=int(until_ms),
        candidates=candidates,
    )
