"""Wall-clock time as the service reads it; code that depends on time takes a ``Clock`` (and waits with a ``Sleep``)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

# A function returning the current time, epoch milliseconds UTC (tests pass their own).
Clock = Callable[[], int]
# Waiting a number of seconds on that clock: asyncio.sleep, or a test clock that moves at once.
Sleep = Callable[[float], Awaitable[None]]


def now_ms() -> int:
    return int(time.time() * 1000)
