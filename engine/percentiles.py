"""Exact percentiles of the positive cells of a frame, fast.

A frame holds up to a few hundred thousand float32 cells; sorting them, or
even numpy's partition after extracting the positive ones, costs more than
computing the frame. Positive float32 values order like their bit patterns
read as integers, so a radix select finds any order statistic in
two passes: count the cells per top-16-bit bucket, then, inside the bucket
holding the wanted rank, per low-16-bit value. Compiled with numba when
available; numpy's partition otherwise (same results).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from engine.kernels import HAVE_NUMBA, numba
from engine.types import Float32Array, Float64Array


def _percentiles_kernel(values: Float32Array, percentiles: Float64Array) -> tuple[Float64Array, int]:
    """Percentiles of the positive entries (linear interpolation) and how many there are."""
    # As signed 32-bit integers positive floats are exactly the positive
    # patterns (zero is 0, negatives and -0 have the sign bit set).
    bits = values.view(np.int32)
    high = np.zeros(65536, dtype=np.int64)
    count = 0
    for i in range(values.shape[0]):
        pattern = bits[i]
        if pattern > 0:
            high[pattern >> 16] += 1
            count += 1
    out = np.zeros(percentiles.shape[0], dtype=np.float64)
    if count == 0:
        return out, 0
    last = count - 1
    # Every rank an interpolation needs, ascending: the histogram of a bucket's
    # low bits is then built once for all ranks falling in it.
    ranks = np.empty(2 * percentiles.shape[0], dtype=np.int64)
    for q in range(percentiles.shape[0]):
        lower = int(np.floor(last * percentiles[q] / 100.0))
        ranks[2 * q] = lower
        ranks[2 * q + 1] = min(lower + 1, last)
    order = np.argsort(ranks)
    found = np.zeros(ranks.shape[0], dtype=np.float64)
    low = np.zeros(65536, dtype=np.int64)
    low_bucket = -1
    pattern_bits = np.zeros(1, dtype=np.int32)
    for position in range(order.shape[0]):
        rank = ranks[order[position]]
        seen = 0
        bucket = 0
        while seen + high[bucket] <= rank:
            seen += high[bucket]
            bucket += 1
        if bucket != low_bucket:
            low[:] = 0
            for i in range(values.shape[0]):
                pattern = bits[i]
                if pattern > 0 and (pattern >> 16) == bucket:
                    low[pattern & 0xFFFF] += 1
            low_bucket = bucket
        within = rank - seen
        low_bits = 0
        while low[low_bits] <= within:
            within -= low[low_bits]
            low_bits += 1
        pattern_bits[0] = (bucket << 16) | low_bits
        found[order[position]] = pattern_bits.view(np.float32)[0]
    for q in range(percentiles.shape[0]):
        rank = last * percentiles[q] / 100.0
        lower_value = found[2 * q]
        out[q] = lower_value + (found[2 * q + 1] - lower_value) * (rank - np.floor(rank))
    return out, count


_percentiles_compiled = numba.njit(cache=True, nogil=True)(_percentiles_kernel) if HAVE_NUMBA else None


def positive_percentiles(cells: Float32Array, percentiles: Sequence[float], *, use_numba: bool | None = None) -> list[float] | None:
    """Percentiles (linear interpolation, as ``np.percentile``) of the positive cells.

    Parameters
    ----------
    cells : Float32Array, any shape
        Non-negative finite values.
    percentiles : sequence of float
        In [0, 100].
    use_numba : bool or None
        Force the radix select (True) or numpy (False).

    Returns
    -------
    list of float, or None when no cell is positive.
    """
    flat = np.ascontiguousarray(cells, dtype=np.float32).reshape(-1)
    if use_numba is None:
        use_numba = HAVE_NUMBA
    if not use_numba:
        positive = flat[flat > 0]
        if not positive.size:
            return None
        return [float(v) for v in np.percentile(positive, list(percentiles))]
    values, count = _percentiles_compiled(flat, np.asarray(percentiles, dtype=np.float64))
    return [float(v) for v in values] if count else None
