"""Golden answers: the bytes every route sends for a fixed market at a fixed time.

A deterministic store (the synthetic market under two exchange ids and the per-coin
aggregates, collected at fixed instants, small frames) is asked every route: native
JSON and msgpack frames, history pages, frames by id, levels, realized liquidations,
markets, models, the Coinglass-compatible routes, error answers and the OpenAPI
document. Status and media type must equal what is stored in ``golden/api``, and the body
byte for byte; a JSON or msgpack body that differs in bytes must still equal it value for value,
numbers to 1e-12 relative: the synthetic inputs and the reductions over them go through numpy's
SIMD kernels, whose last bit differs between CPUs (AVX2 and AVX-512 round ``exp`` and pairwise
sums differently), and a golden file must not depend on the machine that wrote it.

A change here is either a bug or a change of the API's output made on purpose
(a new model version changes the frames, a new schema changes the document); after
checking which, regenerate with

    .venv/bin/python -m pytest tests/integration/test_golden_api.py --regenerate-goldens
"""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path
from typing import Any

import msgspec

import pytest
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from service.clock import Clock
from service.collect.round import Collection
from service.collect.synthetic import SyntheticMarket
from service.settings import Settings
from service.store.writer import Store
from tests.integration.conftest import NOW_MS as FIRST_MS

pytestmark = pytest.mark.integration

GOLDEN = Path(__file__).resolve().parent / "golden" / "api"
INDEX = GOLDEN / "index.json"
OPENAPI = GOLDEN / "openapi.json.gz"

COLUMN_MS = 5 * 60_000
# Three rounds a column apart: history holds three frames per range.
ROUNDS_MS = (FIRST_MS, FIRST_MS + COLUMN_MS, FIRST_MS + 2 * COLUMN_MS)
NOW_MS = ROUNDS_MS[-1] + 30_000  # the API's "now": half a minute after the last round

V1 = "/v1/heatmaps/binance/BTCUSDT"
CG = "/api/futures/liquidation"
PAIR = {"exchange": "Binance", "symbol": "BTCUSDT"}

