"""Bad input on every surface: a clear 4xx naming what is allowed, never a 5xx, never a huge echo."""

from __future__ import annotations

import pytest
from litestar.testing import AsyncTestClient

from service.api.params import MAX_EPOCH_MS
from service.api.semantics import MAX_QUERY_BYTES
from service.clock import Clock
from tests.integration.conftest import NOW_MS

pytestmark = pytest.mark.integration

LIQUIDATIONS = "/v1/liquidations/synthetic/BTCUSDT"
LATEST = "/v1/heatmaps/synthetic/BTCUSDT/latest"
FRAMES = "/v1/heatmaps/synthetic/BTCUSDT/frames"
V1_PNG = "/v1/heatmaps/synthetic/BTCUSDT/latest.png"
CG = "/api/futures/liquidation"
PAIR = {"exchange": "synthetic", "symbol": "BTCUSDT"}
YEAR_2099_MS = MAX_EPOCH_MS - 365 * 86_400_000


@pytest.fixture
def api_clock() -> Clock:
    return lambda: NOW_MS


def _message(response) -> str:  # noqa: ANN001
    body = response.json()
    return body["msg"] if "msg" in body else body["error"]["message"]


@pytest.mark.parametrize(
    ("path", "params", "name"),
    [
        (LIQUIDATIONS, {"to": str(10**19)}, "to"),
        (LIQUIDATIONS, {"to": str(10**30)}, "to"),
        (LIQUIDATIONS, {"from": str(10**30)}, "from"),
        (LIQUIDATIONS, {"from": "-1"}, "from"),
        (FRAMES, {"to": str(10**30)}, "to"),
        (FRAMES, {"from": "-5"}, "from"),
        (f"{CG}/history", {**PAIR, "interval": "1h", "end_time": str(10**30)}, "end_time"),
        (f"{CG}/history", {**PAIR, "interval": "1h", "start_time": "-1"}, "start_time"),
        (f"{CG}/order", {"exchange": "synthetic", "symbol": "BTC", "min_liquidation_amount": "1", "start_time": str(10**19)}, "start_time"),
    ],
)
async def test_time_parameters_out_of_range_are_400_naming_the_range(client: AsyncTestClient, path: str, params: dict, name: str) -> None:
    response = await client.get(path, params=params)
    assert response.status_code == 400, response.text
    assert _message(response).startswith(f"{name} must be epoch milliseconds, 0..{MAX_EPOCH_MS} (1970-01-01 to 2100-01-01 UTC)")


@pytest.mark.parametrize(
    ("path", "params", "message"),
    [
        (LIQUIDATIONS, {"from": NOW_MS, "to": NOW_MS - 1}, f"from ({NOW_MS}) must be earlier than to ({NOW_MS - 1})"),
        (LIQUIDATIONS, {"from": NOW_MS, "to": NOW_MS}, "must be earlier than"),
        (FRAMES, {"from": 5, "to": 4}, "from (5) must not be later than to (4)"),
        (f"{CG}/history", {**PAIR, "interval": "1h", "start_time": 5, "end_time": 4}, "start_time (5) must not be later than end_time (4)"),
        (f"{CG}/order", {"exchange": "synthetic", "symbol": "BTC", "min_liquidation_amount": "1", "start_time": 5, "end_time": 4}, "start_time (5)"),
    ],
)
async def test_reversed_time_ranges_are_400(client: AsyncTestClient, path: str, params: dict, message: str) -> None:
    response = await client.get(path, params=params)
    assert response.status_code == 400, response.text
    assert message in _message(response)


async def test_a_future_window_is_empty_not_hundreds_of_empty_buckets(client: AsyncTestClient) -> None:
    for params in ({"from": YEAR_2099_MS, "to": MAX_EPOCH_MS}, {"to": MAX_EPOCH_MS}, {"from": YEAR_2099_MS}):
        body = (await client.get(LIQUIDATIONS, params=params)).json()
        assert body["totals"] == [] and body["events"] == [] and body["end"] == NOW_MS, params
    # A window reaching past now ends at now: its buckets stop at the one holding now.
    reaching = (await client.get(LIQUIDATIONS, params={"from": NOW_MS - 3_600_000, "to": MAX_EPOCH_MS, "interval": "5m"})).json()
    first, last = (NOW_MS - 3_600_000) // 300_000, (NOW_MS - 1) // 300_000
    assert reaching["end"] == NOW_MS and len(reaching["totals"]) == last - first + 1
    assert reaching["totals"][-1]["time"] == (NOW_MS - 1) // 300_000 * 300_000
    for params in ({"start_time": YEAR_2099_MS}, {"start_time": YEAR_2099_MS, "end_time": MAX_EPOCH_MS}):
        response = await client.get(f"{CG}/history", params={**PAIR, "interval": "1m", **params})
        assert response.status_code == 200 and response.json()["data"] == [], params
    ending_in_2100 = (await client.get(f"{CG}/history", params={**PAIR, "interval": "1h", "end_time": MAX_EPOCH_MS})).json()["data"]
    assert ending_in_2100 and ending_in_2100[-1]["time"] == NOW_MS // 3_600_000 * 3_600_000


