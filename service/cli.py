"""The ``liqmap`` command: one CLI, several roles."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from collections.abc import Sequence

from service.allocator import return_freed_memory
from service.roles import fake_exchange_if, run_all, run_api, run_collect, run_worker
from service.settings import Settings

log = logging.getLogger("liqmap")

DEMO_DEFAULTS = {"mode": "demo", "sources": ("synthetic",), "collect_interval_s": 5.0, "backfill_days": 3.0, "data_dir": ".liqmap/demo"}


def _backfill(settings: Settings, args: argparse.Namespace) -> int:
    from service.collect.backfill import backfill_market, window
    from service.collect.venues.registry import COLLECTORS
    from service.store.client import open_redis
    from service.clock import now_ms
    from service.store.writer import Store

    if args.all:
        markets: list[tuple[str, str]] | None = None  # every venue's markets, read in run()
    elif args.exchange and args.symbol:
        if args.exchange not in COLLECTORS:
            print(f"liqmap: unknown exchange {args.exchange!r}; available: {', '.join(COLLECTORS)}", file=sys.stderr)
            return 2
        markets = [(args.exchange, args.symbol.upper())]
    else:
        print("liqmap: give --exchange and --symbol, or --all", file=sys.stderr)
        return 2

    async def run() -> int:
        failed = 0
        start, end = window(args.days, now_ms())
        chosen = markets if markets is not None else await _configured_markets(settings)
        async with open_redis(settings) as redis:
            store = Store(redis)
            for venue, symbol in chosen:
                collector = COLLECTORS[venue](settings, [symbol])
                try:
                    result = await backfill_market(store, collector, symbol, start, end)
                    print(f"{venue} {symbol}: {result.candles} bars, {result.open_interest} open-interest rows written; {result.skipped} of {result.chunks} days already stored")
                except Exception as exc:  # one market's failure must not stop the others
                    failed += 1
                    print(f"\n{venue} {symbol}: failed: {exc}", file=sys.stderr)
                finally:
                    await collector.close()
        return 1 if failed else 0

    with fake_exchange_if(settings, args.fake_exchange) as settings:
        return asyncio.run(run())


async def _configured_markets(settings: Settings) -> list[tuple[str, str]]:
    """Every (venue, symbol) LIQMAP_SOURCES × LIQMAP_MARKETS names (all, top:N: read from each venue)."""
    from service.collect.venues.registry import COLLECTORS

    out: list[tuple[str, str]] = []
    for venue in [v for v in settings.sources if v in COLLECTORS]:
        collector = COLLECTORS[venue](settings)
        try:
            await collector.refresh_markets()
            out += [(venue, symbol) for symbol in collector.symbols()]
        finally:
            await collector.close()
    return out


def _configure_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # One line per job run every few seconds drowns what matters; so does a warning for each
    # round skipped while the previous one still runs (by design: rounds never overlap).
    logging.getLogger("apscheduler").setLevel(max(logging.ERROR, logging.getLogger().level))


def _migrate(settings: Settings) -> None:
    from service.store.client import open_redis
    from service.store.migrate import current_version, migrate

    async def run() -> None:
        async with open_redis(settings) as redis:
            applied = await migrate(redis)
            for migration in applied:
                print(f"applied {migration.version:04d} {migration.name}: {migration.description}")
            print(f"schema version {await current_version(redis)}")

    asyncio.run(run())


def _parse_limit(text: str) -> int:
    """``600`` or ``600/min`` → 600."""
    number = text.removesuffix("/min").removesuffix("/m")
    if not number.isdigit() or int(number) < 1:
        raise argparse.ArgumentTypeError(f"limit must look like 600 or 600/min, got {text!r}")
    return int(number)


def _keys(settings: Settings, args: argparse.Namespace) -> int:
    from service.store.access import Access
    from service.store.client import open_redis

    async def run() -> int:
        async with open_redis(settings) as redis:
            access = Access(redis)
            if args.keys_command == "create":
                limit = args.limit if args.limit is not None else settings.default_key_limit_per_min
                record, plain = await access.create(args.name, limit)
                print(plain)
                print(f"key {record.id} ({record.name}), {record.limit_per_min} requests/min; the key is shown only now", file=sys.stderr)
                return 0
            if args.keys_command == "list":
                for record in await access.list():
                    state = "revoked" if record.revoked_ms is not None else "active"
                    print(f"{record.id}  {record.name}  {record.limit_per_min}/min  {state}")
                return 0
            if await access.revoke(args.key_id):
                print(f"key {args.key_id} revoked")
                return 0
            print(f"no key with id {args.key_id!r} (see 'liqmap keys list')", file=sys.stderr)
            return 1

    return asyncio.run(run())


def demo_overrides(markets: int | None, venues: str | None) -> dict[str, object]:
    """Settings ``liqmap demo --markets N --venues LIST`` stands for (None: left to the environment).

    ``--venues synthetic`` (or an empty list) runs one venue named ``synthetic`` and no
    per-coin aggregates: N markets in all, the cheapest way to see the service at scale.
    """
    overrides: dict[str, object] = {"synthetic_markets": markets}
    if venues is not None:
        names = tuple(v.strip().lower() for v in venues.split(",") if v.strip())
        if names in ((), ("synthetic",)):
            overrides |= {"synthetic_venues": (), "aggregate": False}
        else:
            overrides["synthetic_venues"] = names
    return overrides


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="liqmap", description="Liquidation heatmaps for crypto perpetual futures.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("demo", "everything from one command, offline: embedded store, synthetic markets, collector, engine workers, API"),
        ("serve", "everything from one command: collectors, engine workers (own processes) and API"),
        ("api", "the API only (stateless; run as many as you like)"),
        ("collect", "the collectors only: new bars queue recompute jobs (replicas split the markets)"),
        ("worker", "an engine worker only: takes recompute jobs from the queue (run as many as you like)"),
    ):
        cmd = sub.add_parser(name, help=text, description=text)
        cmd.add_argument("--host", default=None, help="address to listen on (default 127.0.0.1)")
        cmd.add_argument("--port", type=int, default=None, help="port to listen on (default 8000; collect and worker: LIQMAP_METRICS_PORT)")
        cmd.add_argument("--data-dir", default=None, help="folder of the embedded store when REDIS_URL is unset")
        if name in ("collect", "worker"):
            # Set by serve/demo for the roles they start: stop when that process is gone.
            cmd.add_argument("--parent-pid", type=int, default=None, help=argparse.SUPPRESS)
        if name == "demo":
            cmd.add_argument("--markets", type=int, default=None, help="synthetic symbols on each venue (BTCUSDT, ETHUSDT, SOLUSDT first; default 3)")
            cmd.add_argument(
                "--venues",
                default=None,
                help="synthetic venues, comma-separated (default binance,bybit,okx, summed into all); 'synthetic': one venue of that name, no aggregates",
            )
        if name == "serve":
            cmd.add_argument(
                "--fake-exchange",
                action="store_true",
                help="start the fake exchange in this process on free loopback ports and collect from it (offline; store under .liqmap/fake)",
            )
    fake = sub.add_parser("fake-exchange", help="run the fake Binance/Bybit/OKX on loopback ports, for trying things offline")
    fake.add_argument("--scenario", default="normal", help="normal, storm (429/418 with Retry-After), garbage (HTML, truncated, wrong types) or flaky-stream")
    fake.add_argument("--seed", type=int, default=7, help="the synthetic market behind it")
    backfill = sub.add_parser("backfill", help="fetch history into the store (resumable; running it twice changes nothing)")
    backfill.add_argument("--exchange", help="binance, bybit or okx")
    backfill.add_argument("--symbol", help="canonical symbol, e.g. BTCUSDT (OKX's BTC-USDT-SWAP too is BTCUSDT)")
    backfill.add_argument("--all", action="store_true", help="every configured exchange and market (LIQMAP_SOURCES x LIQMAP_MARKETS)")
    backfill.add_argument("--days", type=float, default=7.0, help="how far back, days (default 7)")
    backfill.add_argument("--data-dir", default=None, help="folder of the embedded store when REDIS_URL is unset")
    backfill.add_argument("--fake-exchange", action="store_true", help="backfill from an in-process fake exchange (offline)")
    sub.add_parser("migrate", help="bring the store's keyspace to the newest schema version")
    keys_parser = sub.add_parser("keys", help="manage API keys")
    keys_sub = keys_parser.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="create a key; it is printed once")
    create.add_argument("--name", required=True, help="who or what the key is for")
    create.add_argument("--limit", type=_parse_limit, default=None, help="requests per minute, e.g. 600/min")
    keys_sub.add_parser("list", help="list keys (never their secrets)")
    revoke = keys_sub.add_parser("revoke", help="revoke a key by id")
    revoke.add_argument("key_id", help="the 8-character id shown by 'keys list'")
    backtest = sub.add_parser(
        "backtest",
        help="score models against realized liquidations from CSV files, one table per coin",
        description="Run a model over every candle row and score, per liquidation bar and side, the USD it says is "
        "consumed against the realized USD (Spearman, ratio of totals), next to two excursion x open interest baselines "
        "(one excursion per liquidation bar; every candle's own excursion summed) and its margin over the stronger.",
    )
    backtest.add_argument("--candles", action="append", help="CSV: timestamp, price_open/high/low/close, oi_close (repeat with --liquidations for more coins)")
    backtest.add_argument("--liquidations", action="append", help="CSV: timestamp and liquidation_long_usd/liquidation_short_usd or longUsd/shortUsd, one per --candles, in the same order")
    backtest.add_argument("--data", default=None, help="a folder of candle and liquidation files instead, paired by the coin in their names")
    backtest.add_argument("--model", required=True, help="model1 .. model4, several comma-separated, or all")
    backtest.add_argument("--from", dest="from_", default=None, help="first liquidation bar scored (ISO time, UTC by default); earlier rows only warm up the model")
    backtest.add_argument("--symbol", default=None, help="market whose shipped Binance margin table model4 uses (default: the coin in the file names, e.g. ETH -> ETHUSDT)")
    backtest.add_argument("--json", action="store_true", help="print one JSON object per coin and model")
    calibrate = sub.add_parser(
        "calibrate",
        help="fit model3 and model4 on the recorded real data before their cutoffs; score every model on every data set; store both",
    )
    calibrate.add_argument("--data-dir", default=None, help="folder of the real data sets (default ../shared/data/real)")
    calibrate.add_argument("--until", default=None, help="model3's calibration cutoff (default 2026-04-01T00:00:00Z)")
    calibrate.add_argument("--dry-run", action="store_true", help="print the fits and the scores, write nothing")
    brackets = sub.add_parser(
        "brackets",
        help="refresh the shipped Binance bracket tables from a saved leverageBracket (or web brackets) response",
    )
    brackets.add_argument("--from", dest="from_", required=True, help="saved response of GET /fapi/v1/leverageBracket (signed) or of the keyless web brackets endpoint")
    brackets.add_argument("--symbols", default=None, help="more symbols to ship besides those already shipped, e.g. XRPUSDT,DOGEUSDT")
    brackets.add_argument("--out", default=None, help="file to write (default engine/models/binance_brackets.json)")

    args = parser.parse_args(argv)
    if args.command == "brackets":
        from service.collect.venues.binance_refresh import run_brackets_command

        raise SystemExit(run_brackets_command(args))
    if args.command == "backtest":
        # Offline jobs on files: no settings, no store.
        from service.compute.scoring import run_backtest_command

        raise SystemExit(run_backtest_command(args))
    if args.command == "calibrate":
        from service.compute.calibration import run_calibrate_command

        raise SystemExit(run_calibrate_command(args))
    defaults = DEMO_DEFAULTS if args.command == "demo" else {"mode": args.command if args.command in ("serve", "api", "collect", "worker") else "serve"}
    overrides: dict[str, object] = {}
    if args.command in ("demo", "serve", "api", "collect", "worker"):
        overrides = {"host": args.host, "data_dir": args.data_dir}
        overrides["metrics_port" if args.command in ("collect", "worker") else "port"] = args.port
    if args.command == "demo":
        overrides |= demo_overrides(args.markets, args.venues)
    if args.command == "backfill":
        overrides = {"data_dir": args.data_dir}
    if getattr(args, "fake_exchange", False) and args.data_dir is None:
        # Fake market data never mixes with a real one in the embedded store.
        overrides["data_dir"] = ".liqmap/fake"
    if args.command in ("demo", "serve", "api", "collect", "worker"):
        return_freed_memory()
    try:
        settings = Settings.from_env(defaults=defaults, **overrides)
    except ValueError as exc:
        parser.exit(2, f"liqmap: {exc}\n")
    _configure_logging(settings.log_level)

    if args.command == "migrate":
        _migrate(settings)
    elif args.command == "keys":
        raise SystemExit(_keys(settings, args))
    elif args.command == "backfill":
        raise SystemExit(_backfill(settings, args))
    elif args.command == "fake-exchange":
        from service.fakeexchange.server import SCENARIOS, listing_options, serve_forever

        if args.scenario not in SCENARIOS:
            parser.exit(2, f"liqmap: unknown scenario {args.scenario!r}; available: {', '.join(SCENARIOS)}\n")
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve_forever(args.scenario, args.seed, **listing_options(settings)))  # type: ignore[arg-type]
    elif args.command == "api":
        run_api(settings)
    elif args.command == "collect":
        run_collect(settings, args.parent_pid)
    elif args.command == "worker":
        run_worker(settings, args.parent_pid)
    else:
        run_all(settings, fake_exchange=getattr(args, "fake_exchange", False))


if __name__ == "__main__":
    main(sys.argv[1:])
