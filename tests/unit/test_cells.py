"""Coinglass cells written from arrays are the bytes the JSON encoder writes for the lists."""

from __future__ import annotations

import msgspec
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from service.wire.cells import EXACT_BELOW, cells_json


def reference(x: np.ndarray, y: np.ndarray, usd: np.ndarray) -> bytes:
    return msgspec.json.encode([[a, b, c] for a, b, c in zip(x.tolist(), y.tolist(), usd.tolist())])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5000), st.integers(0, 5000), st.floats(0, EXACT_BELOW * 0.999, allow_nan=False)), max_size=60))
def test_cells_equal_the_encoder_output(cells: list[tuple[int, int, float]]) -> None:
    x = np.array([c[0] for c in cells], dtype=np.int64)
    y = np.array([c[1] for c in cells], dtype=np.int64)
    usd = np.round(np.array([c[2] for c in cells], dtype=np.float64), 2)
    assert cells_json(x, y, usd) == reference(x, y, usd)


def test_round_numbers_tenths_and_huge_values() -> None:
    usd = np.round(np.array([0.0, 0.01, 0.1, 1.0, 10.5, 99.99, 123456789.07, 2e12 + 0.25, 3e13 + 0.5]), 2)
    x = np.arange(len(usd), dtype=np.int64)
    assert cells_json(x, x * 7, usd) == reference(x, x * 7, usd)
    assert cells_json(x[:0], x[:0], usd[:0]) == b"[]"
