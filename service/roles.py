"""What each long-running command starts, wired together in one place.

- ``api``: the HTTP API (stateless; any number of replicas).
- ``collect``: the collectors and their scheduler; new bars queue recompute jobs.
- ``worker``: the engine, taking recompute jobs from the queue (any number).
- ``serve`` / ``demo``: all of them from one command: the API in this process, the collector
  and ``settings.workers`` workers as child processes (engine work never shares the API's
  process), an embedded store when ``REDIS_URL`` is unset. Children that die are restarted;
  children whose ``serve`` died (SIGKILL) stop by themselves.

The CLI parses arguments and calls these.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any

import msgspec
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from service.collect.source import MarketSource, StreamingSource
from service.settings import Settings

if TYPE_CHECKING:
    import uvicorn

log = logging.getLogger("liqmap")


def build_sources(settings: Settings) -> list[MarketSource]:
    from service.collect.synthetic import SyntheticMarket, demo_symbols
    from service.collect.venues.registry import COLLECTORS

    sources: list[MarketSource] = []
    if "synthetic" in settings.sources and (clash := set(settings.synthetic_venues) & set(settings.sources)):
        raise SystemExit(f"LIQMAP_SOURCES collects {', '.join(sorted(clash))} live and as a synthetic venue; drop one, or set LIQMAP_SYNTHETIC_VENUES")
    for name in settings.sources:
        if name == "synthetic":
            # Two days of generated rows cached per market: polls only need today's.
            symbols = demo_symbols(settings.synthetic_markets, settings.synthetic_seed)
            if not settings.synthetic_venues:
                sources.append(SyntheticMarket(seed=settings.synthetic_seed, symbols=symbols, cache_days=2))
            for venue in settings.synthetic_venues:
                sources.append(SyntheticMarket(seed=settings.synthetic_seed, symbols=symbols, exchange=venue, venue=venue, cache_days=2))
        elif name in COLLECTORS:
            sources.append(COLLECTORS[name](settings))
        else:
            raise SystemExit(f"unknown source {name!r} in LIQMAP_SOURCES; available: synthetic, {', '.join(COLLECTORS)}")
    return sources


@contextlib.contextmanager
def fake_exchange_if(settings: Settings, enabled: bool) -> Iterator[Settings]:
    """With ``enabled``, run the fake exchange in this process and point the collectors at it."""
    if not enabled:
        yield settings
        return
    from service.fakeexchange.server import fake_exchange_in_thread, listing_options

    with fake_exchange_in_thread(**listing_options(settings)) as urls:
        log.info("fake exchange on loopback: %s", ", ".join(f"{k}={v}" for k, v in sorted(urls.items()) if k.endswith("rest_url")))
        yield msgspec.structs.replace(settings, **urls)


def api_server_config(app: Any, settings: Settings, **overrides: Any) -> uvicorn.Config:
    """How the API is served. uvicorn trusts no forwarded header (by default it takes
    ``X-Forwarded-For`` from 127.0.0.1 as the client's address): the API reads it itself,
    from the proxies of ``LIQMAP_TRUSTED_PROXIES`` alone.
    """
    import uvicorn

    from service.api.semantics import MAX_REQUEST_HEAD_BYTES

    options: dict[str, Any] = {"host": settings.host, "port": settings.port, "log_level": settings.log_level, "lifespan": "on"}
    options |= {"proxy_headers": False, "forwarded_allow_ips": "", "server_header": False}
    # Requests whose head is over the API's limits reach it, to be answered 414 / 431 in its error shape.
    options["h11_max_incomplete_event_size"] = MAX_REQUEST_HEAD_BYTES
    return uvicorn.Config(app, **(options | overrides))


def run_api(settings: Settings) -> None:
    """The API on ``settings.host:port`` until Ctrl-C or SIGTERM."""
    import uvicorn

    from service.api.app import create_app

    app = create_app(settings, warm_engine=True)
    log.info("liqmap %s on http://%s:%d (API docs at /docs)", settings.mode, settings.host, settings.port)
    # uvicorn re-raises the signal that stopped it once it has shut down cleanly. SIGTERM's
    # default action would end the process there and then, before ``serve`` stops its roles and
    # its embedded store: it ends it as an exit instead, through every ``finally``.
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        uvicorn.Server(api_server_config(app, settings)).run()
    except KeyboardInterrupt:
        # uvicorn re-raises Ctrl-C after its own clean shutdown; nothing is left to do.
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(0)


# --- roles without HTTP of their own: a loop, /health and /metrics --------------------------


@contextlib.asynccontextmanager
async def _health_server(settings: Settings, role: str, alive: Callable[[], bool]) -> AsyncIterator[None]:
    """``/health`` (200 while ``alive()``, else 503) and ``/metrics`` on ``settings.metrics_port``, if set."""
    if settings.metrics_port is None:
        yield
        return
    from aiohttp import web
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    async def health(_: web.Request) -> web.Response:
        ok = alive()
        return web.json_response({"status": "ok" if ok else "stalled", "role": role, "pid": os.getpid()}, status=200 if ok else 503)

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.add_routes([web.get("/health", health), web.get("/metrics", metrics)])
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.metrics_port)
    await site.start()
    log.info("%s: /health and /metrics on http://%s:%d", role, settings.host, settings.metrics_port)
    try:
        yield
    finally:
        await runner.cleanup()


# A role asked to stop that has not within this long exits anyway (a task that ignores its
# cancellation would otherwise keep the process alive for good).
STOP_DEADLINE_S = 15.0


async def _stop_when_orphaned(parent_pid: int, stop: asyncio.Event) -> None:
    """A role that ``serve`` started stops once ``serve`` is gone (killed before it could stop it)."""
    while not stop.is_set():
        if os.getppid() != parent_pid:
            log.warning("the process that started this one (pid %d) is gone; stopping", parent_pid)
            stop.set()
            return
        await asyncio.sleep(0.5)


def _exit_after(seconds: float) -> None:
    """End this process in ``seconds`` unless it has ended by then."""

    def exit_now() -> None:
        log.error("still stopping after %.0f s; exiting", seconds)
        os._exit(1)

    timer = threading.Timer(seconds, exit_now)
    timer.daemon = True
    timer.start()


def _run_until_signalled(main: Callable[[asyncio.Event], Awaitable[None]], parent_pid: int | None = None) -> None:
    """Run ``main(stop)`` until SIGINT or SIGTERM sets ``stop`` (or, with ``parent_pid``, that process is
    gone); once ``stop`` is set the process ends within ``STOP_DEADLINE_S``."""

    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        tasks = [asyncio.create_task(main(stop))]
        if parent_pid is not None:
            tasks.append(asyncio.create_task(_stop_when_orphaned(parent_pid, stop)))
        stopped = asyncio.create_task(stop.wait())
        await asyncio.wait([tasks[0], stopped], return_when=asyncio.FIRST_COMPLETED)
        if stop.is_set():
            _exit_after(STOP_DEADLINE_S)
        for task in tasks[1:] + [stopped]:
            task.cancel()
        await tasks[0]

    asyncio.run(runner())


def run_worker(settings: Settings, parent_pid: int | None = None) -> None:
    """Take recompute jobs until stopped."""
    import socket

    from service.compute.pool import lower_priority
    from service.compute.worker import Worker
    from service.store.client import open_redis
    from service.store.migrate import migrate
    from service.store.writer import Store

    consumer = f"{socket.gethostname()}-{os.getpid()}"
    lower_priority(settings.engine_nice)

    async def main(stop: asyncio.Event) -> None:
        async with open_redis(settings) as redis:
            await migrate(redis)
            worker = Worker(Store(redis), settings, consumer)
            alive = lambda: time.monotonic() - worker.last_tick < settings.job_timeout_s + 10  # noqa: E731
            async with _health_server(settings, "worker", alive):
                log.info("worker %s taking jobs", consumer)
                task = asyncio.create_task(worker.run(stop))
                await stop.wait()
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    _run_until_signalled(main, parent_pid)


def run_collect(settings: Settings, parent_pid: int | None = None) -> None:
    """Collect the markets of the shards this replica holds until stopped; new bars queue recompute jobs."""
    import socket

    from service.clock import now_ms
    from service.collect.round import Collection
    from service.collect.scheduler import create_scheduler
    from service.collect.venues.ws import cancel
    from service.metrics import LEASES_TAKEN, SHARDS_HELD
    from service.store.client import open_redis
    from service.store.leases import Leases
    from service.store.migrate import migrate
    from service.store.outage import STORE
    from service.store.writer import Store

    owner = f"{socket.gethostname()}-{os.getpid()}"

    async def main(stop: asyncio.Event) -> None:
        sources = build_sources(settings)
        async with open_redis(settings) as redis:
            await migrate(redis)
            store = Store(redis)
            leases = Leases(redis, owner, shards=settings.collect_shards, ttl_ms=int(settings.lease_ttl_s * 1000))
            leases_known = asyncio.Event()  # cleared while the store is away

            async def keep_leases() -> None:
                said: set[int] = set()  # the shards last logged (an outage alone changes nothing to say)
                while True:
                    try:
                        before = leases.held
                        held = await leases.heartbeat(now_ms())
                        LEASES_TAKEN.inc(len(held - before))
                        SHARDS_HELD.set(len(held))
                        if held != said:
                            log.info("collect %s holds %d of %d shards", owner, len(held), leases.shards)
                            said = held
                        leases_known.set()
                        STORE.up()
                    except RedisError as exc:
                        leases.held = set()  # unknown while the store is away: collect nothing
                        leases_known.clear()
                        STORE.down(exc, "renewing collect leases")
                    await asyncio.sleep(settings.lease_ttl_s / 3)

            async def sink(exchange: str, symbol: str, rows: Any) -> int:
                # Streams carry every market of a venue: keep this replica's. While the store is
                # away nobody knows whose a market is: the events wait in the collector's buffer.
                if not leases_known.is_set():
                    raise RedisConnectionError("collect leases unknown while the store is unreachable")
                return await store.add_liquidations(exchange, symbol, rows) if leases.owns(exchange, symbol) else 0

            await leases.heartbeat(now_ms())
            leases_known.set()
            heartbeat = asyncio.create_task(keep_leases())
            streaming = [source for source in sources if isinstance(source, StreamingSource)]
            for source in streaming:
                # Live collectors open their liquidation streams and write events as they arrive.
                await source.start(sink)
            collection = Collection.queued(store, settings, sources, leases=leases)
            scheduler = create_scheduler(collection, settings.collect_interval_s, settings.job_timeout_s)
            scheduler.start()
            alive = lambda: scheduler.running and not heartbeat.done()  # noqa: E731
            try:
                async with _health_server(settings, "collect", alive):
                    await stop.wait()
            finally:
                scheduler.shutdown(wait=False)
                await cancel(heartbeat)
                for source in streaming:
                    await source.close()
                with contextlib.suppress(RedisError):
                    await leases.release_all()

    _run_until_signalled(main, parent_pid)


# --- serve / demo: every role from one command ------------------------------------------------


class Children:
    """Role processes of ``serve``/``demo``: started with this process's settings, restarted if they die."""

    def __init__(self, settings: Settings, roles: list[str]) -> None:
        self.env = {**{k: v for k, v in os.environ.items() if k != "REDIS_URL" and not k.startswith("LIQMAP_")}, **settings.to_env()}
        self.roles = roles
        self.processes: list[subprocess.Popen[bytes] | None] = [None] * len(roles)
        self._stopping = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="children", daemon=True)

    def _start(self, index: int) -> None:
        command = [sys.executable, "-m", "service.cli", self.roles[index], "--parent-pid", str(os.getpid())]
        self.processes[index] = subprocess.Popen(command, env=self.env)
        log.info("started %s (pid %d)", self.roles[index], self.processes[index].pid)  # type: ignore[union-attr]

    def start(self) -> None:
        for index in range(len(self.roles)):
            self._start(index)
        self._watcher.start()

    def _watch(self) -> None:
        while not self._stopping.wait(1.0):
            for index, process in enumerate(self.processes):
                if process is not None and process.poll() is not None and not self._stopping.is_set():
                    log.warning("%s (pid %d) exited with %s; starting it again", self.roles[index], process.pid, process.returncode)
                    self._start(index)

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stopping.set()
        for process in self.processes:
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for process in self.processes:
            if process is None:
                continue
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def run_all(settings: Settings, *, fake_exchange: bool = False) -> None:
    """``serve`` / ``demo``: the API here, the collector and the workers as child processes."""
    from service.store.client import EmbeddedValkey

    embedded = None
    with fake_exchange_if(settings, fake_exchange) as settings:
        if settings.redis_url is None:
            embedded = EmbeddedValkey(settings.data_dir / "valkey")
            embedded.start()
            settings = msgspec.structs.replace(settings, redis_url=embedded.url)
        children = Children(msgspec.structs.replace(settings, metrics_port=None), ["collect", *["worker"] * settings.workers])
        try:
            children.start()
            run_api(settings)
        finally:
            children.stop()
            if embedded is not None:
                embedded.stop()
