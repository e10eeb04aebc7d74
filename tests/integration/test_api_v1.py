"""Native v1 routes: ETag polling, msgpack, history pages, frames by id, server-sent events."""

from __future__ import annotations

import asyncio
import json

from collections.abc import AsyncIterator

import httpx
import msgspec
import pytest
from litestar.testing import AsyncTestClient

from service.collect.round import Collection
from tests.integration.conftest import NOW_MS

pytestmark = pytest.mark.integration

MINUTE = 60_000
COLUMN = 5 * MINUTE  # the column width of the 12h and 24h ranges: history keeps one frame per column
LATEST = "/v1/heatmaps/synthetic/BTCUSDT/latest"


async def test_etag_gives_304_until_a_newer_frame_exists(client: AsyncTestClient, pipeline: Collection) -> None:
    first = await client.get(LATEST)
    etag = first.headers["etag"]
    assert first.json()["id"] in etag
    again = await client.get(LATEST, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    await pipeline.collect_once(NOW_MS + 2 * MINUTE)
    newer = await client.get(LATEST, headers={"If-None-Match": etag})
    assert newer.status_code == 200 and newer.headers["etag"] != etag
    assert newer.json()["data_until"] > first.json()["data_until"]


async def test_msgpack_by_parameter_or_accept_header(client: AsyncTestClient) -> None:
    as_json = (await client.get(LATEST)).json()
    by_param = await client.get(LATEST, params={"format": "msgpack"})
    by_accept = await client.get(LATEST, headers={"Accept": "application/msgpack"})
    for response in (by_param, by_accept):
        assert response.headers["content-type"].startswith("application/msgpack")
        assert msgspec.msgpack.decode(response.content) == as_json
    assert by_param.headers["etag"] != (await client.get(LATEST)).headers["etag"]
    bad = await client.get(LATEST, params={"format": "xml"})
    assert bad.status_code == 400 and "format" in bad.json()["error"]["message"]


async def test_history_pages_newest_first_and_frames_by_id(client: AsyncTestClient, pipeline: Collection) -> None:
    for minutes in range(1, 6):
        await pipeline.collect_once(NOW_MS + minutes * COLUMN)
    seen: list[dict] = []
    cursor = None
    while True:
        params = {"range": "12h", "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/v1/heatmaps/synthetic/BTCUSDT/frames", params=params)).json()
        seen.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 6
    untils = [item["data_until"] for item in seen]
    assert untils == sorted(untils, reverse=True) and len(set(untils)) == 6
    assert all(item["model_version"] == "1.0.0" and item["range"] == "12h" for item in seen)

    window = (await client.get("/v1/heatmaps/synthetic/BTCUSDT/frames", params={"range": "12h", "from": untils[3], "to": untils[1]})).json()
    assert [item["data_until"] for item in window["items"]] == untils[1:4]
    none = (await client.get("/v1/heatmaps/synthetic/BTCUSDT/frames", params={"range": "12h", "model_version": "9.9.9"})).json()
    assert none == {"items": [], "next_cursor": None}

    one = await client.get(f"/v1/heatmaps/synthetic/BTCUSDT/frames/{seen[2]['id']}")
    assert one.status_code == 200 and one.json()["data_until"] == untils[2]
    missing = await client.get("/v1/heatmaps/synthetic/BTCUSDT/frames/model1-nothing-12h-1")
    assert missing.status_code == 404
    bad_cursor = await client.get("/v1/heatmaps/synthetic/BTCUSDT/frames", params={"cursor": "!!"})
    assert bad_cursor.status_code == 400 and "cursor" in bad_cursor.json()["error"]["message"]
    bad_limit = await client.get("/v1/heatmaps/synthetic/BTCUSDT/frames", params={"limit": 0})
    assert bad_limit.status_code == 400 and "limit" in bad_limit.json()["error"]["message"]


async def _subscribed(lines: AsyncIterator[str]) -> None:
    """Read the stream up to the server's word that it listens for new frames."""
    async for line in lines:
        if line == ": subscribed":
            return
    raise AssertionError("the stream ended before it was subscribed")


async def _read_events(lines: AsyncIterator[str], count: int) -> list[dict]:
    events: list[dict] = []
    current: dict = {}
    async for line in lines:
        if line == "":
            if "data" in current:
                events.append(current)
                if len(events) == count:
                    return events
            current = {}
        elif not line.startswith(":"):
            field, _, value = line.partition(":")
            current[field] = value.lstrip()
    return events


async def test_stream_delivers_new_frames_and_resumes_from_last_event_id(live: httpx.AsyncClient, pipeline: Collection) -> None:
    params = {"range": "24h"}
    async with live.stream("GET", "/v1/heatmaps/synthetic/BTCUSDT/stream", params=params) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.aiter_lines()
        await asyncio.wait_for(_subscribed(lines), 10)
        await pipeline.collect_once(NOW_MS + COLUMN)
        await pipeline.collect_once(NOW_MS + 2 * COLUMN)
        events = await asyncio.wait_for(_read_events(lines, 2), 10)
    assert [e.get("event") for e in events] == ["frame", "frame"], events
    summaries = [json.loads(e["data"]) for e in events]
    assert [s["range"] for s in summaries] == ["24h", "24h"]
    assert summaries[0]["data_until"] < summaries[1]["data_until"]
    assert events[0]["id"] == summaries[0]["id"]

    # Two frames appear while the client is away; it resumes with the first event's id.
    await pipeline.collect_once(NOW_MS + 3 * COLUMN)
    headers = {"Last-Event-ID": events[0]["id"]}
    async with live.stream("GET", "/v1/heatmaps/synthetic/BTCUSDT/stream", params={**params, "include_frame": "true"}, headers=headers) as response:
        resumed = await asyncio.wait_for(_read_events(response.aiter_lines(), 2), 10)
    frames = [json.loads(e["data"]) for e in resumed]
    assert [f["data_until"] for f in frames] == [summaries[1]["data_until"], summaries[1]["data_until"] + COLUMN]
    assert len(frames) == 2 and all("long" in f and "short" in f for f in frames)


