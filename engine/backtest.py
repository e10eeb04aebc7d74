"""Backtest: run a model over candles and score its consumed notional against realized liquidations.

The model runs over every candle row from an empty book (so rows before the
scored span warm the book up). Realized liquidations come as per-bar totals
per side at a step that is a multiple of the candle step; the model's
consumption in the candle bars inside each liquidation bar is summed. A
liquidation bar is scored when every candle bar inside it is present and it
opens at or after ``from_ms``.

Two baselines, price excursion × open interest
(:func:`engine.score.excursion_baseline`), from the same candles:

- bar baseline: one excursion per liquidation bar, from the open of its first
  candle bar to its highest high / lowest low, times the open interest at the
  close of the candle bar before it (the bar's own first value where there is
  none);
- path baseline: every candle bar's own excursion (its open to its high /
  low) times the open interest at its open (the previous bar's close; its own
  on the first bar), summed over the candle bars of the liquidation bar. It
  sees the path inside the liquidation bar (a drop, a recovery, a second
  drop), which the bar baseline cannot.

A model is compared against the stronger of the two on each side.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.build import ModelRun, run_model
from engine.grid import PriceGrid, price_grid
from engine.models import ModelSpec
from engine.models.margin import MarginTable
from engine.score import SideScore, excursion_baseline, score_side
from engine.series import MarketSeries
from engine.types import Float64Array, Int64Array

# Row height of the backtest grid, basis points of the median price: fine
# enough that snapping a level to its row's centre moves it less than a
# typical 1m bar's range.
ROW_BP = 2.0
MAX_ROWS = 40_000


@dataclass(frozen=True, slots=True)
class RealizedLiquidations:
    """Realized liquidations per bar and side.

    Attributes
    ----------
    step_ms : int
        Bar width, ms.
    ts_ms : Int64Array, shape (m,)
        Bar open times, epoch ms, strictly increasing.
    long_usd, short_usd : Float64Array, shape (m,)
        Liquidated notional of longs / shorts in the bar, USD.
    """

    step_ms: int
    ts_ms: Int64Array
    long_usd: Float64Array
    short_usd: Float64Array

    def __len__(self) -> int:
        return int(self.ts_ms.shape[0])


@dataclass(frozen=True, slots=True)
class BarJoin:
    """Which liquidation bar each candle bar falls in, and which liquidation bars are fully covered.

    Attributes
    ----------
    bucket : Int64Array, shape (n,)
        Liquidation bar index of each candle bar; -1 where none.
    covered : bool array, shape (m,)
        True where every candle bar of the liquidation bar is present.
    first_candle : Int64Array, shape (m,)
        Index of the first candle bar inside each liquidation bar (-1 where none).
    """

    bucket: Int64Array
    covered: np.ndarray
    first_candle: Int64Array


def join_bars(series: MarketSeries, liquidations: RealizedLiquidations) -> BarJoin:
    """Map candle bars onto liquidation bars (see :class:`BarJoin`).

    Raises
    ------
    ValueError
        If the liquidation step is not a positive multiple of the candle step.
    """
    if liquidations.step_ms <= 0 or liquidations.step_ms % series.step_ms != 0:
        raise ValueError(
            f"the liquidation bars ({liquidations.step_ms // 60_000}m) must be a multiple of the candle bars "
            f"({series.step_ms // 60_000}m)"
        )
    m = len(liquidations)
    position = np.searchsorted(liquidations.ts_ms, series.ts_ms, side="right") - 1
    inside = (position >= 0) & (series.ts_ms < liquidations.ts_ms[np.maximum(position, 0)] + liquidations.step_ms)
    bucket = np.where(inside, position, -1).astype(np.int64)
    counts = np.bincount(bucket[bucket >= 0], minlength=m)
    covered = counts == liquidations.step_ms // series.step_ms
    first_candle = np.full(m, -1, dtype=np.int64)
    valid = np.flatnonzero(bucket >= 0)
    # Candle bars are in time order: the first one seen per bucket is its first.
    unique, first_seen = np.unique(bucket[valid], return_index=True)
    first_candle[unique] = valid[first_seen]
    return BarJoin(bucket=bucket, covered=covered, first_candle=first_candle)


def per_liquidation_bar(values: Float64Array, join: BarJoin, m: int) -> Float64Array:
    """Sum of a per-candle-bar quantity over each liquidation bar, shape (m,)."""
    keep = join.bucket >= 0
    return np.bincount(join.bucket[keep], weights=values[keep], minlength=m).astype(np.float64)


def bar_baseline(series: MarketSeries, liquidations: RealizedLiquidations, join: BarJoin) -> tuple[Float64Array, Float64Array]:
    """Excursion × open interest per liquidation bar from the candles inside it, shape (m,) each (NaN where none)."""
    m = len(liquidations)
    keep = join.bucket >= 0
    high = np.full(m, -np.inf)
    low = np.full(m, np.inf)
    np.maximum.at(high, join.bucket[keep], series.high[keep])
    np.minimum.at(low, join.bucket[keep], series.low[keep])
    has = join.first_candle >= 0
    first = np.maximum(join.first_candle, 0)
    open_ = np.where(has, series.open[first], np.nan)
    before = np.maximum(first - 1, 0)
    open_interest = np.where(first > 0, series.open_interest_usd[before], series.open_interest_usd[first])
    open_interest = np.where(has, open_interest, np.nan)
    return excursion_baseline(open_, np.where(has, high, np.nan), np.where(has, low, np.nan), open_interest)


def path_baseline(series: MarketSeries, liquidations: RealizedLiquidations, join: BarJoin) -> tuple[Float64Array, Float64Array]:
    """Every candle bar's excursion × open interest at its open, summed per liquidation bar, shape (m,) each."""
    open_interest = np.concatenate((series.open_interest_usd[:1], series.open_interest_usd[:-1]))
    long_usd, short_usd = excursion_baseline(series.open, series.high, series.low, open_interest)
    m = len(liquidations)
    return per_liquidation_bar(long_usd, join, m), per_liquidation_bar(short_usd, join, m)


