"""Liquidations a venue streams reach ``/ws-api`` subscribers: fake exchange → collector → store → API."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from service.fakeexchange import FakeExchange
from service.store.writer import Store
from tests.collect.conftest import Clock, collector_settings, venue_collector
from tests.collect.test_collectors import events
from tests.integration.conftest import served
from tests.integration.test_ws_api import as_pushed, ask, by_time, connected, pushed_events, subscribe

pytestmark = pytest.mark.integration

NAMES = {"binance": "Binance", "bybit": "Bybit", "okx": "OKX"}


async def test_streamed_liquidations_are_pushed_once_each_as_coinglass_spells_them(
    fake: FakeExchange, clock: Clock, venue: str, redis: Redis, redis_url: str
) -> None:
    store = Store(redis)
    settings = collector_settings(fake, redis_url)
    source = venue_collector(venue, settings, clock)
    with served(settings) as url:
        async with connected(url) as ws:
            await subscribe(ws)
            await source.start(store.add_liquidations)
            try:
                await fake[venue].wait_subscribed(1)
                sent = events(fake, venue, "BTCUSDT", 12)
                await fake[venue].push("BTCUSDT", sent, duplicate=True, shuffle=True)  # each event twice, out of order
                await asyncio.wait_for(source.wait_stored(len(sent)), 10)
                stored = await store.read_liquidations(venue, "BTCUSDT")
                assert len(stored) == len(sent)
                got = await pushed_events(ws, len(stored))
                assert by_time(got) == by_time(as_pushed(stored, NAMES[venue]))
                assert {event["side"] for event in got} == {1, 2}  # both sides among them, each as Coinglass numbers it
                assert await ask(ws, "ping") == "pong"  # and nothing more: a duplicate was not pushed again
            finally:
                await source.close()

