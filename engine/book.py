"""The liquidation map: the book as it stands now, per tier, with cumulative curves and max pain."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from engine.build import market_margin_table, range_windows, run_model
from engine.frame import FrameIdentity
from engine.grid import DEFAULT_ROWS
from engine.leverage import LeverageSpec, select_tiers
from engine.models import get_model
from engine.models.margin import MarginTable
from engine.rollup import Rollup
from engine.series import MarketSeries
from engine.types import Float64Array


@dataclass(frozen=True, slots=True)
class LiquidationMap(FrameIdentity):
    """Outstanding liquidation notional by price at the end of the data, per leverage tier.

    What it was computed from is its :class:`~engine.frame.FrameIdentity`; ``range`` is the
    window positions were opened in (the book starts empty at its start).

    Attributes
    ----------
    leverage : str
        The leverage filter (see :mod:`engine.leverage`).
    data_until_ms : int
        End (exclusive) of the last bar used.
    price : float
        Last close, USD: longs below it, shorts above it.
    y : Float64Array, shape (rows,)
        Price row centres, ascending, USD.
    tiers : tuple of float
        Leverage of each tier shown.
    long_usd, short_usd : Float64Array, shape (tiers, rows)
        Outstanding notional per tier and row, USD.
    cumulative_long_usd : Float64Array, shape (rows,)
        For rows below price: long notional liquidated if price falls to the
        row (every long level at or above it); 0 at and above price.
    cumulative_short_usd : Float64Array, shape (rows,)
        For rows above price: short notional liquidated if price rises to the
        row (every short level at or below it); 0 at and below price.
    cumulative_long_by_tier_usd, cumulative_short_by_tier_usd : Float64Array, shape (tiers, rows)
        The same curves per tier (they sum to the totals).
    beyond_long_usd, beyond_short_usd : float
        Outstanding notional beyond the grid (not in any row), USD.
    """

    leverage: str
    data_until_ms: int
    price: float
    y: Float64Array
    tiers: tuple[float, ...]
    long_usd: Float64Array
    short_usd: Float64Array
    cumulative_long_usd: Float64Array
    cumulative_short_usd: Float64Array
    cumulative_long_by_tier_usd: Float64Array
    cumulative_short_by_tier_usd: Float64Array
    beyond_long_usd: float
    beyond_short_usd: float


def cumulative_curves(y: Float64Array, long_usd: Float64Array, short_usd: Float64Array, price: float) -> tuple[Float64Array, Float64Array]:
    """Cumulative long (below price) and short (above price) notional by row (see :class:`LiquidationMap`).

    Parameters
    ----------
    y : Float64Array, shape (rows,)
    long_usd, short_usd : Float64Array, shape (..., rows)
        Notional per row (per tier, or summed over tiers).
    price : float
    """
    long_from_row = np.cumsum(long_usd[..., ::-1], axis=-1)[..., ::-1]  # sum over rows >= r
    short_to_row = np.cumsum(short_usd, axis=-1)  # sum over rows <= r
    return np.where(y < price, long_from_row, 0.0), np.where(y > price, short_to_row, 0.0)


@dataclass(frozen=True, slots=True)
class LargestRow:
    """The price row of a map holding the most notional of one side, summed over the tiers shown.

    Attributes
    ----------
    price : float
        The row's centre, USD.
    usd : float
        Notional in the row, USD.
    distance : float
        ``(price - last close) / last close``: negative below the price.
    """

    price: float
    usd: float
    distance: float


def largest_row_per_side(liquidation_map: LiquidationMap) -> tuple[LargestRow | None, LargestRow | None]:
    """The row holding the most long notional and the one holding the most short notional (the "max pain" levels).

    Returns
    -------
    (longs, shorts)
        A side is None when it holds nothing.
    """
    out: list[LargestRow | None] = []
    for book in (liquidation_map.long_usd, liquidation_map.short_usd):
        by_row = book.sum(axis=0) if book.size else np.zeros(len(liquidation_map.y))
        if not by_row.size or by_row.max() <= 0:
            out.append(None)
            continue
        row = int(np.argmax(by_row))
        level = float(liquidation_map.y[row])
        out.append(LargestRow(price=level, usd=float(by_row[row]), distance=(level - liquidation_map.price) / liquidation_map.price))
    return out[0], out[1]


def liquidation_map(
    series: MarketSeries,
    *,
    model: str,
    range_name: str,
    exchange: str,
    symbol: str,
    rows: int = DEFAULT_ROWS,
    leverage: LeverageSpec = None,
    rollups: Mapping[int, Rollup] | None = None,
    margin_table: MarginTable | None = None,
) -> LiquidationMap:
    """The book at the end of the data after running a model over one range's window.

    The same window, base step and grid as the range's frame (so the map
    matches the frame's last column, split by tier); ``margin_table`` as in
    :func:`engine.build.build_frame`.

    Raises
    ------
    ValueError
        As :func:`engine.build.build_frame`.
    """
    spec = get_model(model)
    selection = select_tiers(spec.tiers, leverage)
    window = range_windows(series, [range_name], rows, rollups)[range_name]
    table = market_margin_table(symbol, margin_table)
    run = run_model(window.base, spec, window.grid, window.x_ms[-1:], window.spec.column_ms, leverage=leverage, margin_table=table)
    long_usd = run.final_long_usd[selection.mask]
    short_usd = run.final_short_usd[selection.mask]
    cumulative_long, cumulative_short = cumulative_curves(window.grid.centres, long_usd.sum(axis=0), short_usd.sum(axis=0), window.price)
    by_tier_long, by_tier_short = cumulative_curves(window.grid.centres, long_usd, short_usd, window.price)
    return LiquidationMap(
        exchange=exchange,
        symbol=symbol,
        model=spec.name,
        model_version=spec.version,
        params_hash=spec.params_hash,
        range=window.spec.name,
        leverage=selection.label,
        data_until_ms=int(series.ts_ms[-1]) + series.step_ms,
        price=window.price,
        y=window.grid.centres,
        tiers=selection.leverages,
        long_usd=long_usd,
        short_usd=short_usd,
        cumulative_long_usd=cumulative_long,
        cumulative_short_usd=cumulative_short,
        cumulative_long_by_tier_usd=by_tier_long,
        cumulative_short_by_tier_usd=by_tier_short,
        beyond_long_usd=run.beyond_long_usd,
        beyond_short_usd=run.beyond_short_usd,
    )
