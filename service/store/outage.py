"""Whether this process reaches the store, said once per change.

During a store outage every request, job, write and heartbeat of a process fails the same
way; a line (and a traceback) for each buries the logs. Code that meets a store error calls
:meth:`StoreState.down`, code that has just used the store successfully calls
:meth:`StoreState.up`: the first logs one warning when the store goes away, the second one
line when it answers again (with how long it was away). One state per process: :data:`STORE`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from redis.exceptions import RedisError

log = logging.getLogger("liqmap.store")


def is_store_error(exc: BaseException) -> bool:
    """Whether ``exc`` came from the store client (the server is gone, refuses, or does not answer in time)."""
    return isinstance(exc, RedisError)


class StoreState:
    """The store as this process last saw it; logs only its changes."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.down_since: float | None = None
        self.outages = 0

    @property
    def is_down(self) -> bool:
        return self.down_since is not None

    def down(self, exc: BaseException, doing: str = "") -> None:
        """A store call failed: log it if the store was reachable until now."""
        if self.down_since is not None:
            return
        self.down_since = self.clock()
        self.outages += 1
        what = f" while {doing}" if doing else ""
        log.warning("store unreachable%s (%s: %s); retrying until it answers", what, type(exc).__name__, exc)

    def up(self) -> None:
        """A store call succeeded: log it if the store was away."""
        if self.down_since is None:
            return
        away = self.clock() - self.down_since
        self.down_since = None
        log.info("store reachable again after %.1f s", away)


STORE = StoreState()
