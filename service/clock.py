"""Wall-clock time as the service reads it; code that depends on time takes a ``Clock``."""

from __future__ import annotations

import time
from collections.abc import Callable

# A function returning the current time, epoch milliseconds UTC (tests pass their own).
Clock = Callable[[], int]


def now_ms() -> int:
    return int(time.time() * 1000)
