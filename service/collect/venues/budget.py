"""Per-venue request budgets: a token bucket in request weight, plus usage counters."""

from __future__ import annotations

import asyncio
import time
from collections import Counter


class RequestBudget:
    """Spend at most ``capacity`` weight at once, refilled at ``per_s`` weight per second.

    Parameters
    ----------
    capacity : float
        Largest burst, in the venue's request weight (1 per call where the venue has no weights).
    per_s : float
        Sustained rate, weight per second. Set it well inside the venue's published limit:
        other programs on the same IP share that limit.
    """

    def __init__(self, capacity: float, per_s: float) -> None:
        if capacity <= 0 or per_s <= 0:
            raise ValueError("capacity and per_s must be positive")
        self.capacity = float(capacity)
        self.per_s = float(per_s)
        self._tokens = float(capacity)
        self._updated = time.monotonic()
        self._lock = asyncio.Lock()
        self.requests: Counter[str] = Counter()  # calls per endpoint
        self.weight_spent = 0.0

    def _refill(self) -> None:
        now = time.monotonic()
        self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.per_s)
        self._updated = now

    async def acquire(self, endpoint: str, weight: float = 1.0) -> None:
        """Wait until ``weight`` is available, then spend it on one call to ``endpoint``."""
        weight = min(float(weight), self.capacity)
        async with self._lock:
            self._refill()
            while self._tokens < weight:
                await asyncio.sleep((weight - self._tokens) / self.per_s)
                self._refill()
            self._tokens -= weight
            self.requests[endpoint] += 1
            self.weight_spent += weight
