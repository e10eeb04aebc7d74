"""The level recurrence shared by every heatmap model.

State is two vectors over price rows, the outstanding long and short
liquidation notional in USD. Each time step, in this order:

1. consume: long rows from ``long_clear_from[t]`` up and short rows below
   ``short_clear_below[t]`` are emptied (price traded through them); the
   emptied USD is recorded per step;
2. scale: both sides are multiplied by ``scale[t]`` (falling open interest,
   time decay, ...);
3. add: each side receives ``k`` precomputed (row, USD) additions; rows of -1
   are off the grid and skipped. Levels added here are first checked for
   consumption at step ``t + 1``.

A model is then only the vectorised precomputation of these per-step arrays
(:class:`StepInputs`); the loop over time lives here once. It is JIT-compiled
with numba when numba is importable, otherwise a numpy version runs the same
recurrence with one vector operation per step and side.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.types import Float32Array, Float64Array, Int64Array

try:
    import numba
except ImportError:  # the engine must stay usable with numpy alone
    numba = None

HAVE_NUMBA = numba is not None


@dataclass(frozen=True, slots=True)
class StepInputs:
    """Per-step inputs to the level recurrence, for ``n`` steps and ``k`` additions per side.

    Attributes
    ----------
    long_clear_from : Int64Array, shape (n,)
        Long rows ``>= long_clear_from[t]`` are consumed at step ``t``
        (``rows`` consumes none).
    short_clear_below : Int64Array, shape (n,)
        Short rows ``< short_clear_below[t]`` are consumed at step ``t``
        (0 consumes none).
    scale : Float64Array, shape (n,)
        Factor applied to all outstanding levels after consumption, in [0, 1].
    long_rows, short_rows : Int64Array, shape (n, k)
        Row of each new level opened at step ``t``; -1 where it is off the grid.
    long_add_usd, short_add_usd : Float64Array, shape (n, k)
        Notional of each new level, USD.
    """

    long_clear_from: Int64Array
    short_clear_below: Int64Array
    scale: Float64Array
    long_rows: Int64Array
    long_add_usd: Float64Array
    short_rows: Int64Array
    short_add_usd: Float64Array

    def __len__(self) -> int:
        return int(self.scale.shape[0])


@dataclass(frozen=True, slots=True)
class LevelRun:
    """Output of the level recurrence.

    Attributes
    ----------
    long_usd, short_usd : Float32Array, shape (columns, rows)
        Outstanding notional per row at each snapshot, USD.
    consumed_long_usd, consumed_short_usd : Float64Array, shape (n,)
        Notional consumed (estimated liquidations) at each step, USD.
    """

    long_usd: Float32Array
    short_usd: Float32Array
    consumed_long_usd: Float64Array
    consumed_short_usd: Float64Array


def _levels_loop(
    long_clear_from: Int64Array,
    short_clear_below: Int64Array,
    scale: Float64Array,
    long_rows: Int64Array,
    long_add_usd: Float64Array,
    short_rows: Int64Array,
    short_add_usd: Float64Array,
    snapshot_step: Int64Array,
    rows: int,
) -> tuple[Float32Array, Float32Array, Float64Array, Float64Array]:
    """Scalar-loop recurrence, written for numba (far too slow interpreted)."""
    n, k = long_rows.shape
    columns = snapshot_step.shape[0]
    # The state holds notional divided by ``book_scale``, the product of all
    # scale factors so far: scaling the whole book is then one multiplication
    # instead of a pass over the rows (with time decay that is every step).
    long_state = np.zeros(rows, dtype=np.float64)
    short_state = np.zeros(rows, dtype=np.float64)
    book_scale = 1.0
    long_out = np.zeros((columns, rows), dtype=np.float32)
    short_out = np.zeros((columns, rows), dtype=np.float32)
    consumed_long = np.zeros(n, dtype=np.float64)
    consumed_short = np.zeros(n, dtype=np.float64)
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
            total = 0.0
            for r in range(max(cut, long_lo), long_hi):
                total += long_state[r]
                long_state[r] = 0.0
            consumed_long[t] = total * book_scale
            long_hi = max(cut, long_lo)
            if long_hi <= long_lo:
                long_lo, long_hi = rows, 0
        cut = short_clear_below[t]
        if cut > short_lo:
            total = 0.0
            for r in range(short_lo, min(cut, short_hi)):
                total += short_state[r]
                short_state[r] = 0.0
            consumed_short[t] = total * book_scale
            short_lo = min(cut, short_hi)
            if short_hi <= short_lo:
                short_lo, short_hi = rows, 0
        factor = scale[t]
        if factor == 0.0:
            long_state[:] = 0.0
            short_state[:] = 0.0
            long_lo, long_hi = rows, 0
            short_lo, short_hi = rows, 0
            book_scale = 1.0
        elif factor != 1.0:
            book_scale *= factor
            if book_scale < 1e-100:
                # Fold the factor into the rows before 1/book_scale overflows.
                for r in range(long_lo, long_hi):
                    long_state[r] *= book_scale
                for r in range(short_lo, short_hi):
                    short_state[r] *= book_scale
                book_scale = 1.0
        for j in range(k):
            r = long_rows[t, j]
            if r >= 0:
                long_state[r] += long_add_usd[t, j] / book_scale
                long_lo = min(long_lo, r)
                long_hi = max(long_hi, r + 1)
            r = short_rows[t, j]
            if r >= 0:
                short_state[r] += short_add_usd[t, j] / book_scale
                short_lo = min(short_lo, r)
                short_hi = max(short_hi, r + 1)
        while column < columns and snapshot_step[column] == t:
            for r in range(long_lo, long_hi):
                long_out[column, r] = long_state[r] * book_scale
            for r in range(short_lo, short_hi):
                short_out[column, r] = short_state[r] * book_scale
            column += 1
    return long_out, short_out, consumed_long, consumed_short


def _levels_numpy(
    long_clear_from: Int64Array,
    short_clear_below: Int64Array,
    scale: Float64Array,
    long_rows: Int64Array,
    long_add_usd: Float64Array,
    short_rows: Int64Array,
    short_add_usd: Float64Array,
    snapshot_step: Int64Array,
    rows: int,
) -> tuple[Float32Array, Float32Array, Float64Array, Float64Array]:
    """The same recurrence with one numpy vector operation per step and side."""
    n = long_rows.shape[0]
    columns = snapshot_step.shape[0]
    # One extra "sink" row takes the off-grid additions (-1 indexes it), so
    # the per-step add needs no mask; it is never read back.
    long_state = np.zeros(rows + 1, dtype=np.float64)
    short_state = np.zeros(rows + 1, dtype=np.float64)
    long_out = np.zeros((columns, rows), dtype=np.float32)
    short_out = np.zeros((columns, rows), dtype=np.float32)
    consumed_long = np.zeros(n, dtype=np.float64)
    consumed_short = np.zeros(n, dtype=np.float64)
    # Snapshot columns grouped by the step they are taken after.
    snap_first = np.searchsorted(snapshot_step, np.arange(n), side="left")
    snap_stop = np.searchsorted(snapshot_step, np.arange(n), side="right")
    for t in range(n):
        cut = long_clear_from[t]
        consumed_long[t] = long_state[cut:rows].sum()
        long_state[cut:rows] = 0.0
        cut = short_clear_below[t]
        consumed_short[t] = short_state[:cut].sum()
        short_state[:cut] = 0.0
        if scale[t] != 1.0:
            long_state *= scale[t]
            short_state *= scale[t]
        np.add.at(long_state, long_rows[t], long_add_usd[t])
        np.add.at(short_state, short_rows[t], short_add_usd[t])
        if snap_stop[t] > snap_first[t]:
            long_out[snap_first[t] : snap_stop[t]] = long_state[:rows]
            short_out[snap_first[t] : snap_stop[t]] = short_state[:rows]
    return long_out, short_out, consumed_long, consumed_short


_levels_compiled = numba.njit(cache=True, nogil=True)(_levels_loop) if HAVE_NUMBA else None


def run_levels(
    inputs: StepInputs,
    snapshot_step: Int64Array,
    rows: int,
    *,
    use_numba: bool | None = None,
) -> LevelRun:
    """Run the level recurrence over all steps.

    Parameters
    ----------
    inputs : StepInputs
        Per-step consumption cuts, scale factors and additions (``n`` steps).
    snapshot_step : Int64Array, shape (columns,)
        Non-decreasing; column ``c`` records the state as it stands after step
        ``snapshot_step[c]``, or all zeros when it is -1 (before any step).
    rows : int
        Number of price rows; every row index in ``inputs`` is < ``rows``.
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
    # Fixed dtypes and layouts keep numba to a single compiled specialisation.
    arguments = (
        np.ascontiguousarray(inputs.long_clear_from, dtype=np.int64),
        np.ascontiguousarray(inputs.short_clear_below, dtype=np.int64),
        np.ascontiguousarray(inputs.scale, dtype=np.float64),
        np.ascontiguousarray(inputs.long_rows, dtype=np.int64),
        np.ascontiguousarray(inputs.long_add_usd, dtype=np.float64),
        np.ascontiguousarray(inputs.short_rows, dtype=np.int64),
        np.ascontiguousarray(inputs.short_add_usd, dtype=np.float64),
        np.ascontiguousarray(snapshot_step, dtype=np.int64),
        int(rows),
    )
    kernel = _levels_compiled if use_numba else _levels_numpy
    long_usd, short_usd, consumed_long, consumed_short = kernel(*arguments)
    return LevelRun(
        long_usd=long_usd,
        short_usd=short_usd,
        consumed_long_usd=consumed_long,
        consumed_short_usd=consumed_short,
    )
