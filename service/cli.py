"""The ``liqmap`` command: one CLI, several roles."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from service.settings import Settings
from service.sources.base import MarketSource

log = logging.getLogger("liqmap")

DEMO_DEFAULTS = {"mode": "demo", "collect_interval_s": 5.0, "backfill_days": 3.0, "data_dir": ".liqmap/demo"}


def build_sources(settings: Settings) -> list[MarketSource]:
    from service.sources.synthetic import SyntheticMarket

    sources: list[MarketSource] = []
    for name in settings.sources:
        if name == "synthetic":
            sources.append(SyntheticMarket(seed=settings.synthetic_seed))
        else:
            raise SystemExit(f"unknown source {name!r} in LIQMAP_SOURCES; available: synthetic")
    return sources


def _configure_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # One line per job run every few seconds drowns what matters.
    logging.getLogger("apscheduler").setLevel(max(logging.WARNING, logging.getLogger().level))


def _serve(settings: Settings, with_sources: bool) -> None:
    import uvicorn

    from service.api.app import create_app

    sources = build_sources(settings) if with_sources else None
    app = create_app(settings, sources)
    log.info("liqmap %s on http://%s:%d (API schema at /schema)", settings.mode, settings.host, settings.port)
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_level=settings.log_level, lifespan="on")
    try:
        uvicorn.Server(config).run()
    except KeyboardInterrupt:
        # uvicorn re-raises Ctrl-C after its own clean shutdown; nothing is left to do.
        pass


def _migrate(settings: Settings) -> None:
    from service.connection import open_redis
    from service.migrate import current_version, migrate

    async def run() -> None:
        async with open_redis(settings) as redis:
            applied = await migrate(redis)
            for migration in applied:
                print(f"applied {migration.version:04d} {migration.name}: {migration.description}")
            print(f"schema version {await current_version(redis)}")

    asyncio.run(run())


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="liqmap", description="Liquidation heatmaps for crypto perpetual futures.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("demo", "everything in one process, offline: embedded store, synthetic market, scheduler, API"),
        ("serve", "everything in one process: collectors, scheduler, engine and API"),
        ("api", "the API only (stateless; run as many as you like)"),
    ):
        cmd = sub.add_parser(name, help=text, description=text)
        cmd.add_argument("--host", default=None, help="address to listen on (default 127.0.0.1)")
        cmd.add_argument("--port", type=int, default=None, help="port to listen on (default 8000)")
        cmd.add_argument("--data-dir", default=None, help="folder of the embedded store when REDIS_URL is unset")
    sub.add_parser("migrate", help="bring the store's keyspace to the newest schema version")

    args = parser.parse_args(argv)
    defaults = DEMO_DEFAULTS if args.command == "demo" else {"mode": args.command if args.command != "migrate" else "serve"}
    overrides = {}
    if args.command in ("demo", "serve", "api"):
        overrides = {"host": args.host, "port": args.port, "data_dir": args.data_dir}
    try:
        settings = Settings.from_env(defaults=defaults, **overrides)
    except ValueError as exc:
        parser.exit(2, f"liqmap: {exc}\n")
    _configure_logging(settings.log_level)

    if args.command == "migrate":
        _migrate(settings)
    else:
        _serve(settings, with_sources=args.command in ("demo", "serve"))


if __name__ == "__main__":
    main(sys.argv[1:])