def backtest_grid(series: MarketSeries, reach: tuple[float, float], row_bp: float = ROW_BP) -> PriceGrid:
    """A grid holding every level the model can open over the whole series, rows ``row_bp`` of the median price high."""
    low_min, high_max = float(series.low.min()), float(series.high.max())
    lowest, highest = reach
    span = high_max * max(highest, 1.0) - low_min * min(lowest, 1.0)
    height = float(np.median(series.close)) * row_bp * 1e-4
    rows = int(min(max(span / height, 2), MAX_ROWS)) + 1
    return price_grid(low_min, high_max, rows=rows, reach=reach)


def consumption(series: MarketSeries, spec: ModelSpec, *, row_bp: float = ROW_BP, margin_table: MarginTable | None = None) -> ModelRun:
    """The model's run over the whole series on a backtest grid (one snapshot, after the last bar).

    ``margin_table``: the market's, for models that use one (None: their default).
    """
    grid = backtest_grid(series, spec.reach_under(margin_table), row_bp)
    last = np.asarray([series.ts_ms[-1]], dtype=np.int64)
    return run_model(series, spec, grid, last, series.step_ms, margin_table=margin_table)


@dataclass(frozen=True, slots=True)
class BacktestResult:
    """A model's score over the scored liquidation bars."""

    model: str
    version: str
    params_hash: str
    bars: int
    first_bar_ms: int | None
    last_bar_ms: int | None
    from_ms: int | None
    candle_step_ms: int
    liquidation_step_ms: int
    long: SideScore
    short: SideScore
    margin_table: str | None = None

    def to_json(self) -> dict[str, Any]:
        """Flat JSON-able dict (see ``liqmap backtest --json``)."""

        return {
            "model": self.model,
            "version": self.version,
            "params_hash": self.params_hash,
            "bars": self.bars,
            "spearman_long": self.long.spearman,
            "spearman_short": self.short.spearman,
            "baseline_spearman_long": self.long.baseline_spearman,
            "baseline_spearman_short": self.short.baseline_spearman,
            "path_baseline_spearman_long": self.long.path_baseline_spearman,
            "path_baseline_spearman_short": self.short.path_baseline_spearman,
            "stronger_baseline_spearman_long": self.long.stronger_baseline_spearman,
            "stronger_baseline_spearman_short": self.short.stronger_baseline_spearman,
            "margin_long": self.long.margin,
            "margin_short": self.short.margin,
            "predicted_to_realized_long": self.long.predicted_to_realized,
            "predicted_to_realized_short": self.short.predicted_to_realized,
            "predicted_long_usd": self.long.predicted_usd,
            "predicted_short_usd": self.short.predicted_usd,
            "realized_long_usd": self.long.realized_usd,
            "realized_short_usd": self.short.realized_usd,
            "first_bar_ms": self.first_bar_ms,
            "last_bar_ms": self.last_bar_ms,
            "from_ms": self.from_ms,
            "candle_step_ms": self.candle_step_ms,
            "liquidation_step_ms": self.liquidation_step_ms,
            "margin_table": self.margin_table,
        }


