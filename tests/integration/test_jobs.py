"""The work queue and the worker: one job per burst, acknowledged after the frames, reclaimed from the dead, parked when hopeless."""

from __future__ import annotations

import numpy as np
import pytest
from redis.asyncio import Redis

from service.collect.round import Collection
from service.collect.synthetic import SyntheticMarket
from service.compute.worker import Worker
from service.settings import Settings
from service.store import keys
from service.store.jobs import GROUP, JobQueue
from service.store.writer import Store

pytestmark = pytest.mark.integration

MINUTE = 60_000
NOW_MS = 1_780_000_000_000


def settings(redis_url: str, **extra: object) -> Settings:
    return Settings(redis_url=redis_url, ranges=("12h", "24h"), backfill_days=1.0, frame_rows=50, **extra)  # type: ignore[arg-type]


async def pending(redis: Redis) -> int:
    return int((await redis.xpending(keys.JOBS, GROUP))["pending"])


async def test_a_burst_of_bars_is_one_job_and_bars_during_the_work_queue_the_next(redis: Redis) -> None:
    queue = JobQueue(redis)
    await queue.ensure_group()
    await queue.ensure_group()  # a second worker starting: the group exists already
    assert await queue.add("okx", "BTCUSDT") and not await queue.add("okx", "BTCUSDT")
    assert await queue.add("okx", "ETHUSDT")
    jobs = await queue.take("w1", count=10, block_ms=100)
    assert [(job.exchange, job.symbol) for job in jobs] == [("okx", "BTCUSDT"), ("okx", "ETHUSDT")]
    assert not await queue.add("okx", "BTCUSDT")  # taken but not started: still one waiting
    await queue.started(jobs[0])
    assert await queue.add("okx", "BTCUSDT")  # new bars after the work began: one more job
    await queue.done(jobs[0])
    assert await pending(redis) == 1 and await redis.xlen(keys.JOBS) == 2


async def test_collected_markets_are_refreshed_by_a_worker_and_acknowledged_after(redis: Redis, redis_url: str) -> None:
    store = Store(redis)
    collection = Collection.queued(store, settings(redis_url), [SyntheticMarket(seed=2, symbols={"BTCUSDT": 70_000.0, "ETHUSDT": 3_000.0})])
    assert sorted(await collection.collect_once(NOW_MS)) == [("synthetic", "BTCUSDT"), ("synthetic", "ETHUSDT")]
    assert await store.latest_packed("synthetic", "BTCUSDT", "model1", "24h") is None  # queued, not computed here
    worker = Worker(store, settings(redis_url), "w1", clock=lambda: NOW_MS)
    await worker.queue.ensure_group()
    ran = 0
    while ran < 2:
        ran += await worker.step(reclaim=False)
    for symbol in ("BTCUSDT", "ETHUSDT"):
        assert await store.latest_packed("synthetic", symbol, "model1", "24h") is not None
    assert await pending(redis) == 0 and await redis.xlen(keys.JOBS) == 0
    assert await worker.queue.lag() == 0


async def test_a_job_left_by_a_dead_worker_is_claimed_by_another(redis: Redis, redis_url: str) -> None:
    store = Store(redis)
    collection = Collection.queued(store, settings(redis_url), [SyntheticMarket(seed=3, symbols={"BTCUSDT": 70_000.0})])
    await collection.collect_once(NOW_MS)
    queue = JobQueue(redis)
    await queue.ensure_group()
    taken = await queue.take("dead", block_ms=100)
    assert len(taken) == 1  # ... and the worker that took it dies before finishing
    survivor = Worker(store, settings(redis_url), "alive", clock=lambda: NOW_MS, reclaim_idle_ms=500)
    assert await survivor.step(reclaim=False) == 0  # nothing new
    await redis.execute_command("XCLAIM", keys.JOBS, GROUP, "dead", 0, taken[0].entry_id, "IDLE", 1000)  # idle a second
    assert await survivor.step(reclaim=True) == 1
    assert await store.latest_packed("synthetic", "BTCUSDT", "model1", "24h") is not None
    assert await pending(redis) == 0


async def test_a_job_that_keeps_failing_is_parked_with_its_error(redis: Redis, redis_url: str) -> None:
    store = Store(redis)
    bars = (await SyntheticMarket(seed=4, symbols={"BTCUSDT": 70_000.0}).backfill("BTCUSDT", NOW_MS - 3 * 60 * MINUTE, NOW_MS)).candles
    bars["low"][-5] = -1.0  # a venue's nonsense that got stored: the engine refuses the window
    await store.add_market("okx", "BTCUSDT")
    await store.upsert_candles("okx", "BTCUSDT", bars)
    oi = np.zeros(len(bars), dtype=[("ts_ms", "<i8"), ("open_interest_usd", "<f8")])
    oi["ts_ms"], oi["open_interest_usd"] = bars["ts_ms"] + MINUTE, 1e9
    await store.upsert_open_interest("okx", "BTCUSDT", oi)
    queue = JobQueue(redis)
    await queue.ensure_group()
    await queue.add("okx", "BTCUSDT")
    worker = Worker(store, settings(redis_url, job_max_attempts=2), "w1", clock=lambda: NOW_MS, reclaim_idle_ms=500)
    assert await worker.step(reclaim=False) == 1
    assert await pending(redis) == 1  # failed: left pending, not acknowledged
    runs = 0
    while not await queue.parked():
        await redis.execute_command("XCLAIM", keys.JOBS, GROUP, "w1", 0, (await redis.xrange(keys.JOBS))[0][0], "IDLE", 1000)
        runs += await worker.step(reclaim=True)
        assert runs < 5
    parked = list((await queue.parked()).values())
    assert len(parked) == 1 and parked[0].market == "okx:BTCUSDT" and parked[0].attempts == 3
    assert "positive" in parked[0].error
    assert await pending(redis) == 0 and await queue.add("okx", "BTCUSDT")  # the market can be queued again
