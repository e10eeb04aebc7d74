"""Named array types used across the engine."""

from __future__ import annotations

from typing import Any

import numpy as np

Float64Array = np.ndarray[Any, np.dtype[np.float64]]
Float32Array = np.ndarray[Any, np.dtype[np.float32]]
Int64Array = np.ndarray[Any, np.dtype[np.int64]]
Int32Array = np.ndarray[Any, np.dtype[np.int32]]
BoolArray = np.ndarray[Any, np.dtype[np.bool_]]
