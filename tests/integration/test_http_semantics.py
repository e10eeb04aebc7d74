"""HTTP semantics: 405 with Allow, HEAD, OPTIONS, conditional requests, size limits, CORS."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from litestar.testing import AsyncTestClient

from service.api.semantics import MAX_HEADER_BYTES, MAX_QUERY_BYTES, etag_matches

pytestmark = pytest.mark.integration

V1 = "/v1/heatmaps/synthetic/BTCUSDT"
LATEST = f"{V1}/latest"
CG_HISTORY = "/api/futures/liquidation/history"
CG_PARAMS = {"exchange": "synthetic", "symbol": "BTCUSDT", "interval": "1h"}
GET_ROUTES = [(LATEST, {"range": "12h"}), (f"{V1}/frames", {"range": "12h"}), ("/v1/markets", {}), (CG_HISTORY, CG_PARAMS), ("/health", {})]


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
async def test_other_methods_on_get_routes_are_405_with_allow(client: AsyncTestClient, method: str) -> None:
    for path, params in GET_ROUTES:
        response = await client.request(method, path, params=params)
        assert response.status_code == 405, (path, response.text)
        assert response.headers["allow"] == "GET, HEAD, OPTIONS"
        body = response.json()
        message = body["msg"] if path.startswith("/api/") else body["error"]["message"]
        assert f"method {method} is not allowed" in message and "GET, HEAD, OPTIONS" in message


async def test_head_answers_as_get_without_a_body(client: AsyncTestClient) -> None:
    for path, params in [*GET_ROUTES, (f"{V1}/latest.png", {"range": "12h", "width": "320", "height": "240"})]:
        get = await client.get(path, params=params)
        head = await client.head(path, params=params)
        assert get.status_code == head.status_code == 200, (path, head.status_code)
        assert head.content == b""
        for name in ("content-type", "content-length", "etag"):
            assert head.headers.get(name) == get.headers.get(name), (path, name)


async def test_head_on_the_event_stream_ends(live: httpx.AsyncClient) -> None:
    response = await live.head(f"{V1}/stream", params={"range": "12h"}, timeout=10)
    assert response.status_code == 200 and response.content == b""
    assert response.headers["content-type"].startswith("text/event-stream")


async def test_options_lists_the_methods(client: AsyncTestClient) -> None:
    for path, params in GET_ROUTES:
        response = await client.options(path, params=params)
        assert response.status_code == 204 and response.headers["allow"] == "GET, HEAD, OPTIONS", path


def test_etag_matching_follows_if_none_match_rules() -> None:
    etag = '"model1-abc-12h-1"'
    assert etag_matches(etag, etag) and etag_matches(f"W/{etag}", etag) and etag_matches("*", etag)
    assert etag_matches(f'"old", {etag}', etag) and etag_matches(f'W/"old",W/{etag}', etag) and etag_matches(f'"old" ,  {etag} ', etag)
    assert not etag_matches('"old", "older"', etag) and not etag_matches("", etag) and not etag_matches('"model1-abc-12h-1.mp"', etag)


async def test_if_none_match_with_a_list_holding_the_current_etag_is_304(client: AsyncTestClient) -> None:
    for path, params in (
        (LATEST, {"range": "12h"}),
        (f"{V1}/latest.png", {"range": "12h", "width": "320", "height": "240"}),
        ("/api/futures/supported-coins", {}),
    ):
        etag = (await client.get(path, params=params)).headers["etag"]
        for sent in (f'"stale-one", {etag}', f'W/"stale", W/{etag}', "*", f"{etag},\"x\""):
            response = await client.get(path, params=params, headers={"If-None-Match": sent})
            assert response.status_code == 304 and response.content == b"", (path, sent)
            assert response.headers["etag"] == etag
        stale = await client.get(path, params=params, headers={"If-None-Match": '"stale-one", "stale-two"'})
        assert stale.status_code == 200 and stale.content


async def test_oversized_query_strings_and_headers_are_414_and_431_without_an_echo(client: AsyncTestClient) -> None:
    long_query = {"range": "12h", "junk": "q" * (MAX_QUERY_BYTES + 10)}
    for path, params in ((LATEST, long_query), (CG_HISTORY, {**CG_PARAMS, "junk": "q" * 60_000})):
        response = await client.get(path, params=params)
        assert response.status_code == 414 and len(response.content) < 300 and "qqqq" not in response.text
        assert "at most 8192" in response.text
        if path.startswith("/api/"):
            assert response.json()["code"] == "414"
    big_headers = {f"x-filler-{i}": "h" * 1000 for i in range(MAX_HEADER_BYTES // 1000 + 2)}
    response = await client.get(LATEST, params={"range": "12h"}, headers=big_headers)
    assert response.status_code == 431 and len(response.content) < 300 and "hhhh" not in response.text
    assert response.json()["error"]["error"] == "headers_too_large"


async def _raw_get(base_url: str, target: str) -> tuple[int, bytes]:
    """A GET sent as bytes (HTTP clients refuse URLs this long); ``(status, body)``."""
    url = httpx.URL(base_url)
    reader, writer = await asyncio.open_connection(url.host, url.port)
    writer.write(f"GET {target} HTTP/1.1\r\nHost: {url.host}\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    raw = await reader.read()
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


async def test_oversized_requests_get_the_envelope_through_the_server_too(live_url: str, live: httpx.AsyncClient) -> None:
    status, body = await _raw_get(live_url, f"{LATEST}?range=12h&junk={'q' * 100_000}")
    assert status == 414 and json.loads(body)["error"]["status"] == 414 and len(body) < 300
    response = await live.get(LATEST, params={"range": "12h"}, headers={"x-filler": "h" * 20_000})
    assert response.status_code == 431 and response.json()["error"]["status"] == 431


async def test_cors_is_off_other_origins_get_no_allowance(client: AsyncTestClient) -> None:
    origin = {"Origin": "https://elsewhere.example"}
    simple = await client.get(LATEST, params={"range": "12h"}, headers=origin)
    assert simple.status_code == 200 and "access-control-allow-origin" not in simple.headers
    preflight = await client.options(LATEST, headers={**origin, "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "x-api-key"})
    assert not any(name.startswith("access-control-") for name in preflight.headers)
    # The viewer is served by the API itself: its requests are same-origin and need no CORS.
    page = await client.get("/")
    assert page.status_code == 200 and "/v1/" in (await client.get("/static/viewer.js")).text