# name -> (path, query parameters); "{frame_id}" / "{cursor}" are filled from earlier answers.
ROUTES: dict[str, tuple[str, dict[str, str]]] = {
    "v1_latest_12h.json": (f"{V1}/latest", {"range": "12h"}),
    "v1_latest_12h.msgpack": (f"{V1}/latest", {"range": "12h", "format": "msgpack"}),
    "v1_latest_12h_high.json": (f"{V1}/latest", {"range": "12h", "leverage": "high"}),
    "v1_latest_12h_high.msgpack": (f"{V1}/latest", {"range": "12h", "leverage": "high", "format": "msgpack"}),
    "v1_latest_all_btc_12h.json": ("/v1/heatmaps/all/BTC/latest", {"range": "12h"}),
    "v1_latest_all_btc_12h.msgpack": ("/v1/heatmaps/all/BTC/latest", {"range": "12h", "format": "msgpack"}),
    "v1_frames_12h_page1.json": (f"{V1}/frames", {"range": "12h", "limit": "2"}),
    "v1_frames_12h_page2.json": (f"{V1}/frames", {"range": "12h", "limit": "2", "cursor": "{cursor}"}),
    "v1_frames_24h_window.json": (f"{V1}/frames", {"range": "24h", "from": str(ROUNDS_MS[0]), "to": str(ROUNDS_MS[1])}),
    "v1_frame_by_id.json": (f"{V1}/frames/{{frame_id}}", {}),
    "v1_frame_by_id.msgpack": (f"{V1}/frames/{{frame_id}}", {"format": "msgpack"}),
    "v1_levels_12h.json": (f"{V1}/levels", {"range": "12h"}),
    "v1_levels_all_btc_24h_high.json": ("/v1/heatmaps/all/BTC/levels", {"range": "24h", "leverage": "high"}),
    "v1_liquidations_15m.json": ("/v1/liquidations/binance/BTCUSDT", {"from": str(FIRST_MS - 6 * 3_600_000), "interval": "15m", "limit": "20"}),
    "v1_liquidations_default.json": ("/v1/liquidations/okx/BTCUSDT", {"min_usd": "20000"}),
    "v1_markets.json": ("/v1/markets", {}),
    "v1_models.json": ("/v1/models", {}),
    "health.json": ("/health", {}),
    "ready.json": ("/ready", {}),
    "v1_latest_12h.png": (f"{V1}/latest.png", {"range": "12h", "width": "320", "height": "240"}),
    "cg_heatmap_12h.json": (f"{CG}/heatmap/model1", {**PAIR, "range": "12h"}),
    "cg_aggregated_heatmap_12h.json": (f"{CG}/aggregated-heatmap/model1", {"symbol": "BTC", "range": "12h"}),
    "cg_history_1h.json": (f"{CG}/history", {**PAIR, "interval": "1h"}),
    "cg_history_15m_from_start.json": (f"{CG}/history", {"exchange": "okx", "symbol": "btcusdt", "interval": "15m", "limit": "10", "start_time": str(FIRST_MS - 10 * 3_600_000)}),
    "cg_aggregated_history_4h.json": (f"{CG}/aggregated-history", {"exchange_list": "Binance,OKX", "symbol": "BTC", "interval": "4h"}),
    "cg_coin_list.json": (f"{CG}/coin-list", {"exchange": "Binance"}),
    "cg_exchange_list_24h.json": (f"{CG}/exchange-list", {"range": "24h"}),
    "cg_exchange_list_1h_btc.json": (f"{CG}/exchange-list", {"range": "1h", "symbol": "BTC"}),
    "cg_order.json": (f"{CG}/order", {"exchange": "OKX", "symbol": "BTC", "min_liquidation_amount": "10000"}),
    "cg_map_1d.json": (f"{CG}/map", {**PAIR, "range": "1d"}),
    "cg_aggregated_map_1d.json": (f"{CG}/aggregated-map", {"symbol": "BTC", "range": "1d"}),
    "cg_max_pain.json": (f"{CG}/max-pain", {}),
    "cg_max_pain_12h.json": (f"{CG}/max-pain", {"range": "12h"}),
    "cg_supported_exchange_pairs.json": ("/api/futures/supported-exchange-pairs", {}),
    "cg_supported_coins.json": ("/api/futures/supported-coins", {}),
    "cg_supported_exchanges.json": ("/api/futures/supported-exchanges", {}),
    "cg_oi_history_1h.json": ("/api/futures/open-interest/history", {**PAIR, "interval": "1h"}),
    "cg_oi_history_coin_15m.json": ("/api/futures/open-interest/history", {"exchange": "okx", "symbol": "BTCUSDT", "interval": "15m", "unit": "coin", "limit": "8"}),
    "cg_oi_aggregated_4h.json": ("/api/futures/open-interest/aggregated-history", {"symbol": "BTC", "interval": "4h"}),
    "cg_oi_exchange_list.json": ("/api/futures/open-interest/exchange-list", {"symbol": "BTC"}),
    "cg_funding_history_default.json": ("/api/futures/funding-rate/history", PAIR),
    "cg_funding_exchange_list.json": ("/api/futures/funding-rate/exchange-list", {}),
    "cg_price_history_4h.json": ("/api/futures/price/history", {**PAIR, "interval": "4h"}),
    "cg_account_ratio_1h.json": ("/api/futures/global-long-short-account-ratio/history", {**PAIR, "interval": "1h", "limit": "6"}),
    "cg_taker_volume_h1.json": ("/api/futures/v2/taker-buy-sell-volume/history", {**PAIR, "interval": "h1", "limit": "6"}),
    "v1_open_interest_btc.json": ("/v1/open-interest/BTC", {"interval": "4h", "limit": "3"}),
    # Errors: each validation in the order the routes run them.
    "err_v1_bad_range.json": (f"{V1}/latest", {"range": "2h"}),
    "err_v1_bad_model.json": (f"{V1}/levels", {"model": "model9", "range": "2h"}),
    "err_v1_unoffered_model.json": (f"{V1}/frames", {"model": "model3"}),
    "err_v1_bad_leverage.json": (f"{V1}/latest", {"leverage": "7"}),
    "err_v1_bad_format.json": (f"{V1}/latest", {"format": "xml"}),
    "err_v1_unknown_exchange.json": ("/v1/heatmaps/kraken/BTCUSDT/latest", {}),
    "err_v1_unknown_symbol.json": ("/v1/heatmaps/binance/DOGEUSDT/levels", {"range": "24h"}),
    "err_v1_frames_limit.json": (f"{V1}/frames", {"limit": "0"}),
    "err_v1_frames_span.json": (f"{V1}/frames", {"from": "5", "to": "4"}),
    "err_v1_frames_cursor.json": (f"{V1}/frames", {"cursor": "!!"}),
    "err_v1_frame_missing.json": (f"{V1}/frames/model1-nothing-12h-1", {}),
    "err_v1_png_width.json": (f"{V1}/latest.png", {"width": "10"}),
    "err_v1_liquidations_interval.json": ("/v1/liquidations/binance/BTCUSDT", {"interval": "2m"}),
    "err_v1_no_route.json": ("/v1/nothing", {}),
    "err_cg_heatmap_no_symbol.json": (f"{CG}/heatmap/model1", {"exchange": "Binance", "range": "12h"}),
    "err_cg_heatmap_bad_model.json": (f"{CG}/heatmap/model7", {**PAIR, "range": "12h"}),
    "err_cg_heatmap_unoffered_range.json": (f"{CG}/heatmap/model1", {**PAIR, "range": "3d"}),
    "err_cg_heatmap_unknown_pair.json": (f"{CG}/heatmap/model1", {"exchange": "Binance", "symbol": "NOPE", "range": "12h"}),
    "err_cg_aggregated_heatmap_unknown_coin.json": (f"{CG}/aggregated-heatmap/model1", {"symbol": "DOGE", "range": "12h"}),
    "err_cg_history_interval.json": (f"{CG}/history", {**PAIR, "interval": "2h"}),
    "err_cg_history_limit.json": (f"{CG}/history", {**PAIR, "interval": "1h", "limit": "1001"}),
    "err_cg_history_limit_text.json": (f"{CG}/history", {**PAIR, "interval": "1h", "limit": "ten"}),
    "err_cg_history_end_time.json": (f"{CG}/history", {**PAIR, "interval": "1h", "end_time": "1780000000000000"}),
    "err_cg_history_unknown_exchange.json": (f"{CG}/history", {"exchange": "Kraken", "symbol": "BTCUSDT", "interval": "1h"}),
    "err_cg_aggregated_history_list.json": (f"{CG}/aggregated-history", {"exchange_list": " , ", "symbol": "BTC", "interval": "1h"}),
    "err_cg_aggregated_history_coin.json": (f"{CG}/aggregated-history", {"exchange_list": "OKX", "symbol": "ETH", "interval": "1h"}),
    "err_cg_coin_list_no_exchange.json": (f"{CG}/coin-list", {}),
    "err_cg_exchange_list_range.json": (f"{CG}/exchange-list", {"range": "2d"}),
    "err_cg_order_amount.json": (f"{CG}/order", {"exchange": "Binance", "symbol": "BTC", "min_liquidation_amount": "1e4"}),
    "err_cg_map_unoffered_range.json": (f"{CG}/map", {**PAIR, "range": "7d"}),
    "err_cg_map_bad_range.json": (f"{CG}/map", {**PAIR, "range": "2d"}),
    "err_cg_aggregated_map_unknown_coin.json": (f"{CG}/aggregated-map", {"symbol": "DOGE", "range": "1d"}),
    "err_cg_max_pain_range.json": (f"{CG}/max-pain", {"range": "1h"}),
    "err_cg_no_route.json": (f"{CG}/nothing-here", {}),
    "err_cg_oi_history_unit.json": ("/api/futures/open-interest/history", {**PAIR, "unit": "eur"}),
    "err_cg_oi_history_aggregate.json": ("/api/futures/open-interest/history", {"exchange": "all", "symbol": "BTC"}),
    "err_cg_price_history_interval.json": ("/api/futures/price/history", {**PAIR, "interval": "2h"}),
    "err_cg_oi_exchange_list_coin.json": ("/api/futures/open-interest/exchange-list", {"symbol": "DOGE"}),
    "err_v1_open_interest_coin.json": ("/v1/open-interest/DOGE", {}),
}
# Asked after a market without frames is added: "being computed" answers.
NOT_READY_ROUTES: dict[str, tuple[str, dict[str, str]]] = {
    "err_v1_not_ready_latest.json": ("/v1/heatmaps/binance/XRPUSDT/latest", {}),
    "err_v1_not_ready_levels.json": ("/v1/heatmaps/binance/XRPUSDT/levels", {}),
    "err_v1_not_ready_png.json": ("/v1/heatmaps/binance/XRPUSDT/latest.png", {}),
    "err_cg_not_ready_heatmap.json": (f"{CG}/heatmap/model1", {"exchange": "Binance", "symbol": "XRPUSDT", "range": "12h"}),
    "err_cg_not_ready_map.json": (f"{CG}/map", {"exchange": "Binance", "symbol": "XRPUSDT", "range": "1d"}),
}


