"""The liquidation map: the book as it stands now, per tier, with cumulative curves and max pain."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.build import market_margin_table, range_windows, run_model
from engine.rollup import Rollup
from engine.grid import DEFAULT_ROWS
from engine.leverage import LeverageSpec, select_tiers
from engine.models import get_model
from engine.models.margin import MarginTable
from engine.series import MarketSeries
from engine.types import Float64Array


@dataclass(frozen=True, slots=True)
class LiquidationMap:
    """Outstanding liquidation notional by price at the end of the data, per leverage tier.

    Attributes
    ----------
    exchange, symbol, model, model_version, params_hash, range : str
        What it was computed from; ``range`` is the window positions were
        opened in (the book starts empty at its start).
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

    exchange: str
    symbol: str
    model: str
    model_version: str
    params_hash: str
    range: str
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


def max_pain(liquidation_map: LiquidationMap) -> dict[str, dict[str, float] | None]:
    """The largest level on each side: the row holding the most notional over the tiers shown.

    Returns
    -------
    dict
        ``{"long": {"price", "usd", "distance"}, "short": {...}}``, a side None
        when it holds nothing; ``distance`` is the signed fraction of price.
    """
    out: dict[str, dict[str, float] | None] = {}
    for side, book in (("long", liquidation_map.long_usd), ("short", liquidation_map.short_usd)):
        by_row = book.sum(axis=0) if book.size else np.zeros(len(liquidation_map.y))
        if not by_row.size or by_row.max() <= 0:
            out[side] = None
            continue
        row = int(np.argmax(by_row))
        level = float(liquidation_map.y[row])
        out[side] = {"price": level, "usd": float(by_row[row]), "distance": (level - liquidation_map.price) / liquidation_map.price}
    return out


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


def whole_usd(values: Float64Array) -> list[int]:
    return np.rint(values).astype(np.int64).tolist()  # type: ignore[no-any-return]


def map_json(liquidation_map: LiquidationMap) -> dict[str, Any]:
    """A JSON-able dict of a map, numbers rounded to whole USD and 8 decimals of price."""
    return {
        "exchange": liquidation_map.exchange,
        "symbol": liquidation_map.symbol,
        "model": liquidation_map.model,
        "model_version": liquidation_map.model_version,
        "params_hash": liquidation_map.params_hash,
        "range": liquidation_map.range,
        "leverage": liquidation_map.leverage,
        "data_until": liquidation_map.data_until_ms,
        "price": liquidation_map.price,
        "y": np.round(liquidation_map.y, 8).tolist(),
        "tiers": [
            {
                "leverage": leverage,
                "long": whole_usd(long_row),
                "short": whole_usd(short_row),
                "cumulative_long": whole_usd(cumulative_long),
                "cumulative_short": whole_usd(cumulative_short),
            }
            for leverage, long_row, short_row, cumulative_long, cumulative_short in zip(
                liquidation_map.tiers,
                liquidation_map.long_usd,
                liquidation_map.short_usd,
                liquidation_map.cumulative_long_by_tier_usd,
                liquidation_map.cumulative_short_by_tier_usd,
                strict=True,
            )
        ],
        "cumulative_long": whole_usd(liquidation_map.cumulative_long_usd),
        "cumulative_short": whole_usd(liquidation_map.cumulative_short_usd),
        "beyond_long_usd": liquidation_map.beyond_long_usd,
        "beyond_short_usd": liquidation_map.beyond_short_usd,
        "max_pain": max_pain(liquidation_map),
    }
