"""What each long-running command starts, wired together in one place.

``api`` serves; ``serve`` and ``demo`` serve and collect in one process (collection runs in
the API's lifespan, on the same store client). The CLI parses arguments and calls these.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager

import msgspec
from redis.asyncio import Redis

from service.collect.source import MarketSource, StreamingSource
from service.settings import Settings

log = logging.getLogger("liqmap")


def build_sources(settings: Settings) -> list[MarketSource]:
    from service.collect.synthetic import SyntheticMarket
    from service.collect.venues.registry import COLLECTORS

    sources: list[MarketSource] = []
    for name in settings.sources:
        if name == "synthetic":
            sources.append(SyntheticMarket(seed=settings.synthetic_seed))
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
    from service.fakeexchange.server import fake_exchange_in_thread

    with fake_exchange_in_thread(symbols=list(settings.markets)) as urls:
        log.info("fake exchange on loopback: %s", ", ".join(f"{k}={v}" for k, v in sorted(urls.items()) if k.endswith("rest_url")))
        yield msgspec.structs.replace(settings, **urls)


def collection(settings: Settings, sources: list[MarketSource]) -> Callable[[Redis], AbstractAsyncContextManager[None]]:
    """Collection beside the API: live streams open, one scheduled round every ``collect_interval_s``."""

    @contextlib.asynccontextmanager
    async def run(redis: Redis) -> AsyncIterator[None]:
        from service.collect.round import Collection
        from service.collect.scheduler import create_scheduler
        from service.store.writer import Store

        store = Store(redis)
        streaming = [source for source in sources if isinstance(source, StreamingSource)]
        for source in streaming:
            # Live collectors open their liquidation streams and write events as they arrive.
            await source.start(store.add_liquidations)
        scheduler = create_scheduler(Collection.create(store, settings, sources), settings.collect_interval_s, settings.job_timeout_s)
        scheduler.start()
        try:
            yield
        finally:
            scheduler.shutdown(wait=False)
            for source in streaming:
                await source.close()

    return run


def run_server(settings: Settings, *, collect: bool, fake_exchange: bool = False) -> None:
    """``api`` (``collect`` false), ``serve`` or ``demo``: the API on ``settings.host:port`` until Ctrl-C."""
    import uvicorn

    from service.api.app import create_app

    with fake_exchange_if(settings, fake_exchange) as settings:
        background = [collection(settings, build_sources(settings))] if collect else []
        app = create_app(settings, background)
        log.info("liqmap %s on http://%s:%d (API docs at /docs)", settings.mode, settings.host, settings.port)
        config = uvicorn.Config(app, host=settings.host, port=settings.port, log_level=settings.log_level, lifespan="on")
        try:
            uvicorn.Server(config).run()
        except KeyboardInterrupt:
            # uvicorn re-raises Ctrl-C after its own clean shutdown; nothing is left to do.
            pass