@pytest.fixture
async def seeded(redis: Redis, redis_url: str) -> Settings:
    settings = Settings(redis_url=redis_url, models=("model1", "model2"), ranges=("12h", "24h"), backfill_days=1.0, frame_rows=24, aggregate=True)
    sources = [
        SyntheticMarket(seed=3, symbols={"BTCUSDT": 77_000.0, "ETHUSDT": 3_000.0}, exchange="binance"),
        SyntheticMarket(seed=5, symbols={"BTCUSDT": 77_000.0}, exchange="okx"),
    ]
    collection = Collection.create(Store(redis), settings, sources)
    for round_ms in ROUNDS_MS:
        await collection.collect_once(round_ms)
    return settings


@pytest.fixture
def api_clock() -> Clock:
    return lambda: NOW_MS


async def _ask(client: AsyncTestClient, routes: dict[str, tuple[str, dict[str, str]]], filled: dict[str, str]) -> dict[str, tuple[int, str, bytes]]:
    answers = {}
    for name, (path, params) in routes.items():
        response = await client.get(path.format(**filled), params={key: value.format(**filled) for key, value in params.items()})
        answers[name] = (response.status_code, response.headers.get("content-type", ""), response.content)
        if name == "v1_frames_12h_page1.json":
            page = json.loads(response.content)
            filled["cursor"], filled["frame_id"] = page["next_cursor"], page["items"][1]["id"]
    return answers


