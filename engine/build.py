"""From a market series to Frames: window, base step, grid, model run, candles, stats, clusters."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.clusters import find_clusters
from engine.frame import Frame, FrameCandles, FrameStats
from engine.grid import DEFAULT_ROWS, PriceGrid, display_grid
from engine.kernels import run_levels
from engine.leverage import LeverageSpec, select_tiers
from engine.models import ModelSpec, get_model
from engine.models.margin import MarginTable, shipped_binance_table
from engine.percentiles import cell_stats
from engine.ranges import RANGES, RangeSpec, base_step_ms
from engine.resample import aggregate_bars, resample
from engine.rollup import COMMON_STEP_MS, INPUT_STEP_MS, Rollup, rollup_base
from engine.series import MarketSeries
from engine.types import Float32Array, Float64Array, Int64Array

PERCENTILES = (50, 90, 99)


@dataclass(frozen=True, slots=True)
class ModelRun:
    """A model run over a series, before it is dressed as a Frame.

    Attributes
    ----------
    long_usd, short_usd : Float32Array, shape (columns, rows)
        Outstanding notional per price row at the end of each column, summed
        over the selected tiers, USD.
    consumed_long_usd, consumed_short_usd : Float64Array, shape (n,)
        Notional consumed (the model's liquidations) in each input bar, over
        the selected tiers, USD.
    consumed_long_by_tier, consumed_short_by_tier : Float64Array, shape (n, g)
        The same per tier, every tier.
    final_long_usd, final_short_usd : Float64Array, shape (g, rows)
        The book per tier and row after the last bar, USD.
    beyond_long_usd, beyond_short_usd : float
        Outstanding notional beyond the grid after the last bar, selected tiers, USD.
    out_of_grid_usd : float
        Notional of levels opened beyond the grid, both sides, selected tiers, USD.
    tiers : tuple of float
        Leverage of every tier of the model.
    tier_mask : bool array, shape (g,)
        The tiers the leverage filter selected.
    """

    long_usd: Float32Array
    short_usd: Float32Array
    consumed_long_usd: Float64Array
    consumed_short_usd: Float64Array
    consumed_long_by_tier: Float64Array
    consumed_short_by_tier: Float64Array
    final_long_usd: Float64Array
    final_short_usd: Float64Array
    beyond_long_usd: float
    beyond_short_usd: float
    out_of_grid_usd: float
    tiers: tuple[float, ...]
    tier_mask: np.ndarray


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
    leverage: LeverageSpec = None,
    use_numba: bool | None = None,
    margin_table: MarginTable | None = None,
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
    leverage : None, str or iterable of float
        Tiers the snapshots and totals cover (see :func:`engine.leverage.select_tiers`).
    use_numba : bool or None
        See :func:`engine.kernels.run_levels`.
    margin_table : MarginTable or None
        The market's maintenance-margin brackets, for models that use them
        (:attr:`ModelSpec.takes_margin_table`); None: their default.

    Returns
    -------
    ModelRun
    """
    selection = select_tiers(model.tiers, leverage)
    inputs = model.inputs(series, grid, margin_table)
    steps = inputs.steps_per_bar
    snapshot_bar = np.searchsorted(series.ts_ms, column_start_ms + column_ms, side="left") - 1
    snapshot_step = np.where(snapshot_bar >= 0, (snapshot_bar + 1) * steps - 1, -1).astype(np.int64)
    levels = run_levels(
        inputs, snapshot_step, grid, snapshot_tiers=selection.mask, use_numba=use_numba
    )
    n, tiers = len(series), inputs.tiers
    by_tier_long, by_tier_short = levels.consumed_long_usd, levels.consumed_short_usd
    if steps > 1:
        by_tier_long = by_tier_long.reshape(n, steps, tiers).sum(axis=1)
        by_tier_short = by_tier_short.reshape(n, steps, tiers).sum(axis=1)
    mask = selection.mask
    shown = mask.astype(np.float64)
    return ModelRun(
        long_usd=levels.long_usd,
        short_usd=levels.short_usd,
        consumed_long_usd=by_tier_long @ shown,
        consumed_short_usd=by_tier_short @ shown,
        consumed_long_by_tier=by_tier_long,
        consumed_short_by_tier=by_tier_short,
        final_long_usd=levels.final_long_usd,
        final_short_usd=levels.final_short_usd,
        beyond_long_usd=float(levels.beyond_long_usd @ shown),
        beyond_short_usd=float(levels.beyond_short_usd @ shown),
        out_of_grid_usd=float(levels.added_beyond_usd @ shown),
        tiers=model.tiers,
        tier_mask=mask,
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


def frame_stats(long_usd: Float32Array, short_usd: Float32Array, out_of_grid_usd: float = 0.0, **extra: float) -> FrameStats:
    """Summary numbers of a frame's intensity arrays (see :class:`FrameStats`).

    Parameters
    ----------
    long_usd, short_usd : Float32Array, shape (columns, rows)
    out_of_grid_usd : float
    **extra : float
        Further :class:`FrameStats` fields (beyond-grid and consumed totals).
    """
    cells = cell_stats(long_usd, short_usd, PERCENTILES)
    values = cells.percentiles or [0.0] * len(PERCENTILES)
    percentiles = {f"p{p}": value for p, value in zip(PERCENTILES, values, strict=True)}
    return FrameStats(
        total_long_usd=float(long_usd[-1].sum(dtype=np.float64)) if long_usd.size else 0.0,
        total_short_usd=float(short_usd[-1].sum(dtype=np.float64)) if short_usd.size else 0.0,
        max_long_usd=cells.max_long,
        max_short_usd=cells.max_short,
        max_cell_usd=cells.max_cell,
        percentiles=percentiles,
        out_of_grid_usd=out_of_grid_usd,
        **extra,
    )


def _range_spec(range_name: str) -> RangeSpec:
    try:
        return RANGES[range_name]
    except KeyError:
        raise ValueError(f"unknown range {range_name!r}; allowed: {', '.join(RANGES)}") from None


def _check_series(series: MarketSeries, rows: int) -> None:
    if rows < 2:
        raise ValueError(f"rows must be at least 2, got {rows}")
    if len(series) == 0:
        raise ValueError("the series is empty")
    if series.step_ms <= 0:
        raise ValueError(f"step_ms must be positive, got {series.step_ms}")
    series.validate()


def _last_bad_bar(series: MarketSeries, first: int) -> int:
    """Index of the last bar from ``first`` on with a non-finite or non-positive price or negative OI; -1 if none."""
    tail = series.slice(first, len(series))
    bad = np.zeros(len(tail), dtype=bool)
    for prices in (tail.open, tail.high, tail.low, tail.close):
        bad |= ~(np.isfinite(prices) & (prices > 0))
    bad |= tail.open_interest_usd < 0
    found = np.flatnonzero(bad)
    return first + int(found[-1]) if found.size else -1


@dataclass(frozen=True, slots=True)
class RangeWindow:
    """Everything about one range of one series that does not depend on the model."""

    spec: RangeSpec
    x_ms: Int64Array
    coverage_start_ms: int
    base: MarketSeries
    grid: PriceGrid
    candles: FrameCandles
    price: float


def _check_window(base: MarketSeries, spec: RangeSpec) -> None:
    last_bad = _last_bad_bar(base, 0)
    if last_bad < 0:
        return
    price_bad = not all(np.isfinite(column[last_bad]) and column[last_bad] > 0 for column in (base.open, base.high, base.low, base.close))
    what = "prices in the frame's window must be finite and positive" if price_bad else "open interest must not be negative"
    raise ValueError(f"{what} (range {spec.name}, bar at {int(base.ts_ms[last_bad])})")


def range_windows(
    series: MarketSeries, range_names: Sequence[str], rows: int, rollups: Mapping[int, Rollup] | None = None
) -> dict[str, RangeWindow]:
    """The window, base series, grid and candles of every range, sharing the resampling work.

    With ``rollups`` (see :mod:`engine.rollup`), a long range whose base step has a roll-up
    takes its bars from it: ``series`` then need only hold the last input bar (the frame's end).
    """
    specs = [_range_spec(name) for name in range_names]
    _check_series(series, rows)
    last_ms = int(series.ts_ms[-1])
    x_by_range = {spec.name: column_starts(last_ms, spec) for spec in specs}
    steps = {spec.name: base_step_ms(spec, series.step_ms) for spec in specs}
    from_rollup = {
        spec.name: base
        for spec in specs
        if rollups is not None
        and steps[spec.name] != series.step_ms
        and (base := rollup_base(rollups, steps[spec.name], int(x_by_range[spec.name][0]), last_ms + series.step_ms)) is not None
    }
    first_by_range = {name: int(np.searchsorted(series.ts_ms, x[0], side="left")) for name, x in x_by_range.items()}
    last_bad = _last_bad_bar(series, min(first_by_range[spec.name] for spec in specs if spec.name not in from_rollup) if len(from_rollup) < len(specs) else len(series))
    for spec in specs:
        if spec.name not in from_rollup and last_bad >= first_by_range[spec.name]:
            _check_window(series.slice(last_bad, last_bad + 1), spec)
    # One intermediate resample serves every coarse range: its step divides theirs (for 1m
    # input the roll-ups' common step, so that frames from roll-ups equal frames from 1m bars).
    coarse = [spec for spec in specs if steps[spec.name] != series.step_ms and spec.name not in from_rollup]
    intermediate = None
    if coarse:
        common = COMMON_STEP_MS if series.step_ms == INPUT_STEP_MS else math.gcd(*(steps[spec.name] for spec in coarse))
        widest = min(first_by_range[spec.name] for spec in coarse)
        intermediate = resample(series.slice(widest, len(series)), common)
    out: dict[str, RangeWindow] = {}
    for spec in specs:
        x_ms = x_by_range[spec.name]
        if spec.name in from_rollup:
            rolled = from_rollup[spec.name]
            if not len(rolled):
                raise ValueError(f"no roll-up bars in the window of range {spec.name}")
            _check_window(rolled.series, spec)
            base, coverage_start = rolled.series, int(rolled.first_input_ms[0])
        else:
            first = first_by_range[spec.name]
            coverage_start = int(series.ts_ms[first])
            if steps[spec.name] == series.step_ms or intermediate is None:
                base = series.slice(first, len(series))
            else:
                start = int(np.searchsorted(intermediate.ts_ms, x_ms[0], side="left"))
                base = resample(intermediate.slice(start, len(intermediate)), steps[spec.name])
        grid = display_grid(float(base.low.min()), float(base.high.max()), rows=rows)
        out[spec.name] = RangeWindow(
            spec=spec,
            x_ms=x_ms,
            coverage_start_ms=coverage_start,
            base=base,
            grid=grid,
            candles=column_candles(base, x_ms, spec.column_ms),
            price=float(base.close[-1]),
        )
    return out


def market_margin_table(symbol: str, margin_table: MarginTable | None) -> MarginTable:
    """The market's table where given, else the shipped Binance table of its symbol (or the shipped default)."""
    return margin_table if margin_table is not None else shipped_binance_table(symbol)


def margin_metadata(spec: ModelSpec, table: MarginTable) -> dict[str, Any] | None:
    """What a frame records of the margin table it used: None for models whose tiers are parameters."""
    if not spec.takes_margin_table:
        return None
    return {"source": table.source, "brackets": table.to_json()}


def _frame(
    window: RangeWindow,
    series: MarketSeries,
    spec: ModelSpec,
    *,
    exchange: str,
    symbol: str,
    generated_at_ms: int,
    leverage: LeverageSpec,
    sources: Mapping[str, Mapping[str, Any]] | None,
    margin_table: MarginTable,
) -> Frame:
    run = run_model(window.base, spec, window.grid, window.x_ms, window.spec.column_ms, leverage=leverage, margin_table=margin_table)
    selection = select_tiers(spec.tiers, leverage)
    stats = frame_stats(
        run.long_usd,
        run.short_usd,
        run.out_of_grid_usd,
        beyond_long_usd=run.beyond_long_usd,
        beyond_short_usd=run.beyond_short_usd,
        consumed_long_usd=float(run.consumed_long_usd.sum()),
        consumed_short_usd=float(run.consumed_short_usd.sum()),
    )
    return Frame(
        exchange=exchange,
        symbol=symbol,
        model=spec.name,
        model_version=spec.version,
        params_hash=spec.params_hash,
        range=window.spec.name,
        generated_at_ms=int(generated_at_ms),
        data_until_ms=int(series.ts_ms[-1]) + series.step_ms,
        coverage_start_ms=window.coverage_start_ms,
        x_ms=window.x_ms,
        y=window.grid.centres,
        long_usd=run.long_usd,
        short_usd=run.short_usd,
        candles=window.candles,
        stats=stats,
        clusters=find_clusters(window.grid.centres, run.long_usd[-1], run.short_usd[-1], window.price),
        leverage=selection.label,
        tiers=selection.leverages,
        sources={name: dict(value) for name, value in sources.items()} if sources is not None else None,
        margin_table=margin_metadata(spec, margin_table),
    )


def build_frames(
    series: MarketSeries,
    *,
    models: Sequence[str | ModelSpec],
    ranges: Sequence[str],
    exchange: str,
    symbol: str,
    generated_at_ms: int,
    rows: int = DEFAULT_ROWS,
    leverage: LeverageSpec = None,
    sources: Mapping[str, Mapping[str, Any]] | None = None,
    rollups: Mapping[int, Rollup] | None = None,
    margin_table: MarginTable | None = None,
) -> list[Frame]:
    """Every model × range Frame of one market, sharing windows, resampling, grids and candles.

    The same frames as :func:`build_frame` called for each pair (model-major
    order: all ranges of the first model, then the next), only faster (up to
    the last bits of models that read volumes: the shared resampling adds
    them up in another order).

    Parameters
    ----------
    series, exchange, symbol, generated_at_ms, rows, leverage, sources, rollups, margin_table
        As in :func:`build_frame`.
    models : sequence of str or ModelSpec
        Registered model names, or specs (a kept older version, see
        :func:`engine.models.find_version`).
    ranges : sequence of str
        Keys of :data:`engine.ranges.RANGES`.

    Returns
    -------
    list of Frame
    """
    specs = [model if isinstance(model, ModelSpec) else get_model(model) for model in models]
    for spec in specs:
        select_tiers(spec.tiers, leverage)  # refuse a bad filter before any work
    windows = range_windows(series, ranges, rows, rollups)
    table = market_margin_table(symbol, margin_table)
    return [
        _frame(
            windows[range_name],
            series,
            spec,
            exchange=exchange,
            symbol=symbol,
            generated_at_ms=generated_at_ms,
            leverage=leverage,
            sources=sources,
            margin_table=table,
        )
        for spec in specs
        for range_name in ranges
    ]


def build_frame(
    series: MarketSeries,
    *,
    model: str,
    range_name: str,
    exchange: str,
    symbol: str,
    generated_at_ms: int,
    rows: int = DEFAULT_ROWS,
    leverage: LeverageSpec = None,
    sources: Mapping[str, Mapping[str, Any]] | None = None,
    rollups: Mapping[int, Rollup] | None = None,
    margin_table: MarginTable | None = None,
) -> Frame:
    """Compute the heatmap Frame of one range of one market under one model.

    The window is the range's last ``columns`` columns, aligned to multiples
    of the column width, the last one holding the last bar. The model runs
    over the bars inside the window only, from an empty book: positions
    opened before the window are not represented, and the window's first bar
    opens none (it has no previous open interest to compare with). Ranges up
    to 7d run at the input step, longer ones at ``column / 12`` (see
    :func:`base_step_ms`).

    The price grid spans the window's traded range widened by
    :data:`engine.grid.DISPLAY_REACH` on each side, the same for every
    model. Levels beyond it (low-leverage tiers, farther from every price of
    the window than that) cannot be crossed inside the window; their
    outstanding notional is reported in ``stats.beyond_long_usd`` /
    ``beyond_short_usd`` instead of in cells.

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
    leverage : None, str or iterable of float
        Leverage filter: None/``"all"``, ``"low"``/``"mid"``/``"high"``, or a
        subset of the model's tiers (see :func:`engine.leverage.select_tiers`).
        Part of the frame id when not ``"all"``.
    sources : mapping, optional
        Per-venue coverage of a market summed over venues, carried in the frame.
    rollups : mapping, optional
        ``{step_ms: Rollup}`` (:func:`engine.rollup.roll_up`): long ranges take their
        base bars from these instead of resampling ``series``, which then need only
        end where the frame ends. The frame is the same as from the 1m bars.
    margin_table : MarginTable, optional
        The market's maintenance-margin brackets (e.g. as its venue publishes
        them), for models that place levels by them; without one, the shipped
        Binance table of ``symbol`` (or the shipped default). Such frames
        record the table and its source in ``margin_table``.

    Returns
    -------
    Frame

    Raises
    ------
    ValueError
        Unknown range, model or leverage filter (the message lists the allowed
        values), empty series, malformed columns, non-positive or non-finite
        prices in the window, negative open interest, fewer than 2 rows.
    """
    return build_frames(
        series,
        models=[model],
        ranges=[range_name],
        exchange=exchange,
        symbol=symbol,
        generated_at_ms=generated_at_ms,
        rows=rows,
        leverage=leverage,
        sources=sources,
        rollups=rollups,
        margin_table=margin_table,
    )[0]
