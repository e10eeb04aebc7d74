"""liqmap engine: pure compute. Arrays in, Frames out.

No IO, no Redis, no asyncio, no logging configuration. Importable with numpy
(and optionally numba, which accelerates the hot kernels) alone.
"""

from __future__ import annotations

from typing import Any

# ``clusters(frame)`` lives in the module of that name: engine.clusters.clusters.
__all__ = ["MODELS", "RANGES", "build_frame", "build_frames", "largest_row_per_side", "liquidation_map"]


def __getattr__(name: str) -> Any:
    # Lazy, so that importing a light module such as engine.frame does not
    # pull in numba and the models.
    if name in ("build_frame", "build_frames"):
        from engine import build

        return getattr(build, name)
    if name in ("liquidation_map", "largest_row_per_side"):
        from engine import book

        return getattr(book, name)
    if name == "MODELS":
        from engine.models import MODELS

        return MODELS
    if name == "RANGES":
        from engine.ranges import RANGES

        return RANGES
    raise AttributeError(f"module 'engine' has no attribute {name!r}")
