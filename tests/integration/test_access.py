"""API keys and rate limits: created, used, revoked, counted across replicas."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from pathlib import Path

import msgspec
import pytest
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from service.store.access import Access
from service.collect.round import Collection
from service.settings import Settings
from service.collect.synthetic import SyntheticMarket
from service.store.writer import Store
from tests.integration.conftest import NOW_MS, in_process

pytestmark = pytest.mark.integration

LATEST = "/v1/heatmaps/synthetic/BTCUSDT/latest?range=12h"
CG = "/api/futures/liquidation/heatmap/model1"
CG_PARAMS = {"exchange": "synthetic", "symbol": "BTCUSDT", "range": "12h"}


@pytest.fixture
async def seeded(redis: Redis, redis_url: str) -> Settings:
    settings = Settings(redis_url=redis_url, ranges=("12h",), backfill_days=0.5, frame_rows=60)
    await Collection.create(Store(redis), settings, [SyntheticMarket(seed=1, symbols={"BTCUSDT": 77_000.0})]).collect_once(NOW_MS)
    return settings


def _app(settings: Settings, **changes: object) -> AbstractAsyncContextManager[AsyncTestClient]:
    return in_process(msgspec.structs.replace(settings, **changes))


@pytest.fixture
async def closed(seeded: Settings) -> AsyncIterator[AsyncTestClient]:
    async with _app(seeded, anonymous_access=False) as client:
        yield client


async def test_without_a_key_when_anonymous_access_is_off_is_401(closed: AsyncTestClient) -> None:
    response = await closed.get(LATEST)
    assert response.status_code == 401 and "X-API-Key" in response.json()["error"]["message"]
    response = await closed.get(CG, params=CG_PARAMS)
    assert response.status_code == 401 and response.json()["code"] == "401"
    assert (await closed.get("/health")).status_code == 200  # operations routes stay open


async def test_a_key_works_in_either_header_and_reports_its_use(closed: AsyncTestClient, redis: Redis) -> None:
    record, plain = await Access(redis).create("bot", 50)
    first = await closed.get(LATEST, headers={"X-API-Key": plain})
    assert first.status_code == 200, first.text
    assert first.headers["api-key-max-limit"] == "50" and first.headers["api-key-use-limit"] == "1"
    second = await closed.get(CG, params=CG_PARAMS, headers={"CG-API-KEY": plain})
    assert second.status_code == 200 and second.headers["api-key-use-limit"] == "2"
    stored = await redis.hget("lm:api_keys", record.id)
    assert plain.split("_", 2)[2].encode() not in stored  # only the hash is kept


async def test_wrong_and_revoked_keys_are_401(seeded: Settings, closed: AsyncTestClient, redis: Redis) -> None:
    access = Access(redis)
    record, plain = await access.create("tmp", 10)
    wrong = plain[:-3] + ("aaa" if not plain.endswith("aaa") else "bbb")
    assert (await closed.get(LATEST, headers={"X-API-Key": wrong})).status_code == 401
    assert (await closed.get(LATEST, headers={"X-API-Key": plain})).status_code == 200
    assert await access.revoke(record.id)
    # Every replica refuses it at once (test_revocation.py): one that never saw the key too.
    async with _app(seeded, anonymous_access=False) as other_replica:
        response = await other_replica.get(LATEST, headers={"X-API-Key": plain})
        assert response.status_code == 401 and "revoked" in response.json()["error"]["message"]
    assert not await access.revoke("nonexist")


async def test_limit_is_shared_by_replicas_and_answers_429_with_retry_after(seeded: Settings, redis: Redis) -> None:
    _, plain = await Access(redis).create("small", 3)
    headers = {"X-API-Key": plain}
    async with AsyncExitStack() as stack:
        one = await stack.enter_async_context(_app(seeded, anonymous_access=False))
        two = await stack.enter_async_context(_app(seeded, anonymous_access=False))
        statuses = [(await client.get(LATEST, headers=headers)).status_code for client in (one, two, one)]
        assert statuses == [200, 200, 200]
        limited = await two.get(LATEST, headers=headers)
        assert limited.status_code == 429
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        assert limited.headers["api-key-use-limit"] == "3"
        assert "3 requests per minute" in limited.json()["error"]["message"]
        cg_limited = await one.get(CG, params=CG_PARAMS, headers={"CG-API-KEY": plain})
        assert cg_limited.status_code == 429 and cg_limited.json()["code"] == "429"


async def test_anonymous_clients_are_limited_too(seeded: Settings) -> None:
    async with _app(seeded, anonymous_access=True, anonymous_limit_per_min=2) as client:
        assert [(await client.get(LATEST)).status_code for _ in range(3)] == [200, 200, 429]
        # A Coinglass key is not ours: with anonymous access on it is served (and counted) as anonymous.
        assert (await client.get(CG, params=CG_PARAMS, headers={"CG-API-KEY": "coinglass-key"})).status_code == 429


LIQMAP = str(Path(sys.executable).parent / "liqmap")


def test_keys_cli_creates_lists_and_revokes(redis_url: str, redis: Redis) -> None:  # noqa: ARG001
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("LIQMAP_")}, "REDIS_URL": redis_url}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([LIQMAP, "keys", *args], capture_output=True, text=True, env=env, timeout=60)

    created = run("create", "--name", "research", "--limit", "600/min")
    assert created.returncode == 0, created.stderr
    plain = created.stdout.strip()
    assert plain.startswith("lm_") and "600 requests/min" in created.stderr
    key_id = plain.split("_")[1]
    listed = run("list")
    assert f"{key_id}  research  600/min  active" in listed.stdout and plain not in listed.stdout
    assert run("revoke", key_id).returncode == 0
    assert f"{key_id}  research  600/min  revoked" in run("list").stdout
    missing = run("revoke", "zzzzzzzz")
    assert missing.returncode == 1 and "no key" in missing.stderr
    bad = run("create", "--name", "x", "--limit", "lots")
    assert bad.returncode == 2 and "600/min" in bad.stderr


async def test_far_from_the_limit_counts_reach_the_store_within_the_flush_interval(redis: Redis) -> None:
    replica_a, replica_b = Access(redis), Access(redis)
    now = 1_780_000_010_000
    for _ in range(10):
        assert (await replica_a.count("bot", 1000, now)).allowed
    for _ in range(5):
        await replica_b.count("bot", 1000, now)
    counter = f"lm:rl:{{bot}}:{now - now % 60_000}"
    # Each replica's first request was counted in the store; the rest wait for a flush.
    assert int(await redis.get(counter)) == 2
    await replica_a.flush(now)
    await replica_b.flush(now)
    assert int(await redis.get(counter)) == 15
    assert 0 < await redis.pttl(counter) <= 60_000
    # A replica learns the others' share at its next flush.
    await replica_a.count("bot", 1000, now)
    await replica_a.flush(now)
    assert (await replica_a.count("bot", 1000, now)).used == 17


async def test_near_the_limit_every_request_is_counted_in_the_store_at_once(redis: Redis) -> None:
    replicas = [Access(redis), Access(redis), Access(redis)]
    now = 1_780_000_010_000
    for _ in range(100):
        await replicas[0].count("tight", 120, now)
    await replicas[0].flush(now)
    # 100 of 120 used: every further request, on any replica, is counted in the store at once.
    outcomes = [(await replicas[i % 3].count("tight", 120, now)).allowed for i in range(30)]
    assert outcomes == [True] * 20 + [False] * 10
