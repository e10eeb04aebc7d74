"""API keys: revoked on every replica at once (standalone and cluster), hashed at rest, compared in constant time."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import aiohttp
import msgspec
import pytest
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from service.api.coinglass.stream import RENEW_S
from service.collect.round import Collection
from service.collect.synthetic import SyntheticMarket
from service.settings import Settings
from service.store import access as access_module
from service.store.access import Access
from service.store.reader import StoreReader
from service.store.writer import Store
from tests.integration.conftest import NOW_MS, in_process, served

pytestmark = pytest.mark.integration

MARKETS = "/v1/markets"


@pytest.fixture
async def seeded(redis: Redis, redis_url: str) -> Settings:
    settings = Settings(redis_url=redis_url, ranges=("12h",), backfill_days=0.5, frame_rows=40, anonymous_access=False)
    await Collection.create(Store(redis), settings, [SyntheticMarket(seed=1, symbols={"BTCUSDT": 77_000.0})]).collect_once(NOW_MS)
    return settings


async def _until(condition, what: str) -> None:  # noqa: ANN001
    """Wait for ``condition()`` (an event of another task), at most 5 s."""
    async with asyncio.timeout(5):
        while not condition():
            await asyncio.sleep(0.005)


@asynccontextmanager
async def _replica(settings: Settings) -> AsyncIterator[AsyncTestClient]:
    async with in_process(settings) as client:
        access: Access = client.app.state.access
        await _until(lambda: access.hearing_changes, "subscribed to key changes")
        yield client


async def test_a_revoked_key_is_refused_at_once_by_every_replica_that_served_it(seeded: Settings, redis: Redis) -> None:
    operator = Access(redis)  # what `liqmap keys revoke` uses
    record, plain = await operator.create("bot", 100)
    headers = {"X-API-Key": plain}
    async with AsyncExitStack() as stack:
        replicas = [await stack.enter_async_context(_replica(seeded)) for _ in range(2)]
        for replica in replicas:
            assert (await replica.get(MARKETS, headers=headers)).status_code == 200
            assert record.id in replica.app.state.access._records  # kept: the next check reads no store
        heard = [replica.app.state.access.changes_heard for replica in replicas]
        assert await operator.revoke(record.id)
        # Delivered by the store's pub/sub: awaited as an event, well under the 5 s a record used to be kept.
        for replica, before in zip(replicas, heard):
            await _until(lambda r=replica, b=before: r.app.state.access.changes_heard > b, "the revocation heard")
        for replica in replicas:
            response = await replica.get(MARKETS, headers=headers)
            assert response.status_code == 401 and "revoked" in response.json()["error"]["message"]


async def test_without_hearing_changes_no_record_is_kept(seeded: Settings, redis: Redis) -> None:
    operator = Access(redis)
    record, plain = await operator.create("bot", 100)
    replica = Access(redis)  # not subscribed (as during a store outage): every check reads the store
    assert await replica.verify(plain) is not None
    assert record.id not in replica._records
    await operator.revoke(record.id)
    assert await replica.verify(plain) is None


async def test_revocation_reaches_replicas_through_a_cluster(cluster: Redis) -> None:
    reader = StoreReader(cluster)
    replicas = [Access(cluster) for _ in range(2)]
    listeners = [asyncio.create_task(replica.hear_changes(reader.frame_announcements)) for replica in replicas]
    try:
        for replica in replicas:
            await _until(lambda r=replica: r.hearing_changes, "subscribed")
        heard = [replica.changes_heard for replica in replicas]
        record, plain = await Access(cluster).create("cluster bot", 10)
        for replica, before in zip(replicas, heard):
            await _until(lambda r=replica, b=before: r.changes_heard > b, "the creation heard")
        for replica in replicas:
            assert await replica.verify(plain) is not None
            assert record.id in replica._records
        heard = [replica.changes_heard for replica in replicas]
        assert await Access(cluster).revoke(record.id)
        for replica, before in zip(replicas, heard):
            await _until(lambda r=replica, b=before: r.changes_heard > b, "the revocation heard")
            assert await replica.verify(plain) is None
    finally:
        for listener in listeners:
            listener.cancel()
        await asyncio.gather(*listeners, return_exceptions=True)


async def test_keys_are_stored_as_sha256_and_compared_in_constant_time(redis: Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    access = Access(redis)
    record, plain = await access.create("bot", 10)
    secret = plain.split("_", 2)[2]
    raw = await redis.hget("lm:api_keys", record.id)
    assert msgspec.json.decode(raw)["secret_sha256"] == hashlib.sha256(secret.encode()).hexdigest()
    assert secret.encode() not in raw
    # Every check, right or wrong, known key or not, goes through one constant-time comparison of digests.
    compared: list[tuple[str, str]] = []
    real = hmac.compare_digest
    monkeypatch.setattr(access_module.hmac, "compare_digest", lambda a, b: compared.append((a, b)) or real(a, b))
    wrong = plain[:-1] + ("A" if plain[-1] != "A" else "B")
    unknown = f"lm_{'0' * 8}_{secret}" if record.id != "0" * 8 else f"lm_{'1' * 8}_{secret}"
    assert await access.verify(plain) is not None
    assert await access.verify(wrong) is None
    assert await access.verify(unknown) is None
    assert len(compared) == 3 and all(len(a) == len(b) == 64 for a, b in compared)
    assert compared[0] == (hashlib.sha256(secret.encode()).hexdigest(), record.secret_sha256)


async def test_an_open_websocket_of_a_revoked_key_is_closed_at_once(seeded: Settings, redis: Redis) -> None:
    operator = Access(redis)
    record, plain = await operator.create("socket bot", 100)
    with served(seeded) as url:
        async with aiohttp.ClientSession() as session, session.ws_connect(url.replace("http", "ws", 1) + "/ws-api", params={"cg-api-key": plain}) as ws:
            await ws.send_str("ping")
            assert (await asyncio.wait_for(ws.receive(), 10)).data == "pong"
            await operator.revoke(record.id)
            # Closed when the revocation is heard: well before the connection's next renewal (every 20 s).
            message = await asyncio.wait_for(ws.receive(), RENEW_S / 4)
            assert message.type == aiohttp.WSMsgType.CLOSE and message.data == 4401 and "revoked" in message.extra