@pytest.mark.parametrize(
    ("path", "params", "message", "allowed"),
    [
        (LATEST, {"format": "xml"}, "format must be one of json, msgpack; got 'xml'", ["json", "msgpack"]),
        (FRAMES, {"from": "abc"}, "from must be an integer 0..4102444800000; got 'abc'", None),
        (FRAMES, {"limit": "-1"}, "limit must be an integer 1..500; got '-1'", None),
        (FRAMES, {"limit": str(10**30)}, "limit must be an integer 1..500; got '1000000000000000000000000000000'", None),
        (LIQUIDATIONS, {"limit": "0"}, "limit must be an integer 1..1000; got '0'", None),
        (LIQUIDATIONS, {"limit": str(-(10**30))}, f"limit must be an integer 1..1000; got '{-(10**30)}'", None),
        (f"{V1_PNG}", {"width": str(10**30)}, f"width must be 320..4000; got {10**30}", None),
        (LIQUIDATIONS, {"min_usd": "lots"}, "min_usd must be a number >= 0; got 'lots'", None),
        (f"{CG}/history", {**PAIR, "interval": "1h", "limit": "-3"}, "limit must be 1..1000; got -3", None),
        (f"{CG}/history", {**PAIR, "interval": "1h", "limit": str(10**30)}, f"limit must be 1..1000; got {10**30}", None),
        (f"{CG}/history", {**PAIR, "interval": "1h", "limit": "ten"}, "limit must be an integer 1..1000; got 'ten'", None),
    ],
)
async def test_framework_checks_speak_of_public_names_and_what_is_allowed(
    client: AsyncTestClient, path: str, params: dict, message: str, allowed: list[str] | None
) -> None:
    response = await client.get(path, params=params)
    assert response.status_code == 400, response.text
    text = _message(response)
    assert text == message
    assert "Validation failed" not in text and "fmt" not in text and "from_ms" not in text and "/v1/" not in text
    if not path.startswith("/api/"):
        assert response.json()["error"]["allowed"] == allowed


async def test_a_huge_value_is_not_echoed_back(client: AsyncTestClient) -> None:
    huge = "x" * 5_000  # under the query string's limit (8 KB, test_http_semantics.py): checked, not refused whole
    for path, params in ((LATEST, {"format": huge}), (LATEST, {"range": huge}), (f"{CG}/history", {**PAIR, "interval": huge})):
        response = await client.get(path, params=params)
        assert response.status_code == 400, response.text
        assert len(response.content) < 1_000 and "(5000 characters)" in _message(response)


@pytest.mark.parametrize("symbol", ["S" * 10_000, "S" * 5_000, "BTC\u00e9\u4e2d\U0001f680", "%00", "..%2F..%2Fetc"])
async def test_unicode_and_10kb_symbols_are_404_with_a_short_message(client: AsyncTestClient, symbol: str) -> None:
    for path, params in (
        (f"/v1/heatmaps/synthetic/{symbol}/latest", {}),
        (f"/v1/liquidations/synthetic/{symbol}", {}),
        (f"{CG}/heatmap/model1", {"exchange": "synthetic", "symbol": symbol, "range": "12h"}),
        (f"{CG}/history", {"exchange": "synthetic", "symbol": symbol, "interval": "1h"}),
    ):
        response = await client.get(path, params=params)
        # In the path: an unknown market (404); 10 KB in the query: over the query string's limit (414).
        assert response.status_code == (414 if len(symbol) > MAX_QUERY_BYTES and params else 404), (path, response.text[:200])
        assert len(response.content) < 1_000


async def test_the_document_says_what_the_routes_do(client: AsyncTestClient) -> None:
    document = (await client.get("/docs/openapi.json")).json()
    for path in ("/v1/heatmaps/{exchange}/{symbol}/latest", "/v1/heatmaps/{exchange}/{symbol}/frames/{frame_id}"):
        assert set(document["paths"][path]["get"]["responses"]["200"]["content"]) == {"application/json", "application/msgpack"}
    # No query parameter is declared nullable: "?x=null" is text, and refused where text is checked.
    for item in document["paths"].values():
        for parameter in item["get"].get("parameters", []):
            if parameter["in"] == "query":
                assert "null" not in str(parameter["schema"].get("type")) and "oneOf" not in parameter["schema"], parameter
                assert None not in parameter["schema"].get("enum", []), parameter
    order = {p["name"]: p for p in document["paths"][f"{CG}/order"]["get"]["parameters"]}
    assert order["min_liquidation_amount"]["schema"]["type"] == "string" and order["min_liquidation_amount"]["required"]
    response = await client.get(f"{CG}/order", params={"exchange": "synthetic", "symbol": "BTC", "min_liquidation_amount": "null"})
    assert response.status_code == 400 and response.json()["msg"].startswith("min_liquidation_amount=null: a query parameter cannot be null")


@pytest.mark.parametrize(
    ("path", "params"),
    [
        (f"{CG}/history", {**PAIR, "interval": "1h", "limit": "null"}),
        (f"{CG}/history", {**PAIR, "interval": "1h", "end_time": "null"}),
        (LIQUIDATIONS, {"to": "null"}),
        (LATEST, {"format": "null"}),
    ],
)
async def test_null_is_no_value_of_any_query_parameter(client: AsyncTestClient, path: str, params: dict) -> None:
    # The framework read "null" as "absent" for numbers (200) and as text elsewhere: one rule now, as documented.
    response = await client.get(path, params=params)
    assert response.status_code == 400, response.text
    name = next(key for key, value in params.items() if value == "null")
    assert _message(response) == f"{name}=null: a query parameter cannot be null; leave it out to use its default"


@pytest.mark.parametrize("leverage", ["", "High", " high", "25;50", "x"])
async def test_a_leverage_that_is_no_filter_is_400(client: AsyncTestClient, leverage: str) -> None:
    for path in (LATEST, "/v1/heatmaps/synthetic/BTCUSDT/levels", V1_PNG):
        response = await client.get(path, params={"range": "12h", "leverage": leverage})
        assert response.status_code == 400, (path, leverage, response.status_code)
        assert "allowed: all, low, mid, high" in _message(response)
