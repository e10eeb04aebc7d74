"""Fitting model3 and model4 to realized liquidations: tier weights, decay, leveraged share.

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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import numpy as np

from engine.backtest import RealizedLiquidations, consumption, join_bars, per_liquidation_bar, scored_bars
from engine.models import model3_spec, model4_spec
from engine.models.margin import MarginTable
from engine.models.model3 import CANDIDATE_LEVERAGES, Model3Params
from engine.models.model4 import Model4Params
from engine.ranges import HOUR_MS
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


def _fitted(params: Any, names: Sequence[str]) -> dict[str, Any]:
    """Tiers, weights and the named parameters, as a fit file stores them."""
    return {"leverages": list(params.leverages), "weights": list(params.weights), **{name: getattr(params, name) for name in names}}


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
        return _fitted(self.params, ("half_life_hours", "reopen_share", "leveraged_share"))


def _objective(long_by_tier: Float64Array, short_by_tier: Float64Array, realized_long: Float64Array, realized_short: Float64Array, weights: Float64Array) -> float:
    long_score = spearman(long_by_tier @ weights, realized_long)
    short_score = spearman(short_by_tier @ weights, realized_short)
    return ((long_score or 0.0) + (short_score or 0.0)) / 2.0


Objective = Callable[[Float64Array], float]


def _search_weights(value: Objective, tiers: int) -> tuple[Float64Array, float]:
    """Coordinate steps in log space (halving step sizes, a fixed sweep order) maximising ``value(weights)``."""
    log_weights = np.zeros(tiers)

    def at(candidate: Float64Array) -> float:
        return value(np.exp(candidate - candidate.max()))

    best = at(log_weights)
    for step in LOG_STEPS:
        for _ in range(MAX_SWEEPS):
            improved = False
            for tier in range(tiers):
                for direction in (1.0, -1.0):
                    candidate = log_weights.copy()
                    candidate[tier] = max(candidate[tier] + direction * step, candidate.max() + LOG_FLOOR)
                    score = at(candidate)
                    if score > best + MIN_GAIN:
                        best, log_weights, improved = score, candidate, True
            if not improved:
                break
    weights = np.exp(log_weights - log_weights.max())
    return weights / weights.sum(), best


def _prune(weights: Float64Array, value: Objective) -> Float64Array:
    """Drop light tiers (lightest first) wherever that costs less than ``MIN_GAIN``."""
    weights = weights.copy()
    current = value(weights)
    for tier in np.argsort(weights, kind="stable"):
        if weights[tier] >= MIN_WEIGHT or np.count_nonzero(weights) == 1:
            continue
        candidate = weights.copy()
        candidate[tier] = 0.0
        candidate /= candidate.sum()
        score = value(candidate)
        if score > current - MIN_GAIN:
            weights, current = candidate, score
    return weights


def _fit_weights(value: Objective, tiers: int) -> tuple[Float64Array, float]:
    """Searched, then pruned weights and their objective."""
    weights, _ = _search_weights(value, tiers)
    weights = _prune(weights, value)
    return weights, value(weights)


def _rounded(weights: Float64Array, leverages: Sequence[float]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The tiers with weight, weights rounded to 4 decimals summing to exactly 1."""
    keep = weights > 0
    kept = weights[keep] / weights[keep].sum()
    rounded = [round(float(w), 4) for w in kept]
    largest = int(np.argmax(kept))
    rounded[largest] = round(1.0 - (sum(rounded) - rounded[largest]), 4)
    return tuple(float(v) for v in np.asarray(leverages)[keep]), tuple(rounded)


def before(series: MarketSeries, until_ms: int) -> MarketSeries:
    """The bars opening before ``until_ms``: a fit never reads later ones."""
    return series.slice(0, int(np.searchsorted(series.ts_ms, until_ms, side="left")))


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
        Candles with open interest; rows before ``from_ms`` warm the book up,
        rows from ``until_ms`` on are cut off before anything is run (even the
        backtest grid's price range must not see them).
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
    series = before(series, until_ms)
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
        weights, value = _fit_weights(partial(_objective, long_by_tier, short_by_tier, realized_long, realized_short), tiers)
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


# model4's candidates: the share of the book turning over per unit of volume/OI,
# and the exponent of the volatility scaling of the leveraged share.
TURNOVER_RATES: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0)
VOLATILITY_EXPONENTS: tuple[float, ...] = (0.0, 0.5, 1.0, 1.5)
VOLATILITY_HALF_LIFE_HOURS = 168.0
MODEL4_FITTED = ("turnover_rate", "turnover_per_hour_unknown", "leveraged_share", "volatility_exponent", "volatility_half_life_hours")
# Candidates whose rank objective is within this of the best are told apart
# by how evenly their USD scale fits every market and side.
OBJECTIVE_TOLERANCE = 2e-3


