"""Coinglass's liquidation websocket (``/ws-api``) behind a real server, fed by the collect path.

Events come from the synthetic market collected round by round (``Collection.collect_once``);
the test waits for each answer it needs (a reply, a pushed message) instead of sleeping.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import msgspec
import numpy as np
import pytest
from redis.asyncio import Redis

from service.collect.round import Collection
from service.collect.synthetic import SyntheticMarket
from service.settings import Settings
from service.store import keys
from service.store.access import Access
from service.store.rows import SIDE_LONG
from service.store.writer import Store
from tests.integration.conftest import NOW_MS, served

pytestmark = pytest.mark.integration

MINUTE = 60_000
# Bound on waiting for one message: a failure shows as a timeout, never as a hang.
WAIT_S = 30.0


@asynccontextmanager
async def connected(base_url: str, **params: str) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(base_url.replace("http", "ws", 1) + "/ws-api", params=params) as ws:
            yield ws


async def receive(ws: aiohttp.ClientWebSocketResponse) -> aiohttp.WSMessage:
    return await asyncio.wait_for(ws.receive(), WAIT_S)


async def ask(ws: aiohttp.ClientWebSocketResponse, request: object) -> dict | str:
    """Send a request and return the next message (the reply: nothing is pushed to an unsubscribed connection)."""
    await ws.send_str(request if isinstance(request, str) else json.dumps(request))
    message = await receive(ws)
    assert message.type == aiohttp.WSMsgType.TEXT, message
    return message.data if message.data == "pong" else json.loads(message.data)


async def subscribe(ws: aiohttp.ClientWebSocketResponse) -> None:
    reply = await ask(ws, {"method": "subscribe", "channels": ["liquidationOrders"]})
    assert reply == {"method": "subscribe", "channels": ["liquidationOrders"], "code": "0", "msg": "success"}


async def refused(ws: aiohttp.ClientWebSocketResponse) -> tuple[int, str]:
    """The close code and reason of a connection the server refuses."""
    message = await receive(ws)
    assert message.type == aiohttp.WSMsgType.CLOSE, message
    return message.data, message.extra


async def collect_until_liquidations(pipeline: Collection, after_ms: int) -> tuple[int, np.ndarray]:
    """Collection rounds half an hour apart until the collector stores liquidations after ``after_ms``;
    returns the last round's time and the events stored since."""
    now = after_ms
    for _ in range(48):
        now += 30 * MINUTE
        await pipeline.collect_once(now)
        events = await pipeline.store.read_liquidations("synthetic", "BTCUSDT", after_ms, now)
        if len(events):
            return now, events
    raise AssertionError("the synthetic market liquidated nothing in a day")


async def pushed_events(ws: aiohttp.ClientWebSocketResponse, count: int) -> list[dict]:
    """Pushed liquidations until ``count`` have arrived."""
    events: list[dict] = []
    while len(events) < count:
        message = await receive(ws)
        assert message.type == aiohttp.WSMsgType.TEXT, message
        push = json.loads(message.data)
        assert set(push) == {"channel", "data"} and push["channel"] == "liquidationOrders"
        assert push["data"], "an empty push"
        events.extend(push["data"])
    return events


def as_pushed(events: np.ndarray, exchange_name: str = "Synthetic", symbol: str = "BTCUSDT", coin: str = "BTC") -> list[dict]:
    """Stored events as Coinglass's websocket sends them (1 = a long liquidated)."""
    return [
        {"baseAsset": coin, "exName": exchange_name, "price": float(e["price"]), "side": 1 if e["side"] == SIDE_LONG else 2, "symbol": symbol, "time": int(e["ts_ms"]), "volUsd": round(float(e["usd"]), 5)}
        for e in events
    ]


def by_time(events: list[dict]) -> list[dict]:
    return sorted(events, key=lambda e: (e["time"], e["price"], e["volUsd"], e["side"]))


async def test_every_replica_pushes_what_the_collector_stores_and_only_that(pipeline: Collection, seeded: Settings) -> None:
    with served(seeded) as first_url, served(seeded) as second_url:
        async with connected(first_url) as first, connected(second_url) as second:
            for ws in (first, second):
                assert await ask(ws, "ping") == "pong"
                await subscribe(ws)
            _, stored = await collect_until_liquidations(pipeline, NOW_MS)
            expected = by_time(as_pushed(stored))
            assert {e["side"] for e in expected} <= {1, 2}
            for ws in (first, second):
                got = await pushed_events(ws, len(expected))
                # The events stored in this round, no more: the backfill of the first round was not news.
                assert by_time(got) == expected
                assert all(e["time"] >= NOW_MS for e in got)
                assert await ask(ws, "ping") == "pong"  # nothing else was queued before the reply


