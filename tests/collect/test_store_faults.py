"""The collection round when the store fails under it: nothing the venues served meanwhile is lost.

A real valkey-server (:class:`tests.processes.StoreProcess`) is killed between rounds and
started again on the same port and directory; the collectors run on the test's clock against
the fake exchange.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import numpy as np
import pytest

from service.collect.round import Collection
from service.collect.venues.base import ExchangeCollector
from service.fakeexchange import FakeExchange
from service.store import chunks, keys
from service.store.chunks import CANDLES, LIQUIDATIONS, RowKind
from service.store.client import make_client
from service.store.rows import LIQUIDATION_DTYPE
from service.store.writer import Store
from tests.collect.conftest import MINUTE, VENUES, Clock, assert_bars_complete, collector_settings, venue_collector
from tests.processes import StoreProcess

pytestmark = pytest.mark.integration

SYMBOLS = ("BTCUSDT", "ETHUSDT")


@pytest.fixture
def store_process(tmp_path: Path) -> Iterator[StoreProcess]:
    server = StoreProcess(tmp_path / "store")
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def running(fake: FakeExchange, clock: Clock, store_process: StoreProcess) -> AsyncIterator[tuple[Collection, list[ExchangeCollector]]]:
    """A collection over the three venues writing to the store process, streams on."""
    settings = collector_settings(fake, store_process.url, models=("model1",), ranges=("12h",), frame_rows=40)
    redis = make_client(store_process.url)
    store = Store(redis)
    sources = [venue_collector(venue, settings, clock) for venue in VENUES]
    for source in sources:
        await source.start(store.add_liquidations)
    for venue in VENUES:
        await asyncio.wait_for(fake[venue].wait_subscribed(1), 10)
    yield Collection.create(store, settings, sources), sources
    for source in sources:
        await source.close()
    await redis.aclose()


def liquidations_at(fake: FakeExchange, venue: str, symbol: str, times: np.ndarray) -> np.ndarray:
    """Events at ``times`` near the market's price (OKX sizes whole contracts, so they pass through exactly)."""
    events = np.zeros(len(times), dtype=LIQUIDATION_DTYPE)
    events["ts_ms"] = times
    events["side"] = np.where(np.arange(len(times)) % 2 == 0, 1, -1)
    events["price"] = fake[venue].market.mark_price(symbol, int(times[0]))
    events["quantity"] = fake[venue].market.contract_value(symbol) * (3 + np.arange(len(times)))
    events["usd"] = events["price"] * events["quantity"]
    return events


async def stream(fake: FakeExchange, times: np.ndarray) -> dict[tuple[str, str], np.ndarray]:
    """Push liquidations at ``times`` on every venue market's stream; returns them by market."""
    pushed = {}
    for venue in VENUES:
        for symbol in SYMBOLS:
            pushed[(venue, symbol)] = liquidations_at(fake, venue, symbol, times)
            await fake[venue].push(symbol, pushed[(venue, symbol)])
    return pushed


async def wait_for_events(store: Store, pushed: dict[tuple[str, str], np.ndarray]) -> None:
    async def stored_all() -> None:
        for (venue, symbol), events in pushed.items():
            while not set(events["ts_ms"].tolist()) <= set((await store.read_liquidations(venue, symbol))["ts_ms"].tolist()):
                await asyncio.sleep(0.02)

    await asyncio.wait_for(stored_all(), 15)


async def assert_everything_stored_once(store: Store, fake: FakeExchange, now: int, pushed: dict[tuple[str, str], np.ndarray]) -> None:
    """Every closed bar from the first stored one on, as the venue has it, once; every streamed event once."""
    for venue in VENUES:
        await assert_bars_complete(store, fake, venue, SYMBOLS, now)
        for symbol in SYMBOLS:
            events = await store.read_liquidations(venue, symbol)
            assert sorted(events["ts_ms"].tolist()) == sorted(pushed[(venue, symbol)]["ts_ms"].tolist()), (venue, symbol)
            np.testing.assert_allclose(np.sort(events["usd"]), np.sort(pushed[(venue, symbol)]["usd"]), rtol=1e-9)


