"""/v1/liquidations: realized events and per-interval totals from the store."""

from __future__ import annotations

import numpy as np
import pytest
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from service.collect.round import Collection
from service.settings import Settings
from service.collect.synthetic import SyntheticMarket
from service.store.writer import Store
from tests.integration.conftest import NOW_MS

pytestmark = pytest.mark.integration

ROUTE = "/v1/liquidations/synthetic/BTCUSDT"


@pytest.fixture
async def seeded(redis: Redis, redis_url: str) -> Settings:
    settings = Settings(redis_url=redis_url, ranges=("12h",), backfill_days=0.5, frame_rows=50)
    await Collection.create(Store(redis), settings, [SyntheticMarket(seed=8, symbols={"BTCUSDT": 77_000.0})]).collect_once(NOW_MS)
    return settings


async def test_totals_equal_the_stored_events_per_bucket(client: AsyncTestClient, redis: Redis) -> None:
    start, end = NOW_MS - 3 * 3_600_000, NOW_MS
    body = (await client.get(ROUTE, params={"from": start, "to": end, "interval": "15m", "limit": 1000})).json()
    events = await Store(redis).read_liquidations("synthetic", "BTCUSDT", start, end)
    assert len(events) > 0
    totals = body["totals"]
    assert totals and totals[0]["time"] <= start < totals[0]["time"] + 900_000  # from the bucket holding `from`
    assert totals[-1]["time"] <= end - 1 < totals[-1]["time"] + 900_000  # to the one holding the last millisecond before `to`
    assert all(b["time"] - a["time"] == 900_000 for a, b in zip(totals, totals[1:]))
    for total in totals:
        inside = (events["ts_ms"] >= total["time"]) & (events["ts_ms"] < total["time"] + 900_000)
        assert total["long_usd"] == pytest.approx(events["usd"][inside & (events["side"] == 1)].sum(), abs=0.01)
        assert total["short_usd"] == pytest.approx(events["usd"][inside & (events["side"] == -1)].sum(), abs=0.01)
    listed = body["events"]
    assert len(listed) == min(1000, len(events))
    assert [e["time"] for e in listed] == sorted((e["time"] for e in listed), reverse=True)
    assert {e["side"] for e in listed} <= {"long", "short"}
    assert listed[0]["time"] == int(events["ts_ms"].max())


async def test_min_usd_and_limit_select_the_newest_large_events(client: AsyncTestClient, redis: Redis) -> None:
    events = await Store(redis).read_liquidations("synthetic", "BTCUSDT", NOW_MS - 86_400_000, NOW_MS)
    threshold = float(np.quantile(events["usd"], 0.9))
    body = (await client.get(ROUTE, params={"to": NOW_MS, "min_usd": threshold, "limit": 5})).json()
    assert len(body["events"]) == 5
    assert all(e["usd"] >= threshold for e in body["events"])
    big = np.sort(events["ts_ms"][events["usd"] >= threshold])[::-1][:5]
    assert [e["time"] for e in body["events"]] == big.tolist()


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"interval": "2m"}, "interval must be one of 1m, 3m, 5m"),
        ({"limit": 5000}, "limit"),
        ({"to": -5}, "to"),
    ],
)
async def test_bad_parameters_say_what_is_allowed(client: AsyncTestClient, params: dict, message: str) -> None:
    response = await client.get(ROUTE, params=params)
    assert response.status_code == 400
    assert message in response.json()["error"]["message"]


async def test_long_spans_keep_the_newest_2000_buckets_and_reversed_spans_are_400(client: AsyncTestClient) -> None:
    long = (await client.get(ROUTE, params={"from": NOW_MS - 30 * 86_400_000, "to": NOW_MS, "interval": "1m"})).json()
    assert len(long["totals"]) == 2000
    assert long["totals"][-1]["time"] == (NOW_MS - 1) // 60_000 * 60_000
    assert long["start"] == long["totals"][0]["time"]
    reversed_span = await client.get(ROUTE, params={"from": NOW_MS, "to": NOW_MS - 1})
    assert reversed_span.status_code == 400 and "from" in reversed_span.json()["error"]["message"]


async def test_unknown_market_is_404(client: AsyncTestClient) -> None:
    assert (await client.get("/v1/liquidations/synthetic/NOPEUSDT")).status_code == 404
