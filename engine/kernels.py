"""The level recurrence shared by every heatmap model.

State is, per side, the outstanding liquidation notional in USD on a grid of
price rows, kept separately for each leverage tier ("group"), plus one scalar
per tier and side for levels beyond the grid (never crossed inside a window,
see :func:`engine.grid.price_grid`, and kept so totals stay honest). Each time
step, in this order:

1. consume: long rows from ``long_clear_from[t]`` up and short rows below
   ``short_clear_below[t]`` are emptied (price traded through them); the
   emptied USD is recorded per step and tier;
2. scale: the whole book is multiplied by ``scale[t]`` (falling open interest);
3. decay: the whole book is multiplied by ``decay[t]``; of what closes this
   way in each tier, the share ``reopen_share`` opens again in the same tier
   at this step's entry price (aged positions replaced at the current price);
4. add: ``long_new_usd[t]`` (``short_new_usd[t]``) is spread over ``k``
   columns: column ``j`` puts ``weights[j]`` of it at price
   ``entry_price[t] * long_multipliers[j]`` into tier ``column_tier[j]``.
   Levels added here are first checked for consumption at step ``t + 1``.

A level's row is ``floor((price - bottom) * inverse_step)``, the same expression
as :meth:`engine.grid.PriceGrid.row_of` (a multiplication: this runs for
every column of every step, and a division costs several times more); from then on the row's centre is its
price. Tiers never mix, so the book of any subset of tiers is exactly what a
run with only those tiers would hold (the leverage filter and the per-tier
liquidation map rest on this), and each tier's output is proportional to its
weight (calibration rests on that).

A model is then only the vectorised precomputation of these per-step arrays
(:class:`StepInputs`); the loop over time lives here once. It is JIT-compiled
with numba when numba is importable, otherwise a numpy version runs the same
recurrence with a few vector operations per step.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from engine.grid import PriceGrid
from engine.types import BoolArray, Float32Array, Float64Array, Int64Array

try:
    import numba
except ImportError:  # the engine must stay usable with numpy alone
    numba = None

HAVE_NUMBA = numba is not None


@dataclass(frozen=True, slots=True)
class StepInputs:
    """Per-step inputs to the level recurrence: ``n`` steps, ``k`` columns, ``g`` tiers.

    Attributes
    ----------
    long_clear_from : Int64Array, shape (n,)
        Long rows ``>= long_clear_from[t]`` are consumed at step ``t``
        (``rows`` consumes none).
    short_clear_below : Int64Array, shape (n,)
        Short rows ``< short_clear_below[t]`` are consumed at step ``t``
        (0 consumes none).
    scale : Float64Array, shape (n,)
        Factor applied to the whole book after consumption, in [0, 1].
    entry_price : Float64Array, shape (n,)
        Price positions opened at step ``t`` enter at, USD (> 0).
    long_new_usd, short_new_usd : Float64Array, shape (n,)
        Notional of the long (short) positions opened at step ``t``, USD.
    long_multipliers, short_multipliers : Float64Array, shape (k,)
        Liquidation price over entry price of each column.
    weights : Float64Array, shape (k,)
        Share of each step's new notional going to each column (>= 0).
    column_tier : Int64Array, shape (k,)
        Tier of each column, in ``0 .. g-1``.
    tier_leverage : Float64Array, shape (g,)
        Leverage of each tier (what leverage filters select on).
    decay : Float64Array, shape (n,), optional
        Share of the book kept at step ``t`` after scaling, in (0, 1]; None
        means no decay.
    reopen_share : float
        Share of the notional closed by decay that reopens at once in its own
        tier, spread over the tier's columns in proportion to their weights.
    steps_per_bar : int
        Steps per input bar (a model may walk a path inside each bar); ``n``
        is a multiple of it.
    """

    long_clear_from: Int64Array
    short_clear_below: Int64Array
    scale: Float64Array
    entry_price: Float64Array
    long_new_usd: Float64Array
    short_new_usd: Float64Array
    long_multipliers: Float64Array
    short_multipliers: Float64Array
    weights: Float64Array
    column_tier: Int64Array
    tier_leverage: Float64Array
    decay: Float64Array | None = None
    reopen_share: float = 0.0
    steps_per_bar: int = 1

    def __len__(self) -> int:
        return int(self.scale.shape[0])

    @property
    def tiers(self) -> int:
        return int(self.tier_leverage.shape[0])

    def with_weights(self, weights: Float64Array) -> StepInputs:
        """The same steps with other column weights (e.g. a calibration candidate)."""
        return replace(self, weights=np.asarray(weights, dtype=np.float64))


@dataclass(frozen=True, slots=True)
class LevelRun:
    """Output of the level recurrence.

    Attributes
    ----------
    long_usd, short_usd : Float32Array, shape (columns, rows)
        Outstanding notional per row at each snapshot, summed over the
        snapshot tiers, USD.
    consumed_long_usd, consumed_short_usd : Float64Array, shape (n, g)
        Notional consumed (estimated liquidations) at each step, per tier, USD.
    final_long_usd, final_short_usd : Float64Array, shape (g, rows)
        Outstanding notional per tier and row after the last step, USD.
    beyond_long_usd, beyond_short_usd : Float64Array, shape (g,)
        Outstanding notional of levels beyond the grid after the last step, per tier, USD.
    added_beyond_usd : Float64Array, shape (g,)
        Notional of all levels (both sides) opened beyond the grid, per tier, USD.
    """

    long_usd: Float32Array
    short_usd: Float32Array
    consumed_long_usd: Float64Array
    consumed_short_usd: Float64Array
    final_long_usd: Float64Array
    final_short_usd: Float64Array
    beyond_long_usd: Float64Array
    beyond_short_usd: Float64Array
    added_beyond_usd: Float64Array


def _levels_loop(
    long_clear_from: Int64Array,
    short_clear_below: Int64Array,
    scale: Float64Array,
    decay: Float64Array,
    entry_price: Float64Array,
    long_new_usd: Float64Array,
    short_new_usd: Float64Array,
    long_multipliers: Float64Array,
    short_multipliers: Float64Array,
    weights: Float64Array,
    column_tier: Int64Array,
    reopen_weights: Float64Array,
    tiers: int,
    bottom: float,
    inverse_step: float,
    rows: int,
    snapshot_step: Int64Array,
    snapshot_tier: BoolArray,
) -> tuple[Float32Array, Float32Array, Float64Array, Float64Array, Float64Array, Float64Array, Float64Array, Float64Array, Float64Array]:
    """Scalar-loop recurrence, written for numba (far too slow interpreted).

    ``reopen_weights[j]`` is ``reopen_share`` times column ``j``'s share of its
    tier's weight.
    """
    n = scale.shape[0]
    k = weights.shape[0]
    columns = snapshot_step.shape[0]
    # The state holds notional divided by ``book_scale``, the product of all
    # scale and decay factors so far: scaling the whole book is then one
    # multiplication instead of a pass over the rows. Layout (rows, tiers):
    # every pass over a row touches its tiers together.
    long_state = np.zeros((rows, tiers), dtype=np.float64)
    short_state = np.zeros((rows, tiers), dtype=np.float64)
    # The snapshot tiers' sum per row, kept alongside so a snapshot is one
    # pass over the rows whatever the number of tiers.
    long_shown = np.zeros(rows, dtype=np.float64)
    short_shown = np.zeros(rows, dtype=np.float64)
    book_scale = 1.0
    # Per tier, in USD: the whole side (grid + beyond) and the part beyond.
    long_total = np.zeros(tiers, dtype=np.float64)
    short_total = np.zeros(tiers, dtype=np.float64)
    long_beyond = np.zeros(tiers, dtype=np.float64)
    short_beyond = np.zeros(tiers, dtype=np.float64)
    long_reopened = np.zeros(tiers, dtype=np.float64)
    short_reopened = np.zeros(tiers, dtype=np.float64)
    added_beyond = np.zeros(tiers, dtype=np.float64)
    reopens = False
    for j in range(k):
        if reopen_weights[j] != 0.0:
            reopens = True
    long_out = np.zeros((columns, rows), dtype=np.float32)
    short_out = np.zeros((columns, rows), dtype=np.float32)
    consumed_long = np.zeros((n, tiers), dtype=np.float64)
    consumed_short = np.zeros((n, tiers), dtype=np.float64)
    # Occupied band [lo, hi) per side: rows outside it are zero, so
    # consumption and snapshots only touch rows that can hold anything.
    long_lo, long_hi = rows, 0
    short_lo, short_hi = rows, 0
    column = 0
    while column < columns and snapshot_step[column] < 0:
        column += 1
    for t in range(n):
        cut = long_clear_from[t]
        if cut < long_hi:
            for r in range(max(cut, long_lo), long_hi):
                for g in range(tiers):
                    consumed_long[t, g] += long_state[r, g]
                    long_state[r, g] = 0.0
                long_shown[r] = 0.0
            for g in range(tiers):
                consumed_long[t, g] *= book_scale
                long_total[g] = max(long_total[g] - consumed_long[t, g], long_beyond[g])
            long_hi = max(cut, long_lo)
            if long_hi <= long_lo:
                long_lo, long_hi = rows, 0
        cut = short_clear_below[t]
        if cut > short_lo:
            for r in range(short_lo, min(cut, short_hi)):
                for g in range(tiers):
                    consumed_short[t, g] += short_state[r, g]
                    short_state[r, g] = 0.0
                short_shown[r] = 0.0
            for g in range(tiers):
                consumed_short[t, g] *= book_scale
                short_total[g] = max(short_total[g] - consumed_short[t, g], short_beyond[g])
            short_lo = min(cut, short_hi)
            if short_hi <= short_lo:
                short_lo, short_hi = rows, 0
        factor = scale[t]
        kept = decay[t]
        for g in range(tiers):
            long_reopened[g] = 0.0
            short_reopened[g] = 0.0
        if factor == 0.0:
            for r in range(long_lo, long_hi):
                for g in range(tiers):
                    long_state[r, g] = 0.0
                long_shown[r] = 0.0
            for r in range(short_lo, short_hi):
                for g in range(tiers):
                    short_state[r, g] = 0.0
                short_shown[r] = 0.0
            long_lo, long_hi = rows, 0
            short_lo, short_hi = rows, 0
            book_scale = 1.0
            for g in range(tiers):
                long_total[g] = short_total[g] = long_beyond[g] = short_beyond[g] = 0.0
        elif factor != 1.0 or kept != 1.0:
            closed = factor * (1.0 - kept)
            factor *= kept
            book_scale *= factor
            for g in range(tiers):
                if reopens:
                    long_reopened[g] = long_total[g] * closed
                    short_reopened[g] = short_total[g] * closed
                long_total[g] *= factor
                short_total[g] *= factor
                long_beyond[g] *= factor
                short_beyond[g] *= factor
            if book_scale < 1e-100:
                # Fold the factor into the rows before 1/book_scale overflows.
                for r in range(long_lo, long_hi):
                    for g in range(tiers):
                        long_state[r, g] *= book_scale
                    long_shown[r] *= book_scale
                for r in range(short_lo, short_hi):
                    for g in range(tiers):
                        short_state[r, g] *= book_scale
                    short_shown[r] *= book_scale
                book_scale = 1.0
        entry = entry_price[t]
        # Falling open interest without reopening adds nothing: skip the columns.
        adds = long_new_usd[t] != 0.0 or short_new_usd[t] != 0.0 or (reopens and kept != 1.0 and factor != 0.0)
        for j in range(k if adds else 0):
            g = column_tier[j]
            usd = long_new_usd[t] * weights[j] + long_reopened[g] * reopen_weights[j]
            if usd != 0.0:
                long_total[g] += usd
                position = np.floor((entry * long_multipliers[j] - bottom) * inverse_step)
                if 0.0 <= position < rows:
                    r = int(position)
                    long_state[r, g] += usd / book_scale
                    if snapshot_tier[g]:
                        long_shown[r] += usd / book_scale
                    if r < long_lo:
                        long_lo = r
                    if r >= long_hi:
                        long_hi = r + 1
                else:
                    long_beyond[g] += usd
                    added_beyond[g] += usd
            usd = short_new_usd[t] * weights[j] + short_reopened[g] * reopen_weights[j]
            if usd != 0.0:
                short_total[g] += usd
                position = np.floor((entry * short_multipliers[j] - bottom) * inverse_step)
                if 0.0 <= position < rows:
                    r = int(position)
                    short_state[r, g] += usd / book_scale
                    if snapshot_tier[g]:
                        short_shown[r] += usd / book_scale
                    if r < short_lo:
                        short_lo = r
                    if r >= short_hi:
                        short_hi = r + 1
                else:
                    short_beyond[g] += usd
                    added_beyond[g] += usd
        while column < columns and snapshot_step[column] == t:
            for r in range(long_lo, long_hi):
                long_out[column, r] = long_shown[r] * book_scale
            for r in range(short_lo, short_hi):
                short_out[column, r] = short_shown[r] * book_scale
            column += 1
    final_long = np.empty((tiers, rows), dtype=np.float64)
    final_short = np.empty((tiers, rows), dtype=np.float64)
    for g in range(tiers):
        for r in range(rows):
            final_long[g, r] = long_state[r, g] * book_scale
            final_short[g, r] = short_state[r, g] * book_scale
    return (
        long_out,
        short_out,
        consumed_long,
        consumed_short,
        final_long,
        final_short,
        long_beyond,
        short_beyond,
        added_beyond,
    )


def _levels_numpy(
    long_clear_from: Int64Array,
    short_clear_below: Int64Array,
    scale: Float64Array,
    decay: Float64Array,
    entry_price: Float64Array,
    long_new_usd: Float64Array,
    short_new_usd: Float64Array,
    long_multipliers: Float64Array,
    short_multipliers: Float64Array,
    weights: Float64Array,
    column_tier: Int64Array,
    reopen_weights: Float64Array,
    tiers: int,
    bottom: float,
    inverse_step: float,
    rows: int,
    snapshot_step: Int64Array,
    snapshot_tier: BoolArray,
) -> tuple[Float32Array, Float32Array, Float64Array, Float64Array, Float64Array, Float64Array, Float64Array, Float64Array, Float64Array]:
    """The same recurrence with a few numpy vector operations per step."""
    n = scale.shape[0]
    columns = snapshot_step.shape[0]
    # Row ``rows`` of each tier is "beyond the grid": it takes the off-grid
    # additions, is never consumed, and is left out of snapshots.
    long_state = np.zeros((tiers, rows + 1), dtype=np.float64)
    short_state = np.zeros((tiers, rows + 1), dtype=np.float64)
    long_out = np.zeros((columns, rows), dtype=np.float32)
    short_out = np.zeros((columns, rows), dtype=np.float32)
    consumed_long = np.zeros((n, tiers), dtype=np.float64)
    consumed_short = np.zeros((n, tiers), dtype=np.float64)
    added_beyond = np.zeros(tiers, dtype=np.float64)
    reopens = bool(reopen_weights.any())
    snap_first = np.searchsorted(snapshot_step, np.arange(n), side="left")
    snap_stop = np.searchsorted(snapshot_step, np.arange(n), side="right")

    def rows_of(prices: Float64Array) -> Int64Array:
        position = np.floor((prices - bottom) * inverse_step)
        return np.where((position >= 0) & (position < rows), position, rows).astype(np.int64)

    long_rows = rows_of(entry_price[:, None] * long_multipliers[None, :])
    short_rows = rows_of(entry_price[:, None] * short_multipliers[None, :])
    for t in range(n):
        cut = long_clear_from[t]
        consumed_long[t] = long_state[:, cut:rows].sum(axis=1)
        long_state[:, cut:rows] = 0.0
        cut = short_clear_below[t]
        consumed_short[t] = short_state[:, :cut].sum(axis=1)
        short_state[:, :cut] = 0.0
        long_add = long_new_usd[t] * weights
        short_add = short_new_usd[t] * weights
        if reopens and decay[t] != 1.0:
            closed = scale[t] * (1.0 - decay[t])
            long_add = long_add + long_state.sum(axis=1)[column_tier] * closed * reopen_weights
            short_add = short_add + short_state.sum(axis=1)[column_tier] * closed * reopen_weights
        factor = scale[t] * decay[t]
        if factor != 1.0:
            long_state *= factor
            short_state *= factor
        np.add.at(long_state, (column_tier, long_rows[t]), long_add)
        np.add.at(short_state, (column_tier, short_rows[t]), short_add)
        np.add.at(added_beyond, column_tier[long_rows[t] == rows], long_add[long_rows[t] == rows])
        np.add.at(added_beyond, column_tier[short_rows[t] == rows], short_add[short_rows[t] == rows])
        if snap_stop[t] > snap_first[t]:
            long_out[snap_first[t] : snap_stop[t]] = long_state[snapshot_tier, :rows].sum(axis=0)
            short_out[snap_first[t] : snap_stop[t]] = short_state[snapshot_tier, :rows].sum(axis=0)
    return (
        long_out,
        short_out,
        consumed_long,
        consumed_short,
        long_state[:, :rows].copy(),
        short_state[:, :rows].copy(),
        long_state[:, rows].copy(),
        short_state[:, rows].copy(),
        added_beyond,
    )


_levels_compiled = numba.njit(cache=True, nogil=True)(_levels_loop) if HAVE_NUMBA else None


def reopen_weights(inputs: StepInputs) -> Float64Array:
    """``reopen_share`` times each column's share of its tier's weight, shape (k,)."""
    tier_weight = np.bincount(inputs.column_tier, weights=inputs.weights, minlength=inputs.tiers)
    share = np.divide(inputs.weights, tier_weight[inputs.column_tier], out=np.zeros_like(inputs.weights), where=tier_weight[inputs.column_tier] > 0)
    return inputs.reopen_share * share


def run_levels(
    inputs: StepInputs,
    snapshot_step: Int64Array,
    grid: PriceGrid,
    *,
    snapshot_tiers: BoolArray | None = None,
    use_numba: bool | None = None,
) -> LevelRun:
    """Run the level recurrence over all steps.

    Parameters
    ----------
    inputs : StepInputs
        Per-step consumption cuts, scale and decay factors and additions (``n`` steps).
    snapshot_step : Int64Array, shape (columns,)
        Non-decreasing; column ``c`` records the state as it stands after step
        ``snapshot_step[c]``, or all zeros when it is -1 (before any step).
    grid : PriceGrid
        The price rows: a level at price ``p`` lands in row
        ``floor((p - grid.bottom) * grid.inverse_step)``, beyond the grid
        outside ``0 .. grid.rows - 1``. The consumption cuts in ``inputs``
        index the same rows.
    snapshot_tiers : bool array, shape (g,), optional
        Tiers summed into the snapshots (default all). Consumption, the final
        book and the beyond-grid totals always cover every tier.
    use_numba : bool or None
        Force the compiled (True) or numpy (False) implementation; None picks
        numba when it is installed.

    Returns
    -------
    LevelRun
    """
    if use_numba is None:
        use_numba = HAVE_NUMBA
    if use_numba and not HAVE_NUMBA:
        raise RuntimeError("numba is not installed")
    n = len(inputs)
    decay = np.ones(n, dtype=np.float64) if inputs.decay is None else inputs.decay
    if snapshot_tiers is None:
        snapshot_tiers = np.ones(inputs.tiers, dtype=np.bool_)
    # Fixed dtypes and layouts keep numba to a single compiled specialisation.
    arguments = (
        np.ascontiguousarray(inputs.long_clear_from, dtype=np.int64),
        np.ascontiguousarray(inputs.short_clear_below, dtype=np.int64),
        np.ascontiguousarray(inputs.scale, dtype=np.float64),
        np.ascontiguousarray(decay, dtype=np.float64),
        np.ascontiguousarray(inputs.entry_price, dtype=np.float64),
        np.ascontiguousarray(inputs.long_new_usd, dtype=np.float64),
        np.ascontiguousarray(inputs.short_new_usd, dtype=np.float64),
        np.ascontiguousarray(inputs.long_multipliers, dtype=np.float64),
        np.ascontiguousarray(inputs.short_multipliers, dtype=np.float64),
        np.ascontiguousarray(inputs.weights, dtype=np.float64),
        np.ascontiguousarray(inputs.column_tier, dtype=np.int64),
        np.ascontiguousarray(reopen_weights(inputs), dtype=np.float64),
        int(inputs.tiers),
        float(grid.bottom),
        float(grid.inverse_step),
        int(grid.rows),
        np.ascontiguousarray(snapshot_step, dtype=np.int64),
        np.ascontiguousarray(snapshot_tiers, dtype=np.bool_),
    )
    kernel = _levels_compiled if use_numba else _levels_numpy
    (
        long_usd,
        short_usd,
        consumed_long,
        consumed_short,
        final_long,
        final_short,
        beyond_long,
        beyond_short,
        added_beyond,
    ) = kernel(*arguments)
    return LevelRun(
        long_usd=long_usd,
        short_usd=short_usd,
        consumed_long_usd=consumed_long,
        consumed_short_usd=consumed_short,
        final_long_usd=final_long,
        final_short_usd=final_short,
        beyond_long_usd=beyond_long,
        beyond_short_usd=beyond_short,
        added_beyond_usd=added_beyond,
    )
