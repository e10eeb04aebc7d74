"""The price grid: evenly spaced price rows a frame's intensity is binned into."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from engine.types import Float64Array, Int64Array

DEFAULT_ROWS = 400
# Headroom beyond the farthest reachable liquidation price, as a fraction of
# the grid's span, so that levels computed from the window's extremes never
# land exactly on an edge.
EDGE_MARGIN = 0.01


@dataclass(frozen=True, slots=True)
class PriceGrid:
    """Evenly spaced price rows.

    Row ``i`` covers prices ``[bottom + i*step, bottom + (i+1)*step)``; its
    centre ``centres[i]`` is the price every level snapped into the row is
    taken to sit at.

    Attributes
    ----------
    bottom : float
        Lower edge of row 0, USD.
    step : float
        Row height, USD (> 0).
    rows : int
        Number of rows.
    centres : Float64Array, shape (rows,)
        Row centres, ascending, USD.
    """

    bottom: float
    step: float
    rows: int
    centres: Float64Array

    @property
    def inverse_step(self) -> float:
        """Rows per USD, ``1 / step``: a price's row is ``floor((price - bottom) * inverse_step)``."""
        return 1.0 / self.step

    @property
    def top(self) -> float:
        """Upper edge (exclusive) of the last row, USD."""
        return self.bottom + self.rows * self.step

    def row_of(self, prices: npt.ArrayLike) -> Int64Array:
        """Row index of each price; -1 where the price is off the grid or NaN.

        Parameters
        ----------
        prices : array_like of float, any shape
            Prices, USD.

        Returns
        -------
        Int64Array, same shape as ``prices``
        """
        values = np.asarray(prices, dtype=np.float64)
        with np.errstate(invalid="ignore"):
            position = np.floor((values - self.bottom) * self.inverse_step)
            inside = (position >= 0) & (position < self.rows)
        return np.where(inside, position, -1).astype(np.int64)

    def long_clear_from(self, low: Float64Array) -> Int64Array:
        """First row a bar's low consumes long levels from.

        A long level is consumed when ``low <= level``; with ascending centres
        that is every row from the returned index up.

        Parameters
        ----------
        low : Float64Array, shape (n,)
            Bar lows, USD.

        Returns
        -------
        Int64Array, shape (n,), values in ``[0, rows]``
        """
        return np.searchsorted(self.centres, low, side="left").astype(np.int64)

    def short_clear_below(self, high: Float64Array) -> Int64Array:
        """Number of bottom rows a bar's high consumes short levels in.

        A short level is consumed when ``high >= level``: rows
        ``0 .. index-1``.

        Parameters
        ----------
        high : Float64Array, shape (n,)
            Bar highs, USD.

        Returns
        -------
        Int64Array, shape (n,), values in ``[0, rows]``
        """
        return np.searchsorted(self.centres, high, side="right").astype(np.int64)


def price_grid(
    low_min: float,
    high_max: float,
    *,
    rows: int = DEFAULT_ROWS,
    reach: tuple[float, float] = (1.0, 1.0),
    margin: float = EDGE_MARGIN,
) -> PriceGrid:
    """Grid over a window's traded range, widened to hold every liquidation level.

    Parameters
    ----------
    low_min, high_max : float
        Lowest low and highest high of the window, USD (``0 < low_min <= high_max``).
    rows : int
        Number of rows (>= 2).
    reach : (float, float)
        ``(lowest, highest)`` liquidation price as a multiple of the entry
        price over the model's tiers, e.g. ``(0.804, 1.196)`` for a 5x lowest
        tier with 0.4 % maintenance margin. Since entries lie inside the
        traded range, ``[low_min*lowest, high_max*highest]`` holds every level.
    margin : float
        Extra headroom on each side, as a fraction of that span.

    Returns
    -------
    PriceGrid
    """
    if rows < 2:
        raise ValueError(f"rows must be at least 2, got {rows}")
    if not (np.isfinite(low_min) and np.isfinite(high_max) and 0 < low_min <= high_max):
        raise ValueError(f"need 0 < low_min <= high_max, got {low_min}, {high_max}")
    lowest, highest = reach
    bottom = low_min * min(lowest, 1.0)
    top = high_max * max(highest, 1.0)
    span = top - bottom
    if span <= 0:
        # A single traded price and no reach: give the row a width anyway.
        span = abs(top) * 1e-3
    bottom -= span * margin
    top += span * margin
    step = (top - bottom) / rows
    centres = bottom + (np.arange(rows, dtype=np.float64) + 0.5) * step
    return PriceGrid(bottom=float(bottom), step=float(step), rows=rows, centres=centres)


# How far beyond the window's traded range a frame's grid reaches, as a
# fraction of price: the 10x tier's distance, so every level of 10x and above
# opened inside the window is on the grid.
DISPLAY_REACH = 0.10


def display_grid(low_min: float, high_max: float, *, rows: int = DEFAULT_ROWS) -> PriceGrid:
    """The grid a frame is drawn on: the traded range widened by ``DISPLAY_REACH`` (and the edge margin).

    The same for every model, so frames of one market and range line up row
    for row. Levels beyond it (low-leverage tiers far from every price of the
    window) cannot be crossed inside the window; the engine keeps their
    notional as a per-side total rather than in cells.
    """
    return price_grid(low_min, high_max, rows=rows, reach=(1.0 - DISPLAY_REACH, 1.0 + DISPLAY_REACH))
