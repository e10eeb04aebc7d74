"""Serving stored frames: an in-process cache of the newest ones, and gzip-aware responses."""

from __future__ import annotations

import asyncio
import gzip
import logging
import time
from collections.abc import Awaitable, Callable

import msgspec
from litestar import Request
from litestar.response.base import ASGIResponse
from redis.exceptions import RedisError

from service.store import keys
from service.store.outage import STORE
from service.api.dependencies import FrameQuery
from service.api.errors import FrameNotReady, InputsNotReady
from service.api.params import check_market
from service.wire.codec import COMPRESSED_FIELDS
from service.wire.schemas import FrameSummary
from service.compute.ondemand import FrameService
from service.store.reader import StoreReader

log = logging.getLogger(__name__)

_summary = msgspec.json.Decoder(FrameSummary)

CacheKey = tuple[str, str, str, str, str]  # exchange, symbol, model, range, field


def raw_header(request: Request, name: bytes) -> str:
    """One request header (``name`` in lower case), read straight from the ASGI scope; "" if absent.

    Cheaper than ``request.headers``, which decodes every header: this is the hot path.
    """
    for key, value in request.scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return ""


def accepts_gzip(request: Request) -> bool:
    return "gzip" in raw_header(request, b"accept-encoding")


VARY = ("vary", "Accept, Accept-Encoding")
GZIP = ("content-encoding", "gzip")


def stored_response(
    request: Request, field: str, stored: bytes, media_type: str, headers: list[tuple[str, str]] | None = None, status_code: int = 200
) -> ASGIResponse:
    """A frame field as stored, sent compressed to clients that accept gzip and plain to the rest."""
    encoded = list(headers or [])
    if field in COMPRESSED_FIELDS:
        encoded.append(VARY)
        if accepts_gzip(request):
            encoded.append(GZIP)
        else:
            stored = gzip.decompress(stored)
    return ASGIResponse(body=stored, media_type=media_type, headers=encoded, status_code=status_code)


class LatestFrames:
    """The newest frames' stored bytes, kept in memory and dropped as soon as a newer frame is announced.

    Every API replica keeps its own copy; announcements come from the store's pub/sub.
    Entries also expire after ``max_age_s`` so a missed announcement costs at most that.
    While the subscription is down nothing is cached.
    """

    def __init__(self, store: StoreReader, frames: FrameService, max_age_s: float = 5.0) -> None:
        self.store = store
        self.frames = frames
        self.max_age_s = max_age_s
        self._entries: dict[CacheKey, tuple[float, str, bytes]] = {}
        self._listening = False
        self._stopping = False
        # Bumped by every announcement: a read that overlapped one is not cached (it may be older).
        self._epoch = 0

    async def get(self, exchange: str, symbol: str, model: str, range_name: str, field: str) -> tuple[str, bytes] | None:
        key = (exchange, symbol, model, range_name, field)
        entry = self._entries.get(key)
        now = time.monotonic()
        if entry is not None and now - entry[0] < self.max_age_s:
            return entry[1], entry[2]
        epoch = self._epoch
        frame_id = await self.frames.newest_id(exchange, symbol, model, range_name)
        body = None if frame_id is None else await self.frames.field(exchange, symbol, frame_id, field)
        latest = None if frame_id is None or body is None else (frame_id, body)
        if latest is not None and self._listening and epoch == self._epoch:
            self._entries[key] = (now, latest[0], latest[1])
        return latest

    async def require(self, query: FrameQuery, field: str, exists: Callable[[], Awaitable[object]] | None = None) -> tuple[str, bytes]:
        """As :meth:`get`, but :class:`FrameNotReady` (503) without a frame; ``exists``, awaited only then,
        raises for a market we do not have (a 404 rather than a promise of a frame)."""
        latest = await self.get(query.exchange, query.symbol, query.model, query.range_name, field)
        if latest is None:
            if exists is not None:
                await exists()
            raise FrameNotReady(query.exchange, query.symbol, query.model, query.range_name)
        return latest

    def _forget(self, exchange: str, symbol: str, model: str, range_name: str) -> None:
        self._epoch += 1
        for key in [k for k in self._entries if k[:4] == (exchange, symbol, model, range_name)]:
            del self._entries[key]

    def stop(self) -> None:
        """Make :meth:`listen` return within a second: the pub/sub client can swallow a
        cancellation that arrives while it reads, so the listener is not left to cancellation alone."""
        self._stopping = True

    async def listen(self) -> None:
        """Follow frame announcements until stopped (or cancelled); resubscribe after store outages."""
        while not self._stopping:
            pubsub = self.store.frame_announcements()
            try:
                await pubsub.psubscribe(keys.frame_channels(self.store.db))
                self._listening = True
                while not self._stopping:
                    if STORE.is_down:
                        # This loop retries every second: it is how the API sees the store return.
                        # A subscription sent is no proof (it waits for no reply); an answer is.
                        await self.store.redis.ping()
                        STORE.up()
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message is None:
                        continue
                    try:
                        summary = _summary.decode(message["data"])
                    except msgspec.DecodeError:
                        log.warning("ignoring a malformed frame announcement on %s", message.get("channel"))
                        continue
                    self._forget(summary.exchange, summary.symbol, summary.model, summary.range)
                    self.frames.superseded(summary.exchange, summary.symbol, summary.model, summary.range, summary.id)
            except RedisError as exc:
                # Not caching until resubscribed; said once per outage.
                STORE.down(exc, "following frame announcements")
                await asyncio.sleep(1.0)
            finally:
                self._listening = False
                self._entries.clear()
                try:
                    await pubsub.aclose()
                except RedisError:
                    pass


async def newest_frame(request: Request, query: FrameQuery, field: str) -> tuple[str, bytes]:
    """``(frame_id, stored bytes)`` of a market's newest frame, leverage-filtered on demand.

    404 for a market we do not have, 503 while its first frame is computed.
    """
    state = request.app.state
    frames: LatestFrames = state.frames
    latest = await frames.require(query, field, lambda: check_market(state.store, query.exchange, query.symbol))
    if query.leverage is None:
        return latest
    service: FrameService = state.ondemand
    filtered_id = await service.newest_id(query.exchange, query.symbol, query.model, query.range_name, query.leverage)
    body = None if filtered_id is None else await service.field(query.exchange, query.symbol, filtered_id, field)
    if filtered_id is None or body is None:
        raise InputsNotReady(query.exchange, query.symbol)
    return filtered_id, body
