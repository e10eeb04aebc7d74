"""One venue misbehaving for several rounds of the whole collection: the others are not held up,
and once it behaves again its missed bars are fetched, so the store has every bar of every market once.
(Its bars may still arrive meanwhile over its kline streams when only its REST calls fail.)

The fake exchange's misbehaviours, one venue at a time: down (connections refused), slow
(answers later than the client waits), 429 and 418 storms with ``Retry-After``, HTML error
pages, truncated JSON. Asserted on the stored rows. (Streams cut, with duplicate and
out-of-order events, are in ``test_collectors.py``.)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from redis.asyncio import Redis

from service.collect.round import Collection
from service.fakeexchange import FakeExchange, Fault
from service.store.writer import Store
from tests.collect.conftest import MINUTE, VENUES, Clock, assert_bars_complete, collector_settings, venue_collector

pytestmark = pytest.mark.integration

SYMBOLS = ("BTCUSDT", "ETHUSDT")
ROUNDS = 3  # rounds the venue misbehaves through, a minute apart


def every_call(fault: Fault) -> Fault:
    fault.count = 10_000
    return fault


async def go_down(fake: FakeExchange, venue: str) -> Callable[[], Awaitable[None]]:
    await fake[venue].stop()
    return fake[venue].start


def injecting(fault: Callable[[], Fault]) -> Callable[[FakeExchange, str], Awaitable[Callable[[], Awaitable[None]]]]:
    async def misbehave(fake: FakeExchange, venue: str) -> Callable[[], Awaitable[None]]:
        fake[venue].inject(every_call(fault()))

        async def behave() -> None:
            fake[venue].clear_faults()

        return behave

    return misbehave


# (misbehaviour, the venue it hits): each venue gets two.
CASES = {
    "down": (go_down, "okx"),
    "slow": (injecting(lambda: Fault("slow", delay_s=1.0)), "bybit"),
    "429-storm": (injecting(lambda: Fault("status", 429, retry_after_s=20.0)), "binance"),
    "418-storm": (injecting(lambda: Fault("status", 418, retry_after_s=90.0)), "okx"),
    "html": (injecting(lambda: Fault("html", 502)), "bybit"),
    "truncated": (injecting(lambda: Fault("truncated")), "binance"),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_one_venue_misbehaving_holds_up_no_other_and_its_gap_is_filled_when_it_behaves(
    case: str, fake: FakeExchange, clock: Clock, redis: Redis, redis_url: str
) -> None:
    misbehave, venue = CASES[case]
    settings = collector_settings(fake, redis_url, models=("model1",), ranges=("12h",), frame_rows=40, backfill_days=0.05, http_timeout_s=0.3)
    store = Store(redis)
    sources = [venue_collector(name, settings, clock) for name in VENUES]
    pipeline = Collection.create(store, settings, sources)
    await pipeline.collect_once(clock.now)
    others = [name for name in VENUES if name != venue]

    behave = await misbehave(fake, venue)
    # (Bars are checked up to each round's start: a back-off slept on the test clock closes more,
    # which belong to the next round.)
    for _ in range(ROUNDS):
        round_at = clock.advance(MINUTE)
        changed = await pipeline.collect_once(round_at)
        assert {(name, symbol) for name in others for symbol in SYMBOLS} <= set(changed), changed
        for name in others:
            await assert_bars_complete(store, fake, name, SYMBOLS, round_at)
    assert sources[VENUES.index(venue)].errors

    await behave()
    # The venue's own back-off (Retry-After, on the collectors' clock) is over by the next rounds.
    changed = await pipeline.collect_once(clock.advance(2 * MINUTE))
    for _ in range(3):
        round_at = clock.advance(MINUTE)
        changed += await pipeline.collect_once(round_at)
    assert {(venue, symbol) for symbol in SYMBOLS} <= set(changed), changed
    # Up to the bar that closed a round before, on every venue: the bar closing at the round's
    # instant may still be on its way over the kline stream, and while a stream is up REST
    # fetches only bars closed stream_grace_ms (20 s) before; it is stored by the next round.
    for name in VENUES:
        await assert_bars_complete(store, fake, name, SYMBOLS, round_at - MINUTE)
    for source in sources:
        await source.close()
