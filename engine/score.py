"""Scoring a model's consumed notional against realized liquidations, per bar and side.

Realized liquidations come as per-bar totals per side (a liquidation in a bar
happened somewhere inside its [low, high]); a model says how much it saw
consumed in the same bar. Both are compared by rank (Spearman), which asks
only whether the model orders bars the way reality does, and by the ratio
of totals, which asks whether its scale is right.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.types import Float64Array


def average_ranks(values: Float64Array) -> Float64Array:
    """Ranks 1..n of ``values``, ties sharing the average of their ranks, shape (n,)."""
    values = np.asarray(values, dtype=np.float64)
    n = values.shape[0]
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    boundaries = np.flatnonzero(ordered[1:] != ordered[:-1]) + 1
    starts = np.concatenate(([0], boundaries))
    stops = np.concatenate((boundaries, [n]))
    # 1-based ranks start+1 .. stop average to (start + stop + 1) / 2.
    ranks = np.empty(n, dtype=np.float64)
    ranks[order] = np.repeat((starts + stops + 1) / 2.0, stops - starts)
    return ranks


def spearman(predicted: Float64Array, realized: Float64Array) -> float | None:
    """Spearman rank correlation (Pearson correlation of average ranks).

    Returns
    -------
    float or None
        In [-1, 1]; None when either side is constant (no ranking to compare)
        or there are fewer than 2 values.
    """
    predicted = np.asarray(predicted, dtype=np.float64)
    realized = np.asarray(realized, dtype=np.float64)
    if predicted.shape != realized.shape or predicted.ndim != 1:
        raise ValueError(f"need two 1-d arrays of one length, got {predicted.shape} and {realized.shape}")
    if predicted.shape[0] < 2:
        return None
    a = average_ranks(predicted)
    b = average_ranks(realized)
    a -= a.mean()
    b -= b.mean()
    denominator = float(np.sqrt((a * a).sum() * (b * b).sum()))
    if denominator == 0.0:
        return None
    return float(np.clip((a * b).sum() / denominator, -1.0, 1.0))


def excursion_baseline(
    open_: Float64Array, high: Float64Array, low: Float64Array, open_interest_usd: Float64Array
) -> tuple[Float64Array, Float64Array]:
    """Price excursion × open interest per bar, the baseline a model has to beat.

    Longs: ``max(open − low, 0) / open · OI``; shorts: ``max(high − open, 0) / open · OI``,
    with ``OI`` the open interest standing when the bar opens.

    Returns
    -------
    long_usd, short_usd : Float64Array, shape (n,)
    """
    long_usd = np.maximum(open_ - low, 0.0) / open_ * open_interest_usd
    short_usd = np.maximum(high - open_, 0.0) / open_ * open_interest_usd
    return long_usd, short_usd


@dataclass(frozen=True, slots=True)
class SideScore:
    """One side's comparison.

    Attributes
    ----------
    spearman : float or None
        The model's Spearman against realized liquidations.
    baseline_spearman : float or None
        The bar baseline's: one excursion per scored bar (its open to its extreme).
    path_baseline_spearman : float or None
        The path baseline's: every candle's own excursion summed over the scored bar.
    predicted_to_realized : float or None
        Ratio of totals (None if nothing was realized).
    predicted_usd, realized_usd : float
        Totals over the scored bars, USD.
    """

    spearman: float | None
    baseline_spearman: float | None
    path_baseline_spearman: float | None
    predicted_to_realized: float | None
    predicted_usd: float
    realized_usd: float

    @property
    def stronger_baseline_spearman(self) -> float | None:
        """The higher of the two baselines' Spearman: the one a model has to beat."""
        known = [value for value in (self.baseline_spearman, self.path_baseline_spearman) if value is not None]
        return max(known) if known else None

    @property
    def margin(self) -> float | None:
        """The model's Spearman minus the stronger baseline's."""
        stronger = self.stronger_baseline_spearman
        return None if self.spearman is None or stronger is None else self.spearman - stronger


def score_side(predicted: Float64Array, realized: Float64Array, baseline: Float64Array, path_baseline: Float64Array) -> SideScore:
    """Spearman of the model and both baselines against realized, and the ratio of totals."""
    realized_total = float(np.sum(realized))
    predicted_total = float(np.sum(predicted))
    return SideScore(
        spearman=spearman(predicted, realized),
        baseline_spearman=spearman(baseline, realized),
        path_baseline_spearman=spearman(path_baseline, realized),
        predicted_to_realized=predicted_total / realized_total if realized_total > 0 else None,
        predicted_usd=predicted_total,
        realized_usd=realized_total,
    )
