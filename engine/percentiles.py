"""A frame's cell statistics in two passes: maxima and exact percentiles of the positive cells.

A frame holds up to a few hundred thousand float32 cells per side; sorting
their sums, or even numpy's partition after extracting the positive ones,
costs more than computing the frame. Positive float32 values order like
their bit patterns read as (signed 32-bit) integers, so a radix select finds
any order statistic in two passes: count the cells per top-16-bit bucket
(1/128 of a power of two wide), then gather the few buckets holding the
wanted ranks and sort just those. Compiled with numba when available; numpy
otherwise (same results).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from engine.kernels import HAVE_NUMBA, numba
from engine.types import Float32Array, Float64Array, Int32Array


@dataclass(frozen=True, slots=True)
class CellStats:
    """Maxima of the long, short and long + short cells, and percentiles of the positive sums (None if none)."""

    max_long: float
    max_short: float
    max_cell: float
    percentiles: list[float] | None


def _percentiles_kernel(bits: Int32Array, percentiles: Float64Array) -> tuple[Float64Array, int]:
    """Percentiles of the positive float32 values whose bit patterns are ``bits``, and their count."""
    n = bits.shape[0]
    high = np.zeros(65536, dtype=np.int64)
    count = 0
    for i in range(n):
        pattern = bits[i]
        if pattern > 0:
            high[pattern >> 16] += 1
            count += 1
    out = np.zeros(percentiles.shape[0], dtype=np.float64)
    if count == 0:
        return out, 0
    last = count - 1
    # Every rank an interpolation needs, located in its top-16-bit bucket.
    wanted = 2 * percentiles.shape[0]
    ranks = np.empty(wanted, dtype=np.int64)
    for q in range(percentiles.shape[0]):
        lower = int(np.floor(last * percentiles[q] / 100.0))
        ranks[2 * q] = lower
        ranks[2 * q + 1] = min(lower + 1, last)
    bucket_of = np.empty(wanted, dtype=np.int64)
    within = np.empty(wanted, dtype=np.int64)
    slot_of_bucket = np.full(65536, -1, dtype=np.int8)
    slot_start = np.zeros(wanted + 1, dtype=np.int64)
    slots = 0
    for r in range(wanted):
        seen = 0
        bucket = 0
        while seen + high[bucket] <= ranks[r]:
            seen += high[bucket]
            bucket += 1
        bucket_of[r] = bucket
        within[r] = ranks[r] - seen
        if slot_of_bucket[bucket] < 0:
            slot_of_bucket[bucket] = slots
            slot_start[slots + 1] = slot_start[slots] + high[bucket]
            slots += 1
    # Second pass: gather the few buckets holding a wanted rank, then sort each.
    gathered = np.empty(slot_start[slots], dtype=np.int32)
    filled = slot_start[:slots].copy()
    for i in range(n):
        pattern = bits[i]
        if pattern > 0:
            slot = slot_of_bucket[pattern >> 16]
            if slot >= 0:
                gathered[filled[slot]] = pattern
                filled[slot] += 1
    for slot in range(slots):
        gathered[slot_start[slot] : slot_start[slot + 1]].sort()
    found = np.empty(1, dtype=np.int32)
    value = found.view(np.float32)
    ranked = np.empty(wanted, dtype=np.float64)
    for r in range(wanted):
        found[0] = gathered[slot_start[slot_of_bucket[bucket_of[r]]] + within[r]]
        ranked[r] = value[0]
    for q in range(percentiles.shape[0]):
        rank = last * percentiles[q] / 100.0
        out[q] = ranked[2 * q] + (ranked[2 * q + 1] - ranked[2 * q]) * (rank - np.floor(rank))
    return out, count


_percentiles_compiled = numba.njit(cache=True, nogil=True)(_percentiles_kernel) if HAVE_NUMBA else None


def cell_stats(long_usd: Float32Array, short_usd: Float32Array, percentiles: Sequence[float], *, use_numba: bool | None = None) -> CellStats:
    """Maxima of each side and of ``long + short``, and percentiles of the positive ``long + short`` cells.

    Parameters
    ----------
    long_usd, short_usd : Float32Array, same shape
        Non-negative finite cells; the sums are taken in float32, as a
        picture of the frame shows them.
    percentiles : sequence of float
        In [0, 100]; linear interpolation, as ``np.percentile``.
    use_numba : bool or None
        Force the radix select (True) or numpy (False).
    """
    long_flat = np.ascontiguousarray(long_usd, dtype=np.float32).reshape(-1)
    short_flat = np.ascontiguousarray(short_usd, dtype=np.float32).reshape(-1)
    if use_numba is None:
        use_numba = HAVE_NUMBA
    combined = long_flat + short_flat
    maxima = (float(long_flat.max(initial=0.0)), float(short_flat.max(initial=0.0)), float(combined.max(initial=0.0)))
    if not use_numba:
        positive = combined[combined > 0]
        values = [float(v) for v in np.percentile(positive.astype(np.float64), list(percentiles))] if positive.size else None
        return CellStats(*maxima, percentiles=values)
    found, count = _percentiles_compiled(combined.view(np.int32), np.asarray(percentiles, dtype=np.float64))
    return CellStats(*maxima, percentiles=[float(v) for v in found] if count else None)


def positive_percentiles(cells: Float32Array, percentiles: Sequence[float], *, use_numba: bool | None = None) -> list[float] | None:
    """Percentiles (linear interpolation) of the positive cells; None when none is positive."""
    return cell_stats(cells, np.zeros_like(cells, dtype=np.float32), percentiles, use_numba=use_numba).percentiles
