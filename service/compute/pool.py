"""Engine work a serving process asks for, run in worker processes of its own (never under its GIL).

The API builds frames that are not kept whole (long ranges, history, leverage filters) and
liquidation maps on request. Those are CPU work of tens of milliseconds: run on the API's
event loop or in its threads they would hold up every other request. Here they run in a
small process pool, started on first use (a process that never builds one never pays for it).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


class EnginePool:
    """``await pool.run(fn, *args)``: ``fn(*args)`` in a worker process (``processes`` 0: in a thread)."""

    def __init__(self, processes: int, nice: int = 0) -> None:
        self.processes = processes
        self.nice = nice
        self._executor: Executor | None = None

    def _ready(self) -> Executor:
        if self._executor is None:
            if self.processes > 0:
                # spawn: a fork of a process with an event loop and sockets open is not safe.
                self._executor = ProcessPoolExecutor(
                    self.processes, mp_context=multiprocessing.get_context("spawn"), initializer=_engine_process, initargs=(self.nice, os.getpid())
                )
            else:
                self._executor = ThreadPoolExecutor(1, thread_name_prefix="engine")
        return self._executor

    def warm(self) -> None:
        """Start the processes now and have each load the engine (its compiled kernels come from
        numba's cache), so that the first request does not wait for it."""
        executor = self._ready()
        for _ in range(max(1, self.processes)):
            executor.submit(_load_engine)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._ready(), fn, *args)

    def close(self) -> None:
        """Stop the processes (waiting for the build in hand, if any): none outlives this process."""
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None


def _engine_process(nice: int, parent_pid: int) -> None:
    """Start-up of an engine process: lower its priority; exit when its parent is gone (killed
    before it could stop the pool, a pool process would otherwise live on)."""
    lower_priority(nice)

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _load_engine() -> None:
    from engine.build import build_frames  # noqa: F401 (the import is the work)
    from service.wire import cells, packed  # noqa: F401


def lower_priority(nice: int) -> None:
    """Run this process's CPU work after that of processes serving requests (``nice`` > 0)."""
    if nice > 0:
        os.nice(nice)
