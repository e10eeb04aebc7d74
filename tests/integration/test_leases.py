"""Collect replicas split the markets through leases; a dead replica's markets are taken over."""

from __future__ import annotations

import asyncio
import time

import pytest
from redis.asyncio import Redis

from service.collect.round import Collection
from service.collect.synthetic import SyntheticMarket
from service.settings import Settings
from service.store import keys
from service.store.leases import Leases, shard_of
from service.store.writer import Store

pytestmark = pytest.mark.integration

SHARDS = 16


def now() -> int:
    return int(time.time() * 1000)


async def settle(replicas: list[Leases], rounds: int = 3) -> None:
    for _ in range(rounds):
        for replica in replicas:
            await replica.heartbeat(now())


def assert_partition(replicas: list[Leases]) -> None:
    held = [replica.held for replica in replicas]
    assert set().union(*held) == set(range(SHARDS))
    assert sum(len(h) for h in held) == SHARDS  # no shard held twice


async def test_replicas_share_the_shards_and_a_new_one_gets_its_part(redis: Redis) -> None:
    a, b = Leases(redis, "a", shards=SHARDS, ttl_ms=5000), Leases(redis, "b", shards=SHARDS, ttl_ms=5000)
    await settle([a, b])
    assert_partition([a, b])
    assert {len(a.held), len(b.held)} == {8}
    c = Leases(redis, "c", shards=SHARDS, ttl_ms=5000)
    await settle([a, b, c])
    assert_partition([a, b, c])
    assert max(len(r.held) for r in (a, b, c)) == 6 and min(len(r.held) for r in (a, b, c)) >= 4
    holders = await a.holders()
    assert sorted(holders) == list(range(SHARDS)) and set(holders.values()) == {"a", "b", "c"}


async def test_a_dead_replicas_shards_are_taken_over_within_the_lease(redis: Redis) -> None:
    ttl = 400
    a, b = Leases(redis, "a", shards=SHARDS, ttl_ms=ttl), Leases(redis, "b", shards=SHARDS, ttl_ms=ttl)
    await settle([a, b])
    lost = set(b.held)
    assert len(lost) == 8
    died = time.monotonic()  # b stops renewing: it died
    while not lost <= a.held:
        await a.heartbeat(now())
        assert time.monotonic() - died < ttl / 1000 + 2.0
        await asyncio.sleep(ttl / 4000)
    assert a.held == set(range(SHARDS))
    assert time.monotonic() - died >= ttl / 1000 * 0.5  # not before the dead one's leases could expire


async def test_a_replica_collects_only_the_markets_of_its_shards(redis: Redis, redis_url: str) -> None:
    symbols = {f"C{i:02d}USDT": 10.0 + i for i in range(12)}
    settings = Settings(redis_url=redis_url, ranges=("12h",), backfill_days=0.1, frame_rows=20)
    store = Store(redis)
    a, b = Leases(redis, "a", shards=4, ttl_ms=5000), Leases(redis, "b", shards=4, ttl_ms=5000)
    await settle([a, b])
    collected = {}
    for leases in (a, b):
        collection = Collection.queued(store, settings, [SyntheticMarket(seed=1, symbols=symbols)], leases=leases)
        collected[leases.owner] = {symbol for _, symbol in await collection.collect_once(1_780_000_000_000)}
    assert collected["a"] and collected["b"] and not collected["a"] & collected["b"]
    assert collected["a"] | collected["b"] == set(symbols)
    for owner, symbols_of in collected.items():
        mine = a if owner == "a" else b
        assert all(shard_of(keys.market_id("synthetic", symbol), 4) in mine.held for symbol in symbols_of)
