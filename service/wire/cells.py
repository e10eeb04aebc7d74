"""Coinglass's sparse ``[x, y, usd]`` cells written as JSON text straight from arrays.

A frame has up to a few hundred thousand non-zero cells; building a Python list per cell
to hand to the JSON encoder costs about a millisecond per thousand. This writes the same
bytes with one compiled loop: ``x`` and ``y`` as integers, ``usd`` (rounded to cents) the way
the JSON encoder writes a float, which for values under :data:`EXACT_BELOW` is the cents
decimal without trailing zeros (``12.5``, ``12.0``). Larger values, which no market has,
take the general path.
"""

from __future__ import annotations

import msgspec
import numpy as np

from engine.types import Float64Array, Int64Array

try:
    from numba import njit
except ImportError:  # pragma: no cover - numba is a dependency; the engine runs without it
    njit = None

# Below this a float's shortest round-trip text is its cents decimal (float spacing < 0.005).
EXACT_BELOW = 1e13


def _write_int(out: np.ndarray, at: int, value: int) -> int:
    if value == 0:
        out[at] = 48
        return at + 1
    digits = 0
    probe = value
    while probe > 0:
        digits += 1
        probe //= 10
    end = at + digits
    position = end - 1
    while value > 0:
        out[position] = 48 + value % 10
        value //= 10
        position -= 1
    return end


def _write_cells(x: np.ndarray, y: np.ndarray, cents: np.ndarray, out: np.ndarray) -> int:
    at = 0
    out[at] = 91  # [
    at += 1
    for i in range(x.shape[0]):
        if i:
            out[at] = 44  # ,
            at += 1
        out[at] = 91
        at += 1
        at = _write_int(out, at, x[i])
        out[at] = 44
        at += 1
        at = _write_int(out, at, y[i])
        out[at] = 44
        at += 1
        at = _write_int(out, at, cents[i] // 100)
        out[at] = 46  # .
        at += 1
        fraction = cents[i] % 100
        if fraction % 10 == 0:
            out[at] = 48 + fraction // 10
            at += 1
        else:
            out[at] = 48 + fraction // 10
            out[at + 1] = 48 + fraction % 10
            at += 2
        out[at] = 93  # ]
        at += 1
    out[at] = 93
    return at + 1


if njit is not None:
    _write_int = njit(cache=True, nogil=True)(_write_int)
    _write_cells = njit(cache=True, nogil=True)(_write_cells)


def cells_json(x: Int64Array, y: Int64Array, usd: Float64Array) -> bytes:
    """``[[x, y, usd], ...]`` as the JSON encoder writes it for ``usd`` rounded to cents (>= 0)."""
    if len(usd) and (float(usd.max()) >= EXACT_BELOW or float(usd.min()) < 0) or njit is None:
        return msgspec.json.encode([[a, b, c] for a, b, c in zip(x.tolist(), y.tolist(), usd.tolist())])
    cents = np.rint(usd * 100).astype(np.int64)
    # Per cell at most: 2 brackets, 3 commas, a dot, 20 digits a number.
    out = np.empty(2 + len(usd) * 70, dtype=np.uint8)
    used = _write_cells(np.ascontiguousarray(x, dtype=np.int64), np.ascontiguousarray(y, dtype=np.int64), cents, out)
    return out[:used].tobytes()