def scored_bars(liquidations: RealizedLiquidations, join: BarJoin, from_ms: int | None) -> np.ndarray:
    """Mask of the liquidation bars a backtest scores, shape (m,)."""
    scored = join.covered & np.isfinite(liquidations.long_usd) & np.isfinite(liquidations.short_usd)
    if from_ms is not None:
        scored &= liquidations.ts_ms >= from_ms
    return scored


def run_backtest(
    series: MarketSeries,
    liquidations: RealizedLiquidations,
    spec: ModelSpec,
    *,
    from_ms: int | None = None,
    row_bp: float = ROW_BP,
    margin_table: MarginTable | None = None,
) -> BacktestResult:
    """Score a model against realized liquidations (see the module docstring).

    Parameters
    ----------
    series : MarketSeries
        Candles with open interest, the model's input, all rows.
    liquidations : RealizedLiquidations
    spec : ModelSpec
    from_ms : int or None
        First liquidation bar open time scored; None scores every covered bar.
    row_bp : float
        Row height of the grid, basis points of the median price.
    margin_table : MarginTable or None
        The market's maintenance-margin brackets, for models that place
        levels by them (None: the model's default); the result names its source.

    Raises
    ------
    ValueError
        Incompatible steps, or no liquidation bar left to score.
    """
    join = join_bars(series, liquidations)
    scored = scored_bars(liquidations, join, from_ms)
    if not scored.any():
        raise ValueError("no liquidation bar is fully covered by the candles at or after the start of scoring")
    m = len(liquidations)
    run = consumption(series, spec, row_bp=row_bp, margin_table=margin_table)
    predicted_long = per_liquidation_bar(run.consumed_long_usd, join, m)[scored]
    predicted_short = per_liquidation_bar(run.consumed_short_usd, join, m)[scored]
    baseline_long, baseline_short = bar_baseline(series, liquidations, join)
    path_long, path_short = path_baseline(series, liquidations, join)
    scored_ts = liquidations.ts_ms[scored]
    return BacktestResult(
        model=spec.name,
        version=spec.version,
        params_hash=spec.params_hash,
        bars=int(scored.sum()),
        first_bar_ms=int(scored_ts[0]),
        last_bar_ms=int(scored_ts[-1]),
        from_ms=from_ms,
        candle_step_ms=series.step_ms,
        liquidation_step_ms=liquidations.step_ms,
        long=score_side(predicted_long, liquidations.long_usd[scored], baseline_long[scored], path_long[scored]),
        short=score_side(predicted_short, liquidations.short_usd[scored], baseline_short[scored], path_short[scored]),
        margin_table=(margin_table.source if margin_table is not None else "model default") if spec.takes_margin_table else None,
    )