async def test_rounds_while_the_store_is_down_lose_no_bar_and_no_streamed_event(
    running: tuple[Collection, list[ExchangeCollector]], fake: FakeExchange, clock: Clock, store_process: StoreProcess
) -> None:
    pipeline, sources = running
    assert len(await pipeline.collect_once(clock.now)) == len(VENUES) * len(SYMBOLS) + len(SYMBOLS)

    store_process.stop(signal.SIGKILL)
    # Meanwhile bars close and the streams go on: the polls fetch the bars, their writes fail.
    pushed = await stream(fake, clock.now + np.arange(8) * 7_000)
    for _ in range(3):
        assert await pipeline.collect_once(clock.advance(MINUTE)) == []
    assert all(source.request_counts() for source in sources)

    store_process.start()
    round_at = clock.advance(MINUTE)
    changed = await pipeline.collect_once(round_at)
    assert len(changed) == len(VENUES) * len(SYMBOLS) + len(SYMBOLS)
    await wait_for_events(pipeline.store, pushed)
    await assert_everything_stored_once(pipeline.store, fake, round_at, pushed)


async def lose_newest(store: Store, kind: RowKind, exchange: str, symbol: str, from_ms: int) -> None:
    """Drop the rows from ``from_ms`` on, as a store that lost its newest writes would have them."""
    for start in await store.chunk_index(kind, exchange, symbol):
        if start + kind.span_ms <= from_ms:
            continue
        key = keys.chunk(kind.name, exchange, symbol, start)
        rows = chunks.decode(await store.redis.get(key), kind.dtype)
        kept = rows[rows["ts_ms"] < from_ms]
        encoded = chunks.encode(kept, packed=False)
        await store.redis.set(key, encoded)
        await store.redis.hset(keys.chunk_index(kind.name, exchange, symbol), str(start), chunks.index_value(kept, encoded))


async def test_bars_and_events_the_store_lost_are_collected_again(
    running: tuple[Collection, list[ExchangeCollector]], fake: FakeExchange, clock: Clock
) -> None:
    pipeline, _ = running
    store = pipeline.store
    await pipeline.collect_once(clock.now)
    pushed = await stream(fake, clock.now + np.arange(8) * 20_000)
    for _ in range(3):
        await pipeline.collect_once(clock.advance(MINUTE))
    await wait_for_events(store, pushed)

    # The store comes back without its last writes (a failover to a replica that lagged): the
    # newest two bars of a market and the events since.
    newest = int((await store.read_candles("binance", "BTCUSDT"))["ts_ms"][-1])
    for kind in (CANDLES, LIQUIDATIONS):
        await lose_newest(store, kind, "binance", "BTCUSDT", newest - MINUTE)
    assert int((await store.read_candles("binance", "BTCUSDT"))["ts_ms"][-1]) == newest - 2 * MINUTE
    assert len(await store.read_liquidations("binance", "BTCUSDT")) < len(pushed[("binance", "BTCUSDT")])

    round_at = clock.advance(MINUTE)
    await pipeline.collect_once(round_at)
    await wait_for_events(store, pushed)
    await assert_everything_stored_once(store, fake, round_at, pushed)


async def test_a_round_cancelled_between_fetching_and_storing_loses_no_bar(
    running: tuple[Collection, list[ExchangeCollector]], fake: FakeExchange, clock: Clock
) -> None:
    """A round that runs past its time is cancelled (so is one whose process stops), possibly
    after a market's new bars were fetched and before they were written: the next round fetches
    them again rather than going on from the bars it never stored."""
    pipeline, _ = running
    store = pipeline.store
    await pipeline.collect_once(clock.now)
    write_candles = store.upsert_candles
    writing = asyncio.Event()

    async def stuck(exchange: str, symbol: str, rows: np.ndarray) -> int:
        if (exchange, symbol) == ("binance", "ETHUSDT") and len(rows):
            writing.set()
            await asyncio.Event().wait()  # a write that does not come back before the round's time is up
        return await write_candles(exchange, symbol, rows)

    store.upsert_candles = stuck  # type: ignore[method-assign]
    for _ in range(2):
        clock.advance(MINUTE)
    running_round = asyncio.create_task(pipeline.collect_once(clock.now))
    await asyncio.wait_for(writing.wait(), 15)
    running_round.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running_round
    del store.upsert_candles

    round_at = clock.advance(MINUTE)
    await pipeline.collect_once(round_at)
    for venue in VENUES:
        await assert_bars_complete(store, fake, venue, SYMBOLS, round_at - MINUTE)
