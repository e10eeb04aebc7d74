"""Fixtures shared by the API tests: a synthetic market in the store, served by a real server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
import uvicorn
from redis.asyncio import Redis

from service.api.app import create_app
from service.collect.round import Collection
from service.settings import Settings
from service.collect.synthetic import SyntheticMarket
from service.store.writer import Store
from tests.conftest import free_port

# The instant the synthetic market is collected at (tests step on from it).
NOW_MS = 1_780_000_000_000


@pytest.fixture
async def pipeline(redis: Redis, redis_url: str) -> Collection:
    """One day of synthetic BTCUSDT collected at NOW_MS, frames of 12h and 24h computed."""
    settings = Settings(redis_url=redis_url, ranges=("12h", "24h"), backfill_days=1.0, frame_rows=100)
    pipeline = Collection.create(Store(redis), settings, [SyntheticMarket(seed=4, symbols={"BTCUSDT": 77_000.0})])
    await pipeline.collect_once(NOW_MS)
    return pipeline


@pytest.fixture
async def http(pipeline: Collection) -> AsyncIterator[httpx.AsyncClient]:
    """The app behind a real uvicorn server on a free loopback port."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(pipeline.settings), host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        yield client
    server.should_exit = True
    await task
