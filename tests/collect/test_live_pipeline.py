"""The three collectors in the pipeline and scheduler, against the fake exchange and a real store."""

from __future__ import annotations

import asyncio
import json

import pytest
from redis.asyncio import Redis

from engine.models.margin import shipped_binance_table
from service.store.tiers import decode as decode_tiers
from service.fakeexchange import FakeExchange, Fault
from service.collect.round import Collection
from tests.conftest import latest_field
from service.compute.frames import AGGREGATE_WAIT_MS
from service.compute.refresh import Refresher
from service.fakeexchange.server import venue_tiers
from service.collect.scheduler import create_scheduler
from service.store.writer import Store
from tests.collect.conftest import MINUTE, NOW_MS, VENUES, Clock, collector_settings, venue_collector

pytestmark = pytest.mark.integration


async def test_a_round_refreshes_every_venue_market_and_the_aggregated_ones(fake: FakeExchange, clock: Clock, redis: Redis, redis_url: str) -> None:
    settings = collector_settings(fake, redis_url)
    store = Store(redis)
    sources = [venue_collector(venue, settings, clock) for venue in VENUES]
    pipeline = Collection.create(store, settings, sources)

    changed = await pipeline.collect_once(NOW_MS)
    venue_markets = [(venue, symbol) for venue in VENUES for symbol in ("BTCUSDT", "ETHUSDT")]
    assert sorted(changed) == sorted([*venue_markets, ("all", "BTC"), ("all", "ETH")])
    assert sorted(await store.markets()) == sorted(changed)
    for exchange, symbol in changed:
        assert await store.latest_packed(exchange, symbol, "model1", "12h") is not None, (exchange, symbol)

    meta = await store.market_meta("all", "BTC")
    assert meta["venues"] == "binance,bybit,okx"
    coverage = json.loads(meta["coverage"])
    assert set(coverage) == set(VENUES) and all(c["bars"] > 0 for c in coverage.values())
    okx = await store.market_meta("okx", "BTCUSDT")
    assert float(okx["mark_price"]) > 0 and okx["mm_tiers_source"] == "okx position-tiers"
    assert decode_tiers(okx["mm_tiers"])[0].mmr > 0
    binance = await store.market_meta("binance", "BTCUSDT")
    assert binance["mm_tiers_source"] == "binance web brackets"

    # OKX goes down: the others go on; the aggregate waits for OKX's bars a few minutes, then
    # goes on without them (still counting OKX's stored history).
    await fake["okx"].stop()
    changed = await pipeline.collect_once(clock.advance(2 * MINUTE))
    assert ("okx", "BTCUSDT") not in changed and ("binance", "BTCUSDT") in changed and ("all", "BTC") not in changed
    changed = await pipeline.collect_once(clock.advance(AGGREGATE_WAIT_MS))
    assert ("okx", "BTCUSDT") not in changed and ("all", "BTC") in changed
    assert sources[2].errors
    await fake["okx"].start()
    changed = await pipeline.collect_once(clock.advance(2 * MINUTE))
    assert ("okx", "BTCUSDT") in changed
    stored = await store.read_candles("okx", "BTCUSDT")
    assert int(stored["ts_ms"][-1]) + MINUTE <= clock.now and len(set(stored["ts_ms"].tolist())) == len(stored)
    for source in sources:
        await source.close()


