"""Everything through a Redis Cluster of three masters: ingest, the work queue, recompute, the API, keys, limits, SSE, leases."""

from __future__ import annotations

import asyncio
import json

import pytest
import uvicorn
import httpx
from redis.asyncio import Redis

from service.api.app import create_app
from service.collect.round import Collection
from service.collect.synthetic import SyntheticMarket
from service.compute.worker import Worker
from service.settings import Settings
from service.store import keys
from service.store.access import Access
from service.store.leases import Leases
from service.store.writer import Store
from tests.conftest import free_port

pytestmark = pytest.mark.integration

MINUTE = 60_000
NOW_MS = 1_780_000_000_000
SYMBOLS = {"BTCUSDT": 70_000.0, "ETHUSDT": 3_000.0, "SOLUSDT": 150.0, "XRPUSDT": 0.6}


def settings(cluster_url: str, **extra: object) -> Settings:
    values = {"redis_url": cluster_url, "redis_cluster": True, "ranges": ("24h", "7d"), "backfill_days": 1.0, "frame_rows": 50, "api_engine_processes": 0}
    return Settings(**{**values, **extra})  # type: ignore[arg-type]


async def drain(worker: Worker) -> int:
    done = 0
    while ran := await worker.step(reclaim=False):
        done += ran
    return done


async def test_ingest_queue_recompute_and_every_read_through_a_cluster(cluster: Redis, cluster_url: str) -> None:
    config = settings(cluster_url, anonymous_access=False)
    store = Store(cluster)
    nodes = {node.port for node in cluster.get_primaries()}  # type: ignore[attr-defined]
    assert len(nodes) == 3
    # Markets land on different nodes: one market's keys share a slot, markets do not.
    slots = {cluster.keyslot(keys.market_meta("synthetic", symbol)) for symbol in SYMBOLS}  # type: ignore[attr-defined]
    assert len(slots) == len(SYMBOLS)
    collection = Collection.queued(store, config, [SyntheticMarket(seed=5, symbols=SYMBOLS)], clock=lambda: NOW_MS)
    assert len(await collection.collect_once(NOW_MS)) == len(SYMBOLS)
    worker = Worker(store, config, "w1", clock=lambda: NOW_MS)
    await worker.queue.ensure_group()
    assert await drain(worker) == len(SYMBOLS)
    assert await worker.queue.lag() == 0
    _, key = await Access(cluster).create("cluster test", 5)

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(config), host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers={"X-API-Key": key}, timeout=30) as http:
            assert (await http.get("/v1/heatmaps/synthetic/ETHUSDT/latest", headers={"X-API-Key": ""})).status_code == 401
            first = await http.get("/v1/heatmaps/synthetic/ETHUSDT/latest")
            assert first.status_code == 200 and first.json()["symbol"] == "ETHUSDT"
            week = await http.get("/v1/heatmaps/synthetic/ETHUSDT/latest", params={"range": "7d"})  # built on request from roll-ups
            assert week.status_code == 200 and week.json()["data_until"] % (30 * MINUTE) == 0
            # A new frame is pushed over SSE (announcements through the cluster's pub/sub).
            async with http.stream("GET", "/v1/heatmaps/synthetic/ETHUSDT/stream") as response:
                lines = response.aiter_lines()
                async for line in lines:
                    if line.startswith(":"):  # the "subscribed" comment: the subscription is live
                        break
                collection.clock = lambda: NOW_MS + 6 * MINUTE
                await collection.collect_once(NOW_MS + 6 * MINUTE)
                worker.clock = lambda: NOW_MS + 6 * MINUTE
                assert await drain(worker) == len(SYMBOLS)
                event = None
                async for line in lines:
                    if line.startswith("data:"):
                        event = json.loads(line[5:])
                        break
            assert event is not None and event["data_until"] > first.json()["data_until"]
            again = await http.get(f"/v1/heatmaps/synthetic/ETHUSDT/frames/{first.json()['id']}")  # history, built again
            assert again.content == first.content
            levels = await http.get("/v1/heatmaps/synthetic/ETHUSDT/levels")
            assert levels.status_code == 200 and levels.json()["frame_id"] == event["id"]
            # The key's limit (5 a minute) is counted in the cluster: within the next requests one is
            # refused (more than 6 only if a minute's window began meanwhile and counts restarted).
            answers = [(await http.get("/v1/markets")).status_code for _ in range(12)]
            assert 429 in answers and answers.index(429) <= 6
    finally:
        server.should_exit = True
        await task


async def test_collect_replicas_split_the_markets_through_a_cluster(cluster: Redis) -> None:
    replicas = [Leases(cluster, name, shards=8, ttl_ms=5000) for name in ("a", "b")]
    for _ in range(2):
        for replica in replicas:
            await replica.heartbeat(NOW_MS)
    assert replicas[0].held | replicas[1].held == set(range(8)) and not replicas[0].held & replicas[1].held
    assert sorted(await replicas[0].holders()) == list(range(8))