@dataclass(frozen=True, slots=True)
class CalibrationMarket:
    """One market a model is fitted on: its bars, realized liquidations and margin table."""

    name: str
    series: MarketSeries
    liquidations: RealizedLiquidations
    margin_table: MarginTable


@dataclass(frozen=True, slots=True)
class _Fitting:
    """One market's calibration bars and their realized USD."""

    market: CalibrationMarket
    join: Any
    mask: np.ndarray
    realized_long: Float64Array
    realized_short: Float64Array

    def by_tier(self, params: Model4Params) -> tuple[Float64Array, Float64Array]:
        """Per calibration bar, each tier's consumed USD, shape (bars, tiers) per side."""
        run = consumption(self.market.series, model4_spec(params), margin_table=self.market.margin_table)
        m = len(self.market.liquidations)
        tiers = len(params.leverages)
        long_by_tier = np.stack([per_liquidation_bar(run.consumed_long_by_tier[:, g], self.join, m)[self.mask] for g in range(tiers)], axis=1)
        short_by_tier = np.stack([per_liquidation_bar(run.consumed_short_by_tier[:, g], self.join, m)[self.mask] for g in range(tiers)], axis=1)
        return long_by_tier, short_by_tier


@dataclass(frozen=True, slots=True)
class Model4Calibration:
    """A model4 fit over several markets.

    Attributes
    ----------
    params : Model4Params
    objective : float
        Mean over markets of the mean of both sides' Spearman on the calibration bars.
    markets : dict
        Per market: ``bars``, ``spearman_long/short`` and
        ``predicted_to_realized_long/short`` on its calibration bars, with ``params``.
    from_ms, until_ms : int
        Calibration bars: ``[from_ms, until_ms)``.
    candidates : list of dict
        The grid's trace: ``turnover_rate``, ``volatility_exponent``,
        ``objective`` and ``log_ratio_spread`` (standard deviation over markets
        and sides of the log of predicted over realized USD).
    """

    params: Model4Params
    objective: float
    markets: dict[str, dict[str, float]]
    from_ms: int
    until_ms: int
    candidates: list[dict[str, float]]

    def fitted_params(self) -> dict[str, Any]:
        """The fitted part of the parameters, as stored in ``model4_fit.json``."""
        return _fitted(self.params, MODEL4_FITTED)


def _mean_spearman(fittings: Sequence[_Fitting], by_tier: Sequence[tuple[Float64Array, Float64Array]], weights: Float64Array) -> float:
    return float(
        np.mean(
            [
                _objective(long_by_tier, short_by_tier, fitting.realized_long, fitting.realized_short, weights)
                for fitting, (long_by_tier, short_by_tier) in zip(fittings, by_tier, strict=True)
            ]
        )
    )


def _log_ratios(fittings: Sequence[_Fitting], by_tier: Sequence[tuple[Float64Array, Float64Array]], weights: Float64Array) -> Float64Array:
    """log(predicted / realized USD) per market and side, at a leveraged share of 1."""
    out = []
    for fitting, (long_by_tier, short_by_tier) in zip(fittings, by_tier, strict=True):
        out.append(math.log((long_by_tier @ weights).sum() / fitting.realized_long.sum()))
        out.append(math.log((short_by_tier @ weights).sum() / fitting.realized_short.sum()))
    return np.asarray(out)


def unknown_volume_turnover(markets: Sequence[CalibrationMarket], until_ms: int) -> float:
    """Median volume over open interest per hour of the bars before ``until_ms`` (2 significant digits)."""
    turnovers = []
    for market in markets:
        series = market.series
        keep = (series.ts_ms < until_ms) & np.isfinite(series.volume_usd) & (series.open_interest_usd > 0)
        turnovers.append(series.volume_usd[keep] / series.open_interest_usd[keep] / (series.step_ms / HOUR_MS))
    joined = np.concatenate(turnovers)
    if not joined.size:
        raise ValueError("no bar with volume and open interest before the cutoff to tell the typical turnover")
    return _significant(float(np.median(joined)), 2)


