"""Fixtures for collector tests: a fake exchange on loopback at a controllable time, and settings pointing at it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import numpy as np
import pytest

from service.collect.venues.base import ExchangeCollector
from service.collect.venues.registry import build_collector
from service.fakeexchange import FakeExchange
from service.settings import Settings
from service.store.writer import Store

MINUTE = 60_000
# Half a minute into a bar, so that "the bar in progress" is always in play.
NOW_MS = 1_780_000_000_000 - 1_780_000_000_000 % MINUTE + 30_000
VENUES = ("binance", "bybit", "okx")


@dataclass
class Clock:
    now: int = NOW_MS

    def __call__(self) -> int:
        return self.now

    def advance(self, ms: int) -> int:
        self.now += ms
        return self.now

    async def sleep(self, seconds: float) -> None:
        """A wait on this clock: it moves at once (no test sleeps for real)."""
        self.advance(round(seconds * 1000))
        await asyncio.sleep(0)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def fake(clock: Clock) -> AsyncIterator[FakeExchange]:
    exchange = FakeExchange(seed=3, symbols=["BTCUSDT", "ETHUSDT"], clock=clock)
    await exchange.start()
    yield exchange
    await exchange.stop()


def collector_settings(fake: FakeExchange, redis_url: str | None = None, **extra: object) -> Settings:
    values: dict[str, object] = {
        "redis_url": redis_url,
        "markets": ("BTCUSDT", "ETHUSDT"),
        "sources": VENUES,
        "ranges": ("12h", "24h"),
        "frame_rows": 80,
        "backfill_days": 0.25,
        "http_timeout_s": 2.0,
        "ws_ping_interval_s": 5.0,
        "ws_backoff_base_s": 0.02,
        "ws_backoff_max_s": 0.1,
        "liquidation_flush_s": 0.01,
        "backfill_max_wait_s": 3.0,
        "request_budget_share": 1.0,
        **fake.settings_overrides(),
        **extra,
    }
    return Settings(**values)  # type: ignore[arg-type]


def venue_collector(venue: str, settings: Settings, clock: Clock) -> ExchangeCollector:
    """A venue's collector on the test's clock (the fake exchange's): back-offs and budgets wait on it."""
    return build_collector(venue, settings, clock=clock, sleep=clock.sleep)


@pytest.fixture(params=VENUES)
def venue(request: pytest.FixtureRequest) -> str:
    return request.param


def truth(fake: FakeExchange, venue: str, symbol: str, start: int, end: int) -> np.ndarray:
    """Closed bars opening in [start, end) as the venue has them."""
    candles = fake[venue].market.rows(symbol, start, end).candles
    return candles[(candles["ts_ms"] >= start) & (candles["ts_ms"] + MINUTE <= end)]


def assert_candles_exact(stored: np.ndarray, expected: np.ndarray, venue: str) -> None:
    assert stored["ts_ms"].tolist() == expected["ts_ms"].tolist()
    for name in ("open", "high", "low", "close", "volume_usd"):
        np.testing.assert_array_equal(stored[name], expected[name], err_msg=name)
    if venue == "binance":
        np.testing.assert_array_equal(stored["taker_buy_usd"], expected["taker_buy_usd"])
    else:
        assert np.isnan(stored["taker_buy_usd"]).all()


async def assert_bars_complete(store: Store, fake: FakeExchange, venue: str, symbols: tuple[str, ...], now: int) -> None:
    """Every bar closed by ``now`` from the market's first stored one on, as the venue has it, once
    (bars closed later are not looked at)."""
    for symbol in symbols:
        stored = await store.read_candles(venue, symbol)
        stored = stored[stored["ts_ms"] + MINUTE <= now]
        expected = truth(fake, venue, symbol, int(stored["ts_ms"][0]), now)
        assert stored["ts_ms"].tolist() == expected["ts_ms"].tolist(), (venue, symbol)
        np.testing.assert_allclose(stored["close"], expected["close"], rtol=1e-9)
