"""The API tests' fixtures: a store a module fills, and the app over it, served two ways.

``client``: the app in this process (Litestar's ``AsyncTestClient``), for every API test.
``live`` / ``live_url``: the app behind uvicorn on a loopback port, only where a real socket
is needed (server-sent events, a Coinglass client, fuzzing from the OpenAPI document).
Both serve the store ``seeded`` names (one day of synthetic BTCUSDT by default; a module
overrides ``seeded`` with data of its own) with "now" as ``api_clock`` says.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import httpx
import pytest
import uvicorn
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from service.api.app import create_app
from service.clock import Clock, now_ms
from service.collect.round import Collection
from service.collect.synthetic import SyntheticMarket
from service.roles import api_server_config
from service.settings import Settings
from service.store.writer import Store
from tests.conftest import free_port

# The instant the synthetic market is collected at (tests step on from it).
NOW_MS = 1_780_000_000_000


@asynccontextmanager
async def in_process(settings: Settings, clock: Clock = now_ms) -> AsyncIterator[AsyncTestClient]:
    """The app in this process, its lifespan (store client, caches) running."""
    async with AsyncTestClient(app=create_app(settings, clock=clock)) as client:
        yield client


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()

    async def startup(self, sockets: list | None = None) -> None:
        await super().startup(sockets)
        self.ready.set()


@contextmanager
def served(settings: Settings, clock: Clock = now_ms) -> Iterator[str]:
    """The app behind uvicorn on a free loopback port, in a thread and event loop of its own; yields its base URL."""
    port = free_port()
    server = _Server(api_server_config(create_app(settings, clock=clock), settings, host="127.0.0.1", port=port, log_level="warning"))

    def run() -> None:
        try:
            server.run()
        finally:
            server.ready.set()  # also when it could not start: the waiter then sees it did not

    thread = threading.Thread(target=run, name=f"uvicorn:{port}", daemon=True)
    thread.start()
    server.ready.wait(timeout=60)
    if not server.started:
        raise RuntimeError(f"the API did not start on port {port}")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
async def pipeline(redis: Redis, redis_url: str) -> Collection:
    """One day of synthetic BTCUSDT collected at NOW_MS, frames of 12h and 24h computed."""
    settings = Settings(redis_url=redis_url, ranges=("12h", "24h"), backfill_days=1.0, frame_rows=100)
    pipeline = Collection.create(Store(redis), settings, [SyntheticMarket(seed=4, symbols={"BTCUSDT": 77_000.0})])
    await pipeline.collect_once(NOW_MS)
    return pipeline


@pytest.fixture
def seeded(pipeline: Collection) -> Settings:
    """Settings of the store the app serves, once it holds the module's data."""
    return pipeline.settings


@pytest.fixture
def api_clock() -> Clock:
    """What "now" is to the app: the wall clock, unless a module pins it."""
    return now_ms


@pytest.fixture
async def client(seeded: Settings, api_clock: Clock) -> AsyncIterator[AsyncTestClient]:
    async with in_process(seeded, api_clock) as test_client:
        yield test_client


@pytest.fixture
def live_url(seeded: Settings, api_clock: Clock) -> Iterator[str]:
    with served(seeded, api_clock) as url:
        yield url


@pytest.fixture
async def live(live_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=live_url, timeout=30) as http:
        yield http