async def test_history_keeps_the_newest_frame_of_each_column(client: AsyncTestClient, pipeline: Collection) -> None:
    first_column_end = (NOW_MS // COLUMN + 1) * COLUMN
    minutes_left = (first_column_end - NOW_MS) // MINUTE
    for minute in range(1, minutes_left + 3):
        await pipeline.collect_once(NOW_MS + minute * MINUTE)
    items = (await client.get("/v1/heatmaps/synthetic/BTCUSDT/frames", params={"range": "12h", "limit": 50})).json()["items"]
    columns = [(item["data_until"] - 1) // COLUMN for item in items]
    assert len(columns) == len(set(columns))  # one frame per column
    latest = (await client.get(LATEST, params={"range": "12h"})).json()
    assert items[0]["id"] == latest["id"]  # the newest frame is always in history
    # The frame kept for a finished column is its last one.
    assert (items[1]["data_until"] - 1) // COLUMN == columns[0] - 1
    assert items[1]["data_until"] % COLUMN == 0


async def test_markets_list_coverage_and_models_list_versions(client: AsyncTestClient, pipeline: Collection) -> None:
    markets = (await client.get("/v1/markets")).json()["markets"]
    assert len(markets) == 1
    market = markets[0]
    candles = await pipeline.store.read_candles("synthetic", "BTCUSDT")
    assert (market["exchange"], market["symbol"]) == ("synthetic", "BTCUSDT")
    assert market["coverage_start"] == int(candles["ts_ms"][0]) and market["bars"] == len(candles)
    assert market["data_until"] == int(candles["ts_ms"][-1]) + MINUTE
    assert market["ranges"] == ["12h", "24h"]

    models = (await client.get("/v1/models")).json()["models"]
    model1 = next(m for m in models if m["name"] == "model1")
    latest = (await client.get(LATEST)).json()
    assert model1["version"] == latest["model_version"] and model1["params_hash"] == latest["params_hash"]
    assert "Known weaknesses" in model1["doc"] and model1["params"]


async def test_frames_go_compressed_to_clients_that_accept_gzip_and_plain_to_others(client: AsyncTestClient) -> None:
    compressed = await client.get(LATEST, headers={"Accept-Encoding": "gzip"})
    assert compressed.headers["content-encoding"] == "gzip"
    raw = await client.get(LATEST, headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in raw.headers
    assert int(raw.headers["content-length"]) > 2 * int(compressed.headers["content-length"])
    assert raw.json() == compressed.json()


async def test_models_publish_their_scores_and_calibration(client: AsyncTestClient) -> None:
    from engine.models import MODELS

    models = {m["name"]: m for m in (await client.get("/v1/models")).json()["models"]}
    assert set(models) == set(MODELS)
    model3 = models["model3"]
    assert model3["version"] == MODELS["model3"].version and model3["tiers"] == list(MODELS["model3"].tiers)
    for model in models.values():
        score = model["score"]
        assert score is not None and score["cases"]
        # A score per data set and coin, each saying whether it comes after the model's fit.
        assert {(case["data_set"], case["coin"]) for case in score["cases"].values()} >= {
            ("multicoin-binance1h-coinglass4h", coin) for coin in ("BTC", "ETH", "SOL")
        } | {("btc-binance5m-coinglass-liq", "BTC")}
        for case in score["cases"].values():
            assert case["params_hash"] == model["params_hash"]
            assert -1 <= case["spearman_long"] <= 1 and -1 <= case["path_baseline_spearman_short"] <= 1
            if case["walk_forward"] and model["calibration"]:
                assert model["calibration"]["until_ms"] <= case["first_bar_ms"]
    assert models["model4"]["margin_table"] == "the market's" and models["model3"]["margin_table"] == "part of the parameters"


async def test_history_by_model_version_after_a_parameter_change(
    client: AsyncTestClient, pipeline: Collection, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dataclasses

    from engine import models as registry
    from engine.models import model1

    old = registry.MODELS["model1"]
    changed = dataclasses.replace(
        registry.model1_spec(model1.Model1Params(mmr=0.006)), version="1.1.0"
    )
    assert changed.params_hash != old.params_hash
    monkeypatch.setitem(registry.MODELS, "model1", changed)
    await pipeline.collect_once(NOW_MS + COLUMN)
    await pipeline.collect_once(NOW_MS + 2 * COLUMN)

    async def fetch(version: str | None) -> list[dict]:
        params = {"range": "12h", **({"model_version": version} if version else {})}
        return (await client.get("/v1/heatmaps/synthetic/BTCUSDT/frames", params=params)).json()["items"]

    before, after, every = await fetch(old.version), await fetch("1.1.0"), await fetch(None)
    assert len(before) == 1 and len(after) == 2 and len(every) == 3
    assert all(item["params_hash"] == old.params_hash for item in before)
    assert all(item["params_hash"] == changed.params_hash for item in after)
    assert [item["id"] for item in every] == [item["id"] for item in after] + [item["id"] for item in before]
    # The old version's frame is still there, whole, by its id.
    old_frame = (await client.get(f"/v1/heatmaps/synthetic/BTCUSDT/frames/{before[0]['id']}")).json()
    assert old_frame["model_version"] == old.version and old_frame["params_hash"] == old.params_hash
    latest = (await client.get(LATEST, params={"range": "12h"})).json()
    assert latest["model_version"] == "1.1.0"