async def test_each_venues_own_margin_tiers_reach_the_frames_of_model4(fake: FakeExchange, clock: Clock, redis: Redis, redis_url: str) -> None:
    settings = collector_settings(fake, redis_url, models=("model3", "model4"), ranges=("12h",))
    store = Store(redis)
    sources = [venue_collector(venue, settings, clock) for venue in VENUES]
    await Collection.create(store, settings, sources).collect_once(NOW_MS)
    expected_sources = {"binance": "binance web brackets", "bybit": "bybit risk-limit", "okx": "okx position-tiers"}
    brackets_by_venue = {}
    for venue in VENUES:
        frame = json.loads(await latest_field(store, venue, "BTCUSDT", "model4", "12h", "v1"))
        table = frame["margin_table"]
        assert table["source"] == expected_sources[venue]
        served = [[t.cap_usd, t.mmr, t.max_leverage] for t in venue_tiers(venue, "BTCUSDT")]
        assert [row[1:] for row in table["brackets"]] == [row[1:] for row in served]
        assert [row[0] for row in table["brackets"]] == pytest.approx([row[0] for row in served], rel=1e-6)  # OKX: contracts at the mark
        brackets_by_venue[venue] = table["brackets"]
        # Models whose tiers are their parameters say nothing about a market's table.
        assert json.loads(await latest_field(store, venue, "BTCUSDT", "model3", "12h", "v1"))["margin_table"] is None
    assert brackets_by_venue["bybit"] != brackets_by_venue["binance"] != brackets_by_venue["okx"]
    # A coin summed over venues takes the shipped Binance table of its USDT perpetual.
    aggregated = json.loads(await latest_field(store, "all", "BTC", "model4", "12h", "v1"))["margin_table"]
    assert aggregated == {"source": shipped_binance_table("BTCUSDT").source, "brackets": shipped_binance_table("BTCUSDT").to_json()}
    for source in sources:
        await source.close()


class SteppedPipeline(Collection):
    """Each scheduled round runs a minute later on the fake exchange's clock; counts rounds."""

    def setup(self, clock: Clock, rounds: int) -> None:
        self.clock, self.wanted, self.rounds, self.done = clock, rounds, 0, asyncio.Event()

    async def collect_once(self, now: int | None = None) -> list[tuple[str, str]]:
        changed = await super().collect_once(self.clock.advance(MINUTE))
        self.rounds += 1
        if self.rounds >= self.wanted:
            self.done.set()
        return changed


async def test_the_scheduler_keeps_running_while_a_venue_storms_and_is_down(fake: FakeExchange, clock: Clock, redis: Redis, redis_url: str) -> None:
    settings = collector_settings(fake, redis_url, backfill_days=0.02)
    store = Store(redis)
    sources = [venue_collector(venue, settings, clock) for venue in VENUES]
    pipeline = SteppedPipeline(store, settings, sources, Refresher(store, settings))
    pipeline.setup(clock, rounds=4)
    await fake["bybit"].stop()
    fake["binance"].inject(Fault("status", 429, retry_after_s=0.05, count=2))
    scheduler = create_scheduler(pipeline, interval_s=0.05, job_timeout_s=5.0)
    scheduler.start()
    try:
        await asyncio.wait_for(pipeline.done.wait(), 20)
    finally:
        scheduler.shutdown(wait=False)
    assert await store.latest_packed("okx", "BTCUSDT", "model1", "12h") is not None
    assert await store.latest_packed("binance", "BTCUSDT", "model1", "12h") is not None
    assert await store.latest_packed("bybit", "BTCUSDT", "model1", "12h") is None
    assert sources[0].errors and sources[1].errors
    for source in sources:
        await source.close()


async def test_frames_state_coverage_from_where_open_interest_starts(redis: Redis, redis_url: str, fake: FakeExchange) -> None:
    """Candles for a day but open interest for its last six hours: the frame covers six hours."""
    settings = collector_settings(fake, redis_url)
    store = Store(redis)
    rows = fake["okx"].market.rows("BTCUSDT", NOW_MS - 24 * 60 * MINUTE, NOW_MS - 30_000)
    await store.upsert_candles("okx", "BTCUSDT", rows.candles)
    oi_from = NOW_MS - 30_000 - 6 * 60 * MINUTE
    await store.upsert_open_interest("okx", "BTCUSDT", rows.open_interest[rows.open_interest["ts_ms"] >= oi_from])
    await store.add_market("okx", "BTCUSDT")
    await Refresher(store, settings).refresh("okx", "BTCUSDT", NOW_MS)
    record = await store.newest_record("okx", "BTCUSDT", "model1", "24h")
    assert record is not None
    assert record.coverage_start == oi_from - MINUTE  # the bar whose close saw it
