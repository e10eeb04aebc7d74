"""The work queue between collectors and workers: one Redis stream read by a consumer group.

A job names a market whose frames are due. Collectors add one when new bars are stored,
at most one waiting per market (``SET NX`` on the market's *queued* key: a burst of bars is
one job). A worker reads jobs with ``XREADGROUP``, clears the market's queued key as it
starts (bars arriving meanwhile queue the next job), and acknowledges a job (``XACK``) only
after the frames are stored. Jobs a dead or stuck worker left pending are claimed by another
with ``XAUTOCLAIM``; a job delivered ``max_attempts`` times without success is parked with
its last error instead of being retried forever.

Global keys share the hash tag ``{jobs}``; per-market keys carry the market's own.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import msgspec
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from service.store import keys
from service.store.scripts import lua

log = logging.getLogger(__name__)

GROUP = "workers"
FIELD = b"market"


class ParkedJob(msgspec.Struct, frozen=True):
    market: str
    error: str
    attempts: int
    parked_ms: int


@dataclass(frozen=True, slots=True)
class Job:
    entry_id: str
    exchange: str
    symbol: str
    deliveries: int


class JobQueue:
    """Adding, taking, finishing and parking recompute jobs."""

    def __init__(self, redis: Redis, *, stream_max_len: int = 100_000, queued_ttl_ms: int = 600_000) -> None:
        self.redis = redis
        self._release = redis.register_script(lua("release_lease.lua"))
        self.stream_max_len = stream_max_len
        self.queued_ttl_ms = queued_ttl_ms

    async def ensure_group(self) -> None:
        try:
            await self.redis.xgroup_create(keys.JOBS, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def add(self, exchange: str, symbol: str) -> bool:
        """Queue a refresh of a market unless one is waiting already; returns whether one was added."""
        if not await self.redis.set(keys.job_queued(exchange, symbol), b"1", nx=True, px=self.queued_ttl_ms):
            return False
        await self.redis.xadd(keys.JOBS, {FIELD: keys.market_id(exchange, symbol)}, maxlen=self.stream_max_len, approximate=True)
        return True

    def _jobs(self, entries: list) -> list[Job]:  # type: ignore[type-arg]
        out = []
        for entry_id, fields in entries:
            if not fields:  # deleted meanwhile (XAUTOCLAIM reports those as empty)
                continue
            exchange, symbol = keys.split_market_id(fields[FIELD].decode())
            out.append(Job(entry_id.decode(), exchange, symbol, 1))
        return out

    async def take(self, consumer: str, count: int = 1, block_ms: int = 2000) -> list[Job]:
        """New jobs for this consumer (waits up to ``block_ms`` for one)."""
        reply = await self.redis.xreadgroup(GROUP, consumer, {keys.JOBS: ">"}, count=count, block=block_ms)
        if not reply:
            return []
        entries = reply[keys.JOBS.encode()][0] if isinstance(reply, dict) else reply[0][1]
        return self._jobs(entries)

    async def started(self, job: Job) -> None:
        """The job's work begins: bars stored from now on queue another job for the market."""
        await self.redis.delete(keys.job_queued(job.exchange, job.symbol))

    async def lock_market(self, job: Job, owner: str, ttl_ms: int) -> bool:
        """Take the market's refresh lease (``SET NX PX``); False while another worker holds it."""
        return bool(await self.redis.set(keys.refresh_lock(job.exchange, job.symbol), owner, nx=True, px=ttl_ms))

    async def unlock_market(self, job: Job, owner: str) -> None:
        await self._release(keys=[keys.refresh_lock(job.exchange, job.symbol)], args=[owner])

    async def done(self, job: Job) -> None:
        """The job's frames are stored."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.xack(keys.JOBS, GROUP, job.entry_id)
            pipe.xdel(keys.JOBS, job.entry_id)
            pipe.hdel(keys.JOB_ERRORS, job.entry_id)
            await pipe.execute()

    async def failed(self, job: Job, error: str) -> None:
        """The job failed; it stays pending, to be claimed again after the idle time."""
        await self.redis.hset(keys.JOB_ERRORS, job.entry_id, error[:2000])

    async def reclaim(self, consumer: str, min_idle_ms: int, max_attempts: int, count: int = 10) -> list[Job]:
        """Jobs pending longer than ``min_idle_ms`` (their worker died, stalled or failed), now this consumer's.

        Those already delivered ``max_attempts`` times are parked instead, with their last error.
        """
        reply = await self.redis.xautoclaim(keys.JOBS, GROUP, consumer, min_idle_time=min_idle_ms, start_id="0-0", count=count)
        claimed = self._jobs(reply[1])
        if not claimed:
            return []
        pending = await self.redis.xpending_range(keys.JOBS, GROUP, min=claimed[0].entry_id, max=claimed[-1].entry_id, count=len(claimed) * 2)
        deliveries = {item["message_id"].decode(): int(item["times_delivered"]) for item in pending}
        ready = []
        for job in claimed:
            attempts = deliveries.get(job.entry_id, 1)
            if attempts > max_attempts:
                await self.park(job, attempts)
            else:
                ready.append(Job(job.entry_id, job.exchange, job.symbol, attempts))
        return ready

    async def park(self, job: Job, attempts: int) -> None:
        error = await self.redis.hget(keys.JOB_ERRORS, job.entry_id)
        parked = ParkedJob(keys.market_id(job.exchange, job.symbol), (error or b"no error recorded (the worker died or stalled)").decode(), attempts, int(time.time() * 1000))
        log.error("parking the job of %s after %d attempts: %s", parked.market, attempts, parked.error)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hset(keys.JOBS_PARKED, job.entry_id, msgspec.json.encode(parked))
            pipe.xack(keys.JOBS, GROUP, job.entry_id)
            pipe.xdel(keys.JOBS, job.entry_id)
            pipe.hdel(keys.JOB_ERRORS, job.entry_id)
            pipe.delete(keys.job_queued(job.exchange, job.symbol))
            await pipe.execute()

    async def parked(self) -> dict[str, ParkedJob]:
        raw = await self.redis.hgetall(keys.JOBS_PARKED)
        return {k.decode(): msgspec.json.decode(v, type=ParkedJob) for k, v in raw.items()}

    async def lag(self) -> int:
        """Jobs waiting or in progress."""
        groups = await self.redis.xinfo_groups(keys.JOBS)
        for group in groups:
            name = group.get("name") if isinstance(group, dict) else None
            if name in (GROUP, GROUP.encode()):
                waiting = group.get("lag") or 0
                return int(waiting) + int(group.get("pending") or 0)
        return 0


class QueuedRefresh:
    """What a collector calls for a market with new bars when workers do the refreshing: a job is queued."""

    def __init__(self, queue: JobQueue) -> None:
        self.queue = queue

    async def refresh(self, exchange: str, symbol: str, now: int) -> list[str]:
        """Queue the market's refresh; returns it as ``[exchange:symbol]`` (queued now or already waiting)."""
        await self.queue.add(exchange, symbol)
        return [keys.market_id(exchange, symbol)]
