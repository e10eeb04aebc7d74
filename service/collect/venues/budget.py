"""Per-venue request budgets: a token bucket in request weight, plus usage counters."""

from __future__ import annotations

import asyncio
import math
from collections import Counter

from service.clock import Clock, Sleep, now_ms


class RequestBudget:
    """Spend at most ``capacity`` weight at once, refilled at ``per_s`` weight per second.

    Parameters
    ----------
    capacity : float
        Largest burst, in the venue's request weight (1 per call where the venue has no weights).
    per_s : float
        Sustained rate, weight per second. Set it well inside the venue's published limit:
        other programs on the same IP share that limit.
    clock, sleep
        The time it refills by and the wait for it (tests pass a clock of their own).
    """

    def __init__(self, capacity: float, per_s: float, clock: Clock = now_ms, sleep: Sleep = asyncio.sleep) -> None:
        if capacity <= 0 or per_s <= 0:
            raise ValueError("capacity and per_s must be positive")
        self.capacity = float(capacity)
        self.per_s = float(per_s)
        self.clock = clock
        self.sleep = sleep
        self._tokens = float(capacity)
        self._updated_ms = clock()
        self._lock = asyncio.Lock()
        self.requests: Counter[str] = Counter()  # calls per endpoint
        self.weight_spent = 0.0

    def _refill(self) -> None:
        now = self.clock()
        # max(0, ...): a wall clock set back must not take tokens away.
        self._tokens = min(self.capacity, self._tokens + max(0, now - self._updated_ms) / 1000 * self.per_s)
        self._updated_ms = now

    async def acquire(self, endpoint: str, weight: float = 1.0) -> None:
        """Wait until ``weight`` is available, then spend it on one call to ``endpoint``."""
        weight = min(float(weight), self.capacity)
        async with self._lock:
            self._refill()
            while self._tokens < weight:
                await self.sleep((weight - self._tokens) / self.per_s)
                self._refill()
            self._tokens -= weight
            self.requests[endpoint] += 1
            self.weight_spent += weight


# Share of a process's request budget that polling every market's state (open interest) may
# spend; the rest stays for backfill, gap fills, tiers and market lists.
STATE_SHARE = 0.5


def poll_interval_s(markets: int, weight_per_market: float, per_s: float, round_s: float, share: float = STATE_SHARE) -> float:
    """Seconds between two polls of each of ``markets`` markets within ``share`` of a budget.

    One poll of a market costs ``weight_per_market``; the budget refills ``per_s`` weight per
    second. The answer is a whole number of collect rounds (``round_s``), at least one:
    e.g. 600 Binance markets at weight 2 within half of 20 weight/s need 120 s, every second round.
    """
    if markets <= 0 or weight_per_market <= 0:
        return round_s
    needed_s = markets * weight_per_market / (per_s * share)
    return round_s * max(1, math.ceil(needed_s / round_s - 1e-9))
