"""The engine role: refresh jobs taken from the work queue, any number of workers sharing it.

A small loop around ``XREADGROUP`` / ``XACK`` / ``XAUTOCLAIM`` (:mod:`service.store.jobs`);
the job body, :meth:`Worker.run_job`, is a plain coroutine the tests call directly.
"""

from __future__ import annotations

import asyncio
import logging
import time

from redis.exceptions import RedisError

from service.clock import Clock, now_ms
from service.compute.refresh import Refresher
from service.metrics import JOB_QUEUE_LAG, JOBS_DONE, JOBS_FAILED, JOBS_PARKED, JOBS_PARKED_NOW, JOBS_RECLAIMED
from service.settings import Settings
from service.store.jobs import Job, JobQueue
from service.store.outage import STORE, is_store_error
from service.store.writer import Store

log = logging.getLogger(__name__)

# How often a worker looks for jobs other workers left behind, seconds.
RECLAIM_EVERY_S = 5.0


class Worker:
    def __init__(self, store: Store, settings: Settings, consumer: str, clock: Clock = now_ms, reclaim_idle_ms: int | None = None) -> None:
        """``reclaim_idle_ms``: how long a job may stay pending before another worker takes it
        (default: the job timeout and two seconds: a live worker gives a job up at its timeout)."""
        self.store = store
        self.reclaim_idle_ms = reclaim_idle_ms if reclaim_idle_ms is not None else int(settings.job_timeout_s * 1000) + 2_000
        self.settings = settings
        self.consumer = consumer
        self.clock = clock
        self.queue = JobQueue(store.redis)
        self.refresher = Refresher(store, settings)
        self.last_tick = time.monotonic()

    async def run_job(self, job: Job) -> None:
        """Refresh the job's market; acknowledged only once its frames are stored.

        One worker at a time refreshes a market (a lease on it for the job's length): a job for
        a market another worker is refreshing is queued again, to run after that one.
        """
        await self.queue.started(job)
        if not await self.queue.lock_market(job, self.consumer, int(self.settings.job_timeout_s * 1000) + 2_000):
            await self.queue.add(job.exchange, job.symbol)
            await self.queue.done(job)
            return
        try:
            async with asyncio.timeout(self.settings.job_timeout_s):
                await self.refresher.refresh(job.exchange, job.symbol, self.clock())
        finally:
            await self.queue.unlock_market(job, self.consumer)
        await self.queue.done(job)
        JOBS_DONE.inc()

    async def _run(self, job: Job) -> None:
        try:
            await self.run_job(job)
        except Exception as exc:  # a timeout too: one job's failure must not stop the worker
            JOBS_FAILED.inc()
            if is_store_error(exc):
                STORE.down(exc, f"refreshing {job.exchange}:{job.symbol}")
            else:
                log.warning("job for %s:%s failed (delivery %d): %r", job.exchange, job.symbol, job.deliveries, exc)
            try:
                await self.queue.failed(job, repr(exc))
            except RedisError as store_exc:
                STORE.down(store_exc, "recording a failed job")  # it stays pending; it will be claimed again

    async def step(self, reclaim: bool) -> int:
        """One turn: jobs left behind (when ``reclaim``), else new ones; returns how many were run."""
        jobs: list[Job] = []
        if reclaim:
            parked_before = len(await self.queue.parked())
            jobs = await self.queue.reclaim(self.consumer, self.reclaim_idle_ms, self.settings.job_max_attempts)
            parked_now = len(await self.queue.parked())
            JOBS_PARKED.inc(parked_now - parked_before)
            JOBS_PARKED_NOW.set(parked_now)
            JOBS_RECLAIMED.inc(len(jobs))
            JOB_QUEUE_LAG.set(await self.queue.lag())
        if not jobs:
            jobs = await self.queue.take(self.consumer)
        for job in jobs:
            await self._run(job)
        return len(jobs)

    async def run(self, stop: asyncio.Event) -> None:
        """Take and run jobs until ``stop`` is set; outlives store outages."""
        next_reclaim = 0.0
        while not stop.is_set():
            self.last_tick = time.monotonic()
            try:
                await self.queue.ensure_group()
                reclaim = time.monotonic() >= next_reclaim
                if reclaim:
                    next_reclaim = time.monotonic() + RECLAIM_EVERY_S
                await self.step(reclaim)
                STORE.up()
            except RedisError as exc:
                STORE.down(exc, f"taking jobs (worker {self.consumer})")
                await asyncio.sleep(1.0)
