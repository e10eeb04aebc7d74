"""Every role as its own process: 2 api + 2 workers + 2 collectors on one store, then through a cluster.

Over the fake exchange on loopback: every market's frames appear, no frame is built twice,
no candle is duplicated or missing; a worker killed mid-job leaves its job to the other; a
collector killed leaves its markets to the other within the lease, and the candles have no gap.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import msgspec
import numpy as np
import pytest
import redis

from service.fakeexchange.server import fake_exchange_in_thread
from service.settings import Settings
from service.store import keys
from service.store.jobs import GROUP
from tests.cluster import local_cluster
from tests.conftest import free_port
from tests.processes import Roles as RoleProcesses
from tests.processes import fake_deployment_settings, stored_rows, wait_until

pytestmark = pytest.mark.e2e

SYMBOLS = ["BTCUSDT", "ETHUSDT"]
VENUES = ("binance", "bybit", "okx")
MARKETS = [(venue, symbol) for venue in VENUES for symbol in SYMBOLS] + [("all", "BTC"), ("all", "ETH")]
MINUTE = 60_000
LEASE_TTL_S = 2.0


class Roles(RoleProcesses):
    """The six role processes of one deployment."""

    def __init__(self, settings: Settings, log_dir: Path) -> None:
        super().__init__(settings, log_dir)
        self.api_ports = [free_port(), free_port()]

    def start_all(self) -> None:
        for index, port in enumerate(self.api_ports):
            self.start(f"api{index}", "api", "--port", str(port))
        for name in ("collect0", "collect1"):
            self.start(name, "collect")
        for name in ("worker0", "worker1"):
            self.start(name, "worker")

    def consumer(self, name: str) -> str:
        return f"{os.uname().nodename}-{self.processes[name].pid}"


@contextmanager
def deployment(redis_url: str, cluster: bool, fake: dict[str, str], log_dir: Path) -> Iterator[tuple[Roles, redis.Redis]]:
    settings = fake_deployment_settings(redis_url, fake, SYMBOLS, redis_cluster=cluster, lease_ttl_s=LEASE_TTL_S, collect_shards=8, job_timeout_s=5.0)
    client = redis.RedisCluster.from_url(redis_url) if cluster else redis.Redis.from_url(redis_url)
    roles = Roles(settings, log_dir)
    try:
        roles.start_all()
        yield roles, client
    finally:
        roles.stop()
        client.close()


def frames_everywhere(roles: Roles, after_ms: int = 0) -> bool:
    for port in roles.api_ports:
        for exchange, symbol in MARKETS:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/v1/heatmaps/{exchange}/{symbol}/latest", params={"range": "12h"}, timeout=10)
            except httpx.TransportError:  # not listening yet
                return False
            if response.status_code != 200 or response.json()["data_until"] <= after_ms:
                return False
    return True


def listen(client: redis.Redis, channel_pattern: str, heard: Counter[str], stop: threading.Event) -> None:
    pubsub = (redis.Redis(host=client.get_default_node().host, port=client.get_default_node().port) if isinstance(client, redis.RedisCluster) else client).pubsub()
    pubsub.psubscribe(channel_pattern)
    while not stop.is_set():
        message = pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)
        if message and message["type"] == "pmessage":
            heard[msgspec.json.decode(message["data"])["id"] + "@" + message["channel"].decode()] += 1
    pubsub.close()


def flow(redis_url: str, cluster: bool, fake: dict[str, str], log_dir: Path) -> None:
    heard: Counter[str] = Counter()
    stop = threading.Event()
    with deployment(redis_url, cluster, fake, log_dir) as (roles, client):
        listener = threading.Thread(target=listen, args=(client, keys.frame_channels(0), heard, stop), daemon=True)
        listener.start()
        # A worker killed while it holds a job: the other takes the job over.
        def worker0_busy() -> bool:
            try:
                return any(c["name"].decode() == roles.consumer("worker0") and c["pending"] for c in client.xinfo_consumers(keys.JOBS, GROUP))
            except redis.ResponseError:  # no group yet: no worker has started
                return False

        wait_until("a job in worker0's hands", worker0_busy, 60)
        roles.kill("worker0")
        # Its job is done again by the other worker: frames it stored before dying are announced twice.
        pending = client.xpending_range(keys.JOBS, GROUP, min="-", max="+", count=100, consumername=roles.consumer("worker0"))
        redone = {client.xrange(keys.JOBS, p["message_id"], p["message_id"])[0][1][b"market"].decode() for p in pending}
        wait_until("every market's frames, on both APIs", lambda: frames_everywhere(roles), 90)
        wait_until("no job left pending", lambda: client.xpending(keys.JOBS, GROUP)["pending"] == 0, 30)
        # A collector killed: its shards go to the other within the lease, which fills what it missed.
        holders = wait_until("both collectors holding shards", lambda: len(set(client.mget([keys.lease(s) for s in range(8)]))) == 2, 30)
        assert holders
        killed_at = time.time()
        roles.kill("collect0")
        survivor = roles.consumer("collect1")
        wait_until("the dead collector's shards taken over", lambda: {v.decode() for v in client.mget([keys.lease(s) for s in range(8)]) if v} == {survivor}, 3 * LEASE_TTL_S + 5)
        assert time.time() - killed_at < 3 * LEASE_TTL_S + 5
        next_bar_end = (int(time.time() * 1000) // MINUTE + 1) * MINUTE
        wait_until("frames of a bar that closed after the takeover", lambda: frames_everywhere(roles, after_ms=next_bar_end - MINUTE), 100)
        stop.set()
        listener.join()
        for exchange, symbol in MARKETS[: len(VENUES) * len(SYMBOLS)]:
            rows = stored_rows(client, "candles", exchange, symbol)
            assert len(rows) > 20
            steps = np.diff(rows["ts_ms"])
            assert steps.min() == MINUTE and steps.max() == MINUTE, (exchange, symbol)  # none twice, none missing
            assert int(rows["ts_ms"][-1]) >= next_bar_end - 2 * MINUTE
    assert heard
    twice = [key for key, count in heard.items() if count > 1 and not any(f"{{{market}}}" in key for market in redone)]
    assert not twice, heard.most_common(5)  # no frame built twice but the killed worker's


def test_every_role_in_its_own_process_on_a_store_and_on_a_cluster(valkey_server, tmp_path: Path) -> None:  # noqa: ANN001
    errors: list[BaseException] = []

    def run(target: Callable[[], None]) -> threading.Thread:
        def guarded() -> None:
            try:
                target()
            except BaseException as exc:  # reported below
                errors.append(exc)

        thread = threading.Thread(target=guarded)
        thread.start()
        return thread

    store_url = f"redis://{valkey_server.host}:{valkey_server.port}/0"
    redis.Redis.from_url(store_url).flushdb()
    with fake_exchange_in_thread(symbols=SYMBOLS) as fake_one, fake_exchange_in_thread(symbols=SYMBOLS) as fake_two:
        (tmp_path / "store").mkdir()
        (tmp_path / "cluster").mkdir()
        with local_cluster(tmp_path / "cluster-data") as cluster_url:
            threads = [
                run(lambda: flow(store_url, False, fake_one, tmp_path / "store")),
                run(lambda: flow(cluster_url, True, fake_two, tmp_path / "cluster")),
            ]
            for thread in threads:
                thread.join()
    if errors:
        raise errors[0]
