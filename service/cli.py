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

DEMO_DEFAULTS = {"mode": "demo", "sources": ("synthetic",), "collect_interval_s": 5.0, "backfill_days": 3.0, "data_dir": ".liqmap/demo"}


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
    log.info("liqmap %s on http://%s:%d (API docs at /docs)", settings.mode, settings.host, settings.port)
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


def _parse_limit(text: str) -> int:
    """``600`` or ``600/min`` → 600."""
    number = text.removesuffix("/min").removesuffix("/m")
    if not number.isdigit() or int(number) < 1:
        raise argparse.ArgumentTypeError(f"limit must look like 600 or 600/min, got {text!r}")
    return int(number)


def _keys(settings: Settings, args: argparse.Namespace) -> int:
    from service.access import Access
    from service.connection import open_redis

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
    keys_parser = sub.add_parser("keys", help="manage API keys")
    keys_sub = keys_parser.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="create a key; it is printed once")
    create.add_argument("--name", required=True, help="who or what the key is for")
    create.add_argument("--limit", type=_parse_limit, default=None, help="requests per minute, e.g. 600/min")
    keys_sub.add_parser("list", help="list keys (never their secrets)")
    revoke = keys_sub.add_parser("revoke", help="revoke a key by id")
    revoke.add_argument("key_id", help="the 8-character id shown by 'keys list'")

    args = parser.parse_args(argv)
    defaults = DEMO_DEFAULTS if args.command == "demo" else {"mode": args.command if args.command in ("serve", "api") else "serve"}
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
    elif args.command == "keys":
        raise SystemExit(_keys(settings, args))
    else:
        _serve(settings, with_sources=args.command in ("demo", "serve"))


if __name__ == "__main__":
    main(sys.argv[1:])