def calibrate_model4(
    markets: Sequence[CalibrationMarket],
    *,
    from_ms: int,
    until_ms: int,
    turnover_rates: Sequence[float] = TURNOVER_RATES,
    volatility_exponents: Sequence[float] = VOLATILITY_EXPONENTS,
    leverages: Sequence[float] = CANDIDATE_LEVERAGES,
) -> Model4Calibration:
    """Fit model4 on several markets at once (one set of parameters for all).

    For every (turnover rate, volatility exponent) of the grid: one run per
    market with every candidate tier at unit weight gives each tier's
    consumption per calibration bar (tiers never mix and each tier's output is
    proportional to its weight); weights are searched as for model3, for the
    mean over markets of both sides' Spearman. Of the candidates within
    :data:`OBJECTIVE_TOLERANCE` of the best objective, the one whose USD scale
    is most even over markets and sides wins (the exponent mainly moves that
    scale between calmer and wilder markets). The leveraged share then makes
    predicted and realized USD meet (geometric mean over markets and sides).
    Bars from ``until_ms`` on are cut off before anything is run.

    Raises
    ------
    ValueError
        No markets, or a market without calibration bars or without realized liquidations.
    """
    if not markets:
        raise ValueError("calibrate_model4 needs at least one market")
    fittings = []
    for market in markets:
        market = replace(market, series=before(market.series, until_ms))
        join = join_bars(market.series, market.liquidations)
        mask = scored_bars(market.liquidations, join, from_ms) & (market.liquidations.ts_ms < until_ms)
        realized_long, realized_short = market.liquidations.long_usd[mask], market.liquidations.short_usd[mask]
        if not mask.any() or realized_long.sum() <= 0 or realized_short.sum() <= 0:
            raise ValueError(f"{market.name}: no liquidation bar with realized liquidations on both sides to calibrate on in the given span")
        fittings.append(_Fitting(market, join, mask, realized_long, realized_short))
    unknown = unknown_volume_turnover(markets, until_ms)
    tiers = len(leverages)
    unit = tuple(1.0 / tiers for _ in leverages)
    base = {"leverages": tuple(leverages), "weights": unit, "turnover_per_hour_unknown": unknown, "leveraged_share": 1.0, "volatility_half_life_hours": VOLATILITY_HALF_LIFE_HOURS}
    tried = []
    for rate in turnover_rates:
        for exponent in volatility_exponents:
            params = Model4Params(**base, turnover_rate=rate, volatility_exponent=exponent)
            by_tier = [fitting.by_tier(params) for fitting in fittings]
            weights, value = _fit_weights(partial(_mean_spearman, fittings, by_tier), tiers)
            spread = float(np.std(_log_ratios(fittings, by_tier, weights)))
            tried.append((value, spread, rate, exponent, weights))
    best_value = max(value for value, *_ in tried)
    close_enough = [entry for entry in tried if entry[0] >= best_value - OBJECTIVE_TOLERANCE]
    _, _, rate, exponent, weights = min(close_enough, key=lambda entry: entry[1])
    kept_leverages, kept_weights = _rounded(weights, leverages)
    unscaled = Model4Params(**{**base, "leverages": kept_leverages, "weights": kept_weights}, turnover_rate=rate, volatility_exponent=exponent)
    # A run with the fitted weights: each tier's output already carries its weight.
    by_tier = [fitting.by_tier(unscaled) for fitting in fittings]
    summed = np.ones(len(kept_weights))
    share = _significant(math.exp(-float(np.mean(_log_ratios(fittings, by_tier, summed)))))
    params = Model4Params(**{**base, "leverages": kept_leverages, "weights": kept_weights, "leveraged_share": share}, turnover_rate=rate, volatility_exponent=exponent)
    report: dict[str, dict[str, float]] = {}
    for fitting, (long_by_tier, short_by_tier) in zip(fittings, by_tier, strict=True):
        predicted_long, predicted_short = long_by_tier @ summed * share, short_by_tier @ summed * share
        report[fitting.market.name] = {
            "bars": int(fitting.mask.sum()),
            "spearman_long": spearman(predicted_long, fitting.realized_long) or 0.0,
            "spearman_short": spearman(predicted_short, fitting.realized_short) or 0.0,
            "predicted_to_realized_long": float(predicted_long.sum() / fitting.realized_long.sum()),
            "predicted_to_realized_short": float(predicted_short.sum() / fitting.realized_short.sum()),
        }
    objective = float(np.mean([(r["spearman_long"] + r["spearman_short"]) / 2 for r in report.values()]))
    candidates = [
        {"turnover_rate": rate_, "volatility_exponent": exponent_, "objective": value_, "log_ratio_spread": spread_}
        for value_, spread_, rate_, exponent_, _ in tried
    ]
    return Model4Calibration(params=params, objective=objective, markets=report, from_ms=int(from_ms), until_ms=int(until_ms), candidates=candidates)
