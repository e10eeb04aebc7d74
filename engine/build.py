"""From a market series to a Frame: window, base step, grid, model run, candles, stats."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.frame import Frame, FrameCandles, FrameStats
from engine.grid import DEFAULT_ROWS, PriceGrid, price_grid
from engine.kernels import run_levels
from engine.models import ModelSpec, get_model
from engine.ranges import DAY_MS, RANGES, RangeSpec
from engine.resample import aggregate_bars, resample
from engine.series import MarketSeries
from engine.types import Float32Array, Float64Array, Int64Array

# Ranges longer than this run on a base coarser than the input bars: a year of
# 1m bars is half a million steps, and a column of a long range is hours wide,
# so finer steps would cost much and show little.
FULL_RESOLUTION_SPAN_MS = 7 * DAY_MS
# Base steps per column for the longer ranges (30d: 10m, 90d: 30m, 180d: 1h, 1y: 2h).
BASE_STEPS_PER_COLUMN = 12
PERCENTILES = (50, 90, 99)


@dataclass(frozen=True, slots=True)
class ModelRun:
    """A model run over a series, before it is dressed as a Frame.

    Attributes
    ----------
    long_usd, short_usd : Float32Array, shape (columns, rows)
        Outstanding notional per price row at the end of each column, USD.
    consumed_long_usd, consumed_short_usd : Float64Array, shape (n,)
        Notional consumed (the model's liquidations) at each input step, USD.
    out_of_grid_usd : float
        Notional of levels that fell off the grid and were dropped, USD.
    """

    long_usd: Float32Array
    short_usd: Float32Array
    consumed_long_usd: Float64Array
    consumed_short_usd: Float64Array
    out_of_grid_usd: float


def base_step_ms(spec: RangeSpec, series_step_ms: int) -> int:
    """Step the model runs at for a range, given the input bar width.

    Ranges up to 7d use the input bars as they are. Longer ranges use the
    largest multiple of the input step that divides the column width and is at
    most ``column_ms / 12``, or the input step where that is finer already.
    """
    if spec.span_ms <= FULL_RESOLUTION_SPAN_MS:
        return series_step_ms
    target = spec.column_ms // BASE_STEPS_PER_COLUMN
    for multiple in range(target // series_step_ms, 1, -1):
        candidate = multiple * series_step_ms
        if spec.column_ms % candidate == 0:
            return candidate
    return series_step_ms


def column_starts(last_bar_ms: int, spec: RangeSpec) -> Int64Array:
    """Start times of a range's columns, epoch ms, shape (columns,).

    Columns are aligned to multiples of ``column_ms``; the last one contains
    the bar opening at ``last_bar_ms``.
    """
    last_start = (last_bar_ms // spec.column_ms) * spec.column_ms
    first_start = last_start - (spec.columns - 1) * spec.column_ms
    return first_start + np.arange(spec.columns, dtype=np.int64) * spec.column_ms


def run_model(
    series: MarketSeries,
    model: ModelSpec,
    grid: PriceGrid,
    column_start_ms: Int64Array,
    column_ms: int,
    *,
    use_numba: bool | None = None,
) -> ModelRun:
    """Run a model over a series from an empty book, snapshotting at column ends.

    Parameters
    ----------
    series : MarketSeries
        Clean bars (positive finite prices), ``n`` of them; the first bar opens
        nothing, as it has no previous open interest.
    model : ModelSpec
    grid : PriceGrid
    column_start_ms : Int64Array, shape (columns,)
        Ascending column start times, epoch ms; column ``c`` shows the book
        after the last bar opening before ``column_start_ms[c] + column_ms``.
    column_ms : int
        Column width, ms.
    use_numba : bool or None
        See :func:`engine.kernels.run_levels`.

    Returns
    -------
    ModelRun
    """
    inputs = model.prepare(series, grid)
    snapshot_step = np.searchsorted(series.ts_ms, column_start_ms + column_ms, side="left") - 1
    levels = run_levels(inputs, snapshot_step.astype(np.int64), grid.rows, use_numba=use_numba)
    out_of_grid = float(
        inputs.long_add_usd[inputs.long_rows < 0].sum() + inputs.short_add_usd[inputs.short_rows < 0].sum()
    )
    return ModelRun(
        long_usd=levels.long_usd,
        short_usd=levels.short_usd,
        consumed_long_usd=levels.consumed_long_usd,
        consumed_short_usd=levels.consumed_short_usd,
        out_of_grid_usd=out_of_grid,
    )


def column_candles(series: MarketSeries, column_start_ms: Int64Array, column_ms: int) -> FrameCandles:
    """One candle per column from the bars opening inside it; NaN where none do.

    Parameters
    ----------
    series : MarketSeries
        Bars, any step; a bar counts in the column its open time falls in.
    column_start_ms : Int64Array, shape (columns,)
        Consecutive column starts, multiples of ``column_ms``.
    column_ms : int
    """
    columns = column_start_ms.shape[0]
    merged = aggregate_bars(series, column_ms)
    index = (merged.ts_ms - column_start_ms[0]) // column_ms
    inside = (index >= 0) & (index < columns)
    index = index[inside]

    def spread(values: Float64Array) -> Float64Array:
        out = np.full(columns, np.nan, dtype=np.float64)
        out[index] = values[inside]
        return out

    return FrameCandles(
        ts_ms=column_start_ms.astype(np.int64),
        open=spread(merged.open),
        high=spread(merged.high),
        low=spread(merged.low),
        close=spread(merged.close),
        volume_usd=spread(merged.volume_usd),
    )


def frame_stats(long_usd: Float32Array, short_usd: Float32Array, out_of_grid_usd: float = 0.0) -> FrameStats:
    """Summary numbers of a frame's intensity arrays (see :class:`FrameStats`).

    Parameters
    ----------
    long_usd, short_usd : Float32Array, shape (columns, rows)
    out_of_grid_usd : float
    """
    # float32 like the cells themselves: a float64 copy of the frame costs more than the rest.
    combined = long_usd + short_usd
    non_zero = combined[combined > 0]
    if non_zero.size:
        values = np.percentile(non_zero, PERCENTILES)
        percentiles = {f"p{p}": float(v) for p, v in zip(PERCENTILES, values, strict=True)}
    else:
        percentiles = {f"p{p}": 0.0 for p in PERCENTILES}
    return FrameStats(
        total_long_usd=float(long_usd[-1].sum(dtype=np.float64)) if long_usd.size else 0.0,
        total_short_usd=float(short_usd[-1].sum(dtype=np.float64)) if short_usd.size else 0.0,
        max_long_usd=float(long_usd.max(initial=0.0)),
        max_short_usd=float(short_usd.max(initial=0.0)),
        max_cell_usd=float(combined.max(initial=0.0)),
        percentiles=percentiles,
        out_of_grid_usd=out_of_grid_usd,
    )


def _range_spec(range_name: str) -> RangeSpec:
    try:
        return RANGES[range_name]
    except KeyError:
        raise ValueError(f"unknown range {range_name!r}; allowed: {', '.join(RANGES)}") from None


def _check_window(window: MarketSeries) -> None:
    prices = np.concatenate((window.open, window.high, window.low, window.close))
    if not np.all(np.isfinite(prices)) or np.any(prices <= 0):
        raise ValueError("prices in the frame's window must be finite and positive")
    if np.any(window.open_interest_usd < 0):
        raise ValueError("open interest must not be negative")


def build_frame(
    series: MarketSeries,
    *,
    model: str,
    range_name: str,
    exchange: str,
    symbol: str,
    generated_at_ms: int,
    rows: int = DEFAULT_ROWS,
) -> Frame:
    """Compute the heatmap Frame of one range of one market under one model.

    The window is the range's last ``columns`` columns, aligned to multiples
    of the column width, the last one holding the last bar. The model runs
    over the bars inside the window only, from an empty book: positions
    opened before the window are not represented, and the window's first bar
    opens none (it has no previous open interest to compare with).

    Parameters
    ----------
    series : MarketSeries
        Input bars, oldest first; may be longer or shorter than the range.
        NaN open interest is allowed (a change involving it opens and closes
        nothing).
    model : str
        Registered model name (:data:`engine.models.MODELS`).
    range_name : str
        A key of :data:`engine.ranges.RANGES`.
    exchange, symbol : str
        Recorded in the frame.
    generated_at_ms : int
        Computation time, epoch ms, recorded in the frame.
    rows : int
        Number of price rows.

    Returns
    -------
    Frame

    Raises
    ------
    ValueError
        Unknown range or model (the message lists the allowed names), empty
        series, malformed columns, non-positive or non-finite prices in the
        window, negative open interest, fewer than 2 rows.
    """
    spec = get_model(model)
    range_spec = _range_spec(range_name)
    if rows < 2:
        raise ValueError(f"rows must be at least 2, got {rows}")
    if len(series) == 0:
        raise ValueError("the series is empty")
    if series.step_ms <= 0:
        raise ValueError(f"step_ms must be positive, got {series.step_ms}")
    series.validate()

    x_ms = column_starts(int(series.ts_ms[-1]), range_spec)
    first = int(np.searchsorted(series.ts_ms, x_ms[0], side="left"))
    window = series.slice(first, len(series))
    _check_window(window)
    base = resample(window, base_step_ms(range_spec, series.step_ms))
    grid = price_grid(float(base.low.min()), float(base.high.max()), rows=rows, reach=spec.reach)
    run = run_model(base, spec, grid, x_ms, range_spec.column_ms)
    return Frame(
        exchange=exchange,
        symbol=symbol,
        model=spec.name,
        model_version=spec.version,
        params_hash=spec.params_hash,
        range=range_spec.name,
        generated_at_ms=int(generated_at_ms),
        data_until_ms=int(series.ts_ms[-1]) + series.step_ms,
        coverage_start_ms=int(window.ts_ms[0]),
        x_ms=x_ms,
        y=grid.centres,
        long_usd=run.long_usd,
        short_usd=run.short_usd,
        candles=column_candles(window, x_ms, range_spec.column_ms),
        stats=frame_stats(run.long_usd, run.short_usd, run.out_of_grid_usd),
    )