async def test_every_route_answers_the_golden_bytes(client: AsyncTestClient, redis: Redis, request: pytest.FixtureRequest) -> None:
    answers = await _ask(client, ROUTES, {})
    await Store(redis).add_market("binance", "XRPUSDT")
    answers |= await _ask(client, NOT_READY_ROUTES, {})
    openapi = (await client.get("/docs/openapi.json")).json()

    if request.config.getoption("--regenerate-goldens"):
        _write(answers, openapi)
        pytest.skip(f"golden answers rewritten in {GOLDEN}")

    index = json.loads(INDEX.read_text())
    assert set(index) == set(answers), "routes asked differ from those recorded: regenerate on purpose"
    differ = []
    for name, (status, media_type, body) in answers.items():
        recorded = index[name]
        golden = gzip.decompress((GOLDEN / f"{name}.gz").read_bytes())
        if (status, media_type) != (recorded["status"], recorded["content_type"]) or not same_answer(body, golden, media_type):
            differ.append(f"{name}: {status} {media_type} {body[:200]!r}")
    assert not differ, "answers differ from the golden ones:\n" + "\n".join(differ)
    assert openapi == json.loads(gzip.decompress(OPENAPI.read_bytes())), "the OpenAPI document changed"


def same_answer(body: bytes, golden: bytes, media_type: str) -> bool:
    """Equal bytes, or a JSON / msgpack document equal value for value up to the last bits of floats."""
    if body == golden:
        return True
    if media_type.startswith("application/json"):
        return same_values(json.loads(body), json.loads(golden))
    if media_type.startswith("application/msgpack") or media_type.startswith("application/x-msgpack"):
        return same_values(msgspec.msgpack.decode(body), msgspec.msgpack.decode(golden))
    return False


def same_values(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, int | float) and isinstance(b, int | float) and math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-9)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same_values(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return isinstance(b, list | tuple) and len(a) == len(b) and all(same_values(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, str) and isinstance(b, str) and a != b:
        # Coinglass shapes send numbers as decimal strings.
        return _number(a) is not None and _number(b) is not None and same_values(_number(a), _number(b))
    return type(a) is type(b) and a == b


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def test_same_values_tells_float_noise_from_a_change() -> None:
    assert same_values({"v": [1.0, 39305519.52362367]}, {"v": [1.0, 39305519.523623675]})
    assert not same_values({"v": [1.0, 39305519.5236]}, {"v": [1.0, 39305519.5237]})
    assert not same_values({"v": [1, 2]}, {"v": [1, 2, 3]})
    assert not same_values({"v": "a"}, {"w": "a"})
    assert same_values(["39305519.52362367"], ["39305519.52362368"])
    assert not same_values(["39305519.5236"], ["39305519.5237"])
    assert not same_values(["BTC"], ["ETH"])
    assert same_answer(b'{"a":0.1}', b'{"a":0.1}', "text/plain")
    assert not same_answer(b'{"a":0.1}', b'{"a":0.1 }', "image/png")


def _write(answers: dict[str, tuple[int, str, bytes]], openapi: object) -> None:
    GOLDEN.mkdir(parents=True, exist_ok=True)
    for stale in GOLDEN.iterdir():
        stale.unlink()
    for name, (_, _, body) in answers.items():
        (GOLDEN / f"{name}.gz").write_bytes(gzip.compress(body, compresslevel=9, mtime=0))
    index = {name: {"status": status, "content_type": media_type} for name, (status, media_type, _) in answers.items()}
    INDEX.write_text(json.dumps(index, indent=1) + "\n")
    OPENAPI.write_bytes(gzip.compress(json.dumps(openapi, indent=1, ensure_ascii=False).encode(), compresslevel=9, mtime=0))