async def test_requests_are_answered_and_mistakes_explained_without_closing(pipeline: Collection, seeded: Settings) -> None:
    with served(seeded) as url:
        async with connected(url) as ws, connected(url) as watcher:
            assert await ask(ws, "ping") == "pong"
            reply = await ask(ws, "hello")
            assert reply["code"] == "400" and "ping" in reply["msg"] and "subscribe" in reply["msg"]
            reply = await ask(ws, {"method": "subscribe", "channels": ["trades", "liquidationOrders"]})
            assert reply["code"] == "400" and "'trades'" in reply["msg"] and "liquidationOrders" in reply["msg"]
            reply = await ask(ws, {"method": "listen", "channels": ["liquidationOrders"]})
            assert reply["code"] == "400" and reply["method"] == "listen" and "subscribe or unsubscribe" in reply["msg"]
            reply = await ask(ws, {"method": "subscribe"})
            assert reply["code"] == "400" and reply["method"] == "subscribe" and "channels" in reply["msg"]
            await ws.send_bytes(b"\x00\x01")
            reply = json.loads((await receive(ws)).data)
            assert reply["code"] == "400" and "binary" in reply["msg"]
            # Subscribed, then unsubscribed: nothing arrives, while a subscribed connection gets the events.
            await subscribe(ws)
            reply = await ask(ws, {"method": "unsubscribe", "channels": ["liquidationOrders"]})
            assert reply == {"method": "unsubscribe", "channels": ["liquidationOrders"], "code": "0", "msg": "success"}
            await subscribe(watcher)
            _, stored = await collect_until_liquidations(pipeline, NOW_MS)
            assert len(await pushed_events(watcher, len(stored))) == len(stored)
            assert await ask(ws, "ping") == "pong"  # replies and pushes share one queue: no push was waiting


@pytest.fixture
def guarded(seeded: Settings) -> Settings:
    return msgspec.structs.replace(seeded, anonymous_access=False, ws_connections_per_client=2)


async def test_keys_limits_and_connection_counts_as_on_http(redis: Redis, guarded: Settings) -> None:
    access = Access(redis)
    record, key = await access.create("ws", 3)
    with served(guarded) as url:
        async with connected(url) as ws:
            code, reason = await refused(ws)
            assert code == 4401 and "cg-api-key" in reason
        async with connected(url, **{"cg-api-key": f"{key}x"}) as ws:
            code, reason = await refused(ws)
            assert code == 4401 and "not valid" in reason
        async with connected(url, **{"cg-api-key": key}) as one, connected(url, **{"cg-api-key": key}) as two:
            assert await ask(one, "ping") == "pong" and await ask(two, "ping") == "pong"
            async with connected(url, **{"cg-api-key": key}) as three:
                code, reason = await refused(three)
                assert code == 4429 and "2 allowed" in reason
        # Both closed: once the server has let them go, the key's fourth connection is over its 3 a minute.
        for _ in range(int(WAIT_S / 0.05)):
            if not await redis.zcard(keys.ws_connections(record.id)):
                break
            await asyncio.sleep(0.05)
        assert not await redis.zcard(keys.ws_connections(record.id))
        async with connected(url, **{"cg-api-key": key}) as four:
            code, reason = await refused(four)
            assert code == 4429 and "3 requests per minute" in reason


async def test_a_coinglass_key_is_served_as_anonymous_where_allowed(pipeline: Collection, seeded: Settings) -> None:
    with served(seeded) as url:
        async with connected(url, **{"cg-api-key": "0123456789abcdef0123456789abcdef"}) as ws:
            assert await ask(ws, "ping") == "pong"
            await subscribe(ws)


async def test_pushed_through_a_cluster(cluster: Redis, cluster_url: str) -> None:
    settings = Settings(redis_url=cluster_url, redis_cluster=True, ranges=("12h", "24h"), backfill_days=1.0, frame_rows=50, api_engine_processes=0)
    collection = Collection.create(Store(cluster), settings, [SyntheticMarket(seed=4, symbols={"BTCUSDT": 77_000.0})])
    await collection.collect_once(NOW_MS)
    with served(settings) as url:
        async with connected(url) as ws:
            await subscribe(ws)
            _, stored = await collect_until_liquidations(collection, NOW_MS)
            assert by_time(await pushed_events(ws, len(stored))) == by_time(as_pushed(stored))


async def test_a_feed_entry_that_does_not_decode_is_skipped(pipeline: Collection, seeded: Settings, redis: Redis) -> None:
    with served(seeded) as url:
        async with connected(url) as ws:
            await subscribe(ws)
            await redis.xadd(keys.LIQUIDATION_FEED, {"market": b"synthetic:BTCUSDT", "rows": b"\x00" * 7})  # not whole rows
            _, stored = await collect_until_liquidations(pipeline, NOW_MS)
            assert by_time(await pushed_events(ws, len(stored))) == by_time(as_pushed(stored))
