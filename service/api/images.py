"""PNG heatmaps: the newest frame or one by id, rendered server-side and cached per frame and size."""

from __future__ import annotations

import asyncio
import gzip
from collections import OrderedDict
from typing import Annotated

import msgspec
from litestar import Controller, Request, Response, get
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, QueryParameter
from litestar.status_codes import HTTP_304_NOT_MODIFIED

from service.api import examples
from service.api.dependencies import FILTERED_FRAME_QUERY, FrameQuery
from service.compute.ondemand import FrameGone
from service.api.errors import FrameNoLongerAvailable, NotFound, shown
from service.api.newest import newest_frame, raw_header
from service.api.semantics import etag_matches
from service.api.params import check_int_range, check_market
from service.wire.codec import FIELD_V1_MSGPACK
from service.wire.png import DEFAULT_HEIGHT, DEFAULT_WIDTH, MAX_HEIGHT, MAX_WIDTH, MIN_HEIGHT, MIN_WIDTH, render_png
from service.wire.schemas import FrameOut
from service.store.reader import StoreReader

PNG = "image/png"

WidthParam = Annotated[
    int | None,
    QueryParameter(description=f"Image width in pixels, {MIN_WIDTH}..{MAX_WIDTH} (default {DEFAULT_WIDTH})", schema_extra={"minimum": MIN_WIDTH, "maximum": MAX_WIDTH}),
]
HeightParam = Annotated[
    int | None,
    QueryParameter(description=f"Image height in pixels, {MIN_HEIGHT}..{MAX_HEIGHT} (default {DEFAULT_HEIGHT})", schema_extra={"minimum": MIN_HEIGHT, "maximum": MAX_HEIGHT}),
]

PNG_RESPONSES = {
    200: ResponseSpec(
        generate_examples=False,
        data_container=bytes,
        media_type=PNG,
        description=(
            "The heatmap as a PNG: colour = long + short USD per cell on viridis, price up, time right, candles, "
            "clusters in the right gutter, a legend in absolute USD. A `liqmap` text chunk (JSON) gives the plot's "
            "pixel rectangle and its time and price extents."
        ),
    ),
    **examples.ERRORS,
}

_frame_decoder = msgspec.msgpack.Decoder(FrameOut)

RenderKey = tuple[str, str, str, int, int]  # exchange, symbol, frame id (carries the leverage filter), width, height


class RenderCache:
    """Rendered PNGs by market, frame id and size, least recently used dropped first.

    Frames never change once stored, so an entry is valid as long as it is kept.
    Concurrent requests for one key wait for a single render.
    """

    def __init__(self, max_entries: int = 64) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[RenderKey, bytes] = OrderedDict()
        self._pending: dict[RenderKey, asyncio.Task[bytes]] = {}

    def get(self, key: RenderKey) -> bytes | None:
        png = self._entries.get(key)
        if png is not None:
            self._entries.move_to_end(key)
        return png

    async def render(self, key: RenderKey, stored_msgpack: bytes) -> bytes:
        # The render runs as its own task: a client that goes away does not cancel it for the others.
        task = self._pending.get(key)
        if task is None:
            task = asyncio.create_task(asyncio.to_thread(render_stored, stored_msgpack, key[3], key[4]))
            self._pending[key] = task
            task.add_done_callback(lambda done: self._finish(key, done))
        return await asyncio.shield(task)

    def _finish(self, key: RenderKey, task: asyncio.Task[bytes]) -> None:
        del self._pending[key]
        if task.cancelled() or task.exception() is not None:
            return
        self._entries[key] = task.result()
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)


def render_stored(stored_msgpack: bytes, width: int, height: int) -> bytes:
    """A stored (compressed msgpack) frame as a PNG: what a cache miss costs."""
    return render_png(_frame_decoder.decode(gzip.decompress(stored_msgpack)), width, height)


def _size(width: int | None, height: int | None) -> tuple[int, int]:
    return (
        check_int_range("width", width, MIN_WIDTH, MAX_WIDTH, DEFAULT_WIDTH),
        check_int_range("height", height, MIN_HEIGHT, MAX_HEIGHT, DEFAULT_HEIGHT),
    )


async def _png_response(
    request: Request, key: RenderKey, stored: bytes | None, cache_control: str, headers: dict[str, str] | None = None
) -> Response[bytes]:
    """The cached or freshly rendered PNG of ``key``; ``stored`` is the frame's stored msgpack (read only on a miss)."""
    cache: RenderCache = request.app.state.renders
    etag = f'"{key[2]}.{key[3]}x{key[4]}.png"'
    headers = {"ETag": etag, "Cache-Control": cache_control, "X-Frame-Id": key[2], **(headers or {})}
    if etag_matches(raw_header(request, b"if-none-match"), etag):
        return Response(content=b"", status_code=HTTP_304_NOT_MODIFIED, headers=headers)
    png = cache.get(key)
    if png is None:
        if stored is None:
            raise NotFound(f"no frame {shown(key[2])} for {key[0]}:{key[1]}; it may be older than the history kept")
        png = await cache.render(key, stored)
        headers["X-Render-Cache"] = "miss"
    else:
        headers["X-Render-Cache"] = "hit"
    return Response(content=png, media_type=PNG, headers=headers)


class HeatmapImageController(Controller):
    path = "/v1/heatmaps/{exchange:str}/{symbol:str}"
    tags = ["heatmaps"]

    @get("/latest.png", operation_id="getLatestHeatmapPng", media_type=PNG, dependencies={"frame_query": FILTERED_FRAME_QUERY}, responses=PNG_RESPONSES)
    async def latest_png(
        self, request: Request, frame_query: NamedDependency[FrameQuery], width: WidthParam = None, height: HeightParam = None
    ) -> Response[bytes]:
        """The newest frame of a market as a PNG heatmap.

        ``ETag`` names the frame and size: send it back in ``If-None-Match`` for a
        ``304`` until a newer frame exists. ``X-Frame-Id`` says which frame is drawn.
        """
        size = _size(width, height)
        frame_id, stored = await newest_frame(request, frame_query, FIELD_V1_MSGPACK)
        return await _png_response(request, (frame_query.exchange, frame_query.symbol, frame_id, *size), stored, "no-cache")

    @get("/frames/{frame_id:str}/heatmap.png", operation_id="getHeatmapFramePng", media_type=PNG, responses=PNG_RESPONSES)
    async def frame_png(
        self,
        request: Request,
        store: NamedDependency[StoreReader],
        exchange: FromPath[str],
        symbol: FromPath[str],
        frame_id: FromPath[str],
        width: WidthParam = None,
        height: HeightParam = None,
    ) -> Response[bytes]:
        """One stored frame (ids from /latest, /frames and the stream) as a PNG heatmap; frames never change."""
        size = _size(width, height)
        exchange, symbol = await check_market(store, exchange, symbol)
        key = (exchange, symbol, frame_id, *size)
        stored = None
        if request.app.state.renders.get(key) is None:
            try:
                stored = await request.app.state.ondemand.field(exchange, symbol, frame_id, FIELD_V1_MSGPACK)
            except FrameGone as exc:
                raise FrameNoLongerAvailable(exchange, symbol, frame_id, exc) from None
        return await _png_response(request, key, stored, "public, max-age=86400, immutable")
