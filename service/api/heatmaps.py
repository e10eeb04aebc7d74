"""Native v1 heatmap routes: latest, levels, history, one frame, server-sent events."""

from __future__ import annotations

import base64
import gzip
from collections.abc import AsyncIterator
from typing import Annotated, Literal

import msgspec
from litestar import Controller, Request, get
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter
from litestar.response import ServerSentEvent, ServerSentEventMessage
from litestar.response.base import ASGIResponse
from litestar.status_codes import HTTP_304_NOT_MODIFIED

from service.api import examples
from service.api.dependencies import FILTERED_FRAME_QUERY, FRAME_QUERY, MARKET, MARKET_OF_QUERY, FrameQuery, Market, filtered_frame_query
from service.api.errors import BadRequest, FrameNoLongerAvailable, FrameNotReady, NotFound, Unavailable, shown
from service.api.newest import VARY, newest_frame, raw_header, stored_response
from service.api.semantics import etag_matches
from service.api.params import LeverageParam, ModelParam, RangeParam, check_time_span, epoch_ms_param
from service.compute.ondemand import FrameGone, FrameId, FrameService
from service.wire.codec import FIELD_V1_JSON, FIELD_V1_MSGPACK
from service.wire.schemas import FramePage, FrameSummary, LevelsOut
from service.store.reader import StoreReader

MSGPACK = "application/msgpack"
Format = Literal["json", "msgpack"]

FormatParam = Annotated[
    Format | None,
    QueryParameter(name="format", description="json (default) or msgpack; an Accept header of application/msgpack does the same"),
]

_summary_decoder = msgspec.json.Decoder(FrameSummary)
_json = msgspec.json.Encoder()

def _wants_msgpack(request: Request, fmt: Format | None) -> bool:
    if fmt is not None:
        return fmt == "msgpack"
    return "msgpack" in raw_header(request, b"accept")


def _etag(frame_id: str, msgpack: bool) -> str:
    return f'"{frame_id}{".mp" if msgpack else ""}"'


def _frame_response(request: Request, frame_id: str, stored: bytes, msgpack: bool) -> ASGIResponse:
    etag = _etag(frame_id, msgpack)
    headers = [("etag", etag), ("cache-control", "no-cache")]
    if etag_matches(raw_header(request, b"if-none-match"), etag):
        return ASGIResponse(body=b"", status_code=HTTP_304_NOT_MODIFIED, headers=[*headers, VARY])
    field = FIELD_V1_MSGPACK if msgpack else FIELD_V1_JSON
    return stored_response(request, field, stored, MSGPACK if msgpack else "application/json", headers)


def _encode_cursor(data_until: int, frame_id: str) -> str:
    return base64.urlsafe_b64encode(f"{data_until}|{frame_id}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[int, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        score, frame_id = raw.split("|", 1)
        return int(score), frame_id
    except ValueError:
        raise BadRequest("cursor is not one this API issued; pass next_cursor from the previous page as is") from None


class HeatmapController(Controller):
    path = "/v1/heatmaps/{exchange:str}/{symbol:str}"
    tags = ["heatmaps"]
    dependencies = {"frame_query": FRAME_QUERY, "market": MARKET_OF_QUERY}

    @get(
        "/latest",
        operation_id="getLatestHeatmap",
        responses=examples.LATEST,
    )
    async def latest(
        self,
        request: Request,
        exchange: FromPath[str],
        symbol: FromPath[str],
        model: ModelParam = "model1",
        range_name: RangeParam = "24h",
        fmt: FormatParam = None,
        leverage: LeverageParam = None,
    ) -> ASGIResponse:
        """The newest heatmap frame of a market for one model and range.

        Send ``If-None-Match`` with the ``ETag`` of the frame you hold: the answer
        is ``304 Not Modified`` until a newer frame exists.
        """
        # The hot path: checked here, not by a dependency (see service.api.dependencies).
        query = filtered_frame_query(request.app.state.settings, exchange, symbol, model, range_name, leverage)
        msgpack = _wants_msgpack(request, fmt)
        frame_id, body = await newest_frame(request, query, FIELD_V1_MSGPACK if msgpack else FIELD_V1_JSON)
        return _frame_response(request, frame_id, body, msgpack)

    @get(
        "/levels",
        operation_id="getLiquidationLevels",
        dependencies={"frame_query": FILTERED_FRAME_QUERY},
        responses=examples.LEVELS,
    )
    async def levels(self, request: Request, frame_query: NamedDependency[FrameQuery], market: NamedDependency[Market]) -> LevelsOut:
        """Price ranges with intensity metrics, from the newest frame's data.

        `clusters`: bands of high intensity above price (shorts) and below it (longs), each with
        price low/high, USD, share of its side and distance from price. `map`: per tier, the
        outstanding USD per price row and cumulative longs below / shorts above price.
        `max_pain`: the largest level on each side.
        """
        service: FrameService = request.app.state.ondemand
        try:
            levels = await service.levels(market.exchange, market.symbol, frame_query.model, frame_query.range_name, frame_query.leverage)
        except FrameGone as exc:
            raise Unavailable(f"{exc}; the next frame is being computed") from None
        if levels is None:
            raise FrameNotReady(market.exchange, market.symbol, frame_query.model, frame_query.range_name)
        return levels

    @get(
        "/frames",
        operation_id="listHeatmapFrames",
        responses=examples.FRAMES,
    )
    async def frames(
        self,
        store: NamedDependency[StoreReader],
        frame_query: NamedDependency[FrameQuery],
        market: NamedDependency[Market],
        model_version: Annotated[str | None, QueryParameter(description="Only frames of this model version, e.g. 1.0.0")] = None,
        from_ms: Annotated[int | None, epoch_ms_param("Oldest data_until to include, epoch ms", name="from")] = None,
        to_ms: Annotated[int | None, epoch_ms_param("Newest data_until to include, epoch ms", name="to")] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=500, description="Frames per page, 1..500")] = 50,
        cursor: Annotated[str | None, QueryParameter(description="next_cursor of the previous page")] = None,
    ) -> FramePage:
        """Stored frames of a market, newest first, by model version and time, cursor-paginated."""
        check_time_span(from_ms, to_ms, ("from", "to"))
        newest, after_id = (to_ms, None)
        if cursor is not None:
            newest, after_id = _decode_cursor(cursor)
        exchange, symbol, model, range_name = market.exchange, market.symbol, frame_query.model, frame_query.range_name
        items: list[FrameSummary] = []
        exhausted = False
        while len(items) < limit and not exhausted:
            batch = max(limit * 2, 64)
            index = await store.frame_index_page(exchange, symbol, model, range_name, newest_ms=newest, oldest_ms=from_ms, count=batch)
            exhausted = len(index) < batch
            if after_id is not None:
                # Entries with the cursor's score sort by id, descending: skip those already sent.
                index = [(fid, score) for fid, score in index if not (score == newest and fid >= after_id)]
            if not index:
                break
            records = await store.records(exchange, symbol, model, range_name, [fid for fid, _ in index])
            for (fid, score), record in zip(index, records):
                newest, after_id = score, fid
                if record is None:
                    continue
                summary = record.summary()
                if model_version is None or summary.model_version == model_version:
                    items.append(summary)
                    if len(items) == limit:
                        break
        # A full page may be followed by an empty one; a short page is the last.
        next_cursor = _encode_cursor(items[-1].data_until, items[-1].id) if len(items) == limit else None
        return FramePage(items=items, next_cursor=next_cursor)

    @get(
        "/frames/{frame_id:str}",
        operation_id="getHeatmapFrame",
        dependencies={"market": MARKET},
        responses=examples.FRAME,
    )
    async def frame(self, request: Request, market: NamedDependency[Market], frame_id: FromPath[str], fmt: FormatParam = None) -> ASGIResponse:
        """One stored frame by id (ids come from /latest, /frames and the stream)."""
        msgpack = _wants_msgpack(request, fmt)
        service: FrameService = request.app.state.ondemand
        try:
            stored = await service.field(market.exchange, market.symbol, frame_id, FIELD_V1_MSGPACK if msgpack else FIELD_V1_JSON)
        except FrameGone as exc:
            raise FrameNoLongerAvailable(market.exchange, market.symbol, frame_id, exc) from None
        if stored is None:
            raise NotFound(f"no frame {shown(frame_id)} for {market.exchange}:{market.symbol}; it may be older than the history kept")
        return _frame_response(request, frame_id, stored, msgpack)

    @get("/stream", operation_id="streamHeatmapFrames", responses=examples.ERRORS)
    async def stream(
        self,
        request: Request,
        store: NamedDependency[StoreReader],
        frame_query: NamedDependency[FrameQuery],
        market: NamedDependency[Market],
        include_frame: Annotated[bool, QueryParameter(name="include_frame", description="Send the whole frame in each event")] = False,
    ) -> ServerSentEvent:
        """Server-sent events: one ``frame`` event per new frame, its id as the event id.

        Reconnect with ``Last-Event-ID`` to receive the frames you missed first.
        """
        exchange, symbol, model, range_name = market.exchange, market.symbol, frame_query.model, frame_query.range_name
        last_event_id = request.headers.get("last-event-id")

        async def events() -> AsyncIterator[ServerSentEventMessage]:
            pubsub = store.frame_announcements()
            await pubsub.subscribe(store.frame_channel(exchange, symbol))
            try:
                # The store's confirmation: "subscribed" then promises that no frame announced after it is missed.
                await pubsub.get_message(timeout=5.0)
                yield ServerSentEventMessage(comment="subscribed", retry=3000, data=None)
                sent: set[str] = set()
                if last_event_id:
                    for frame_id in await store.frames_after(exchange, symbol, model, range_name, last_event_id):
                        message = await _event(request, store, exchange, symbol, frame_id, include_frame)
                        if message is not None:
                            sent.add(frame_id)
                            yield message
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=15.0)
                    if message is None:
                        yield ServerSentEventMessage(comment="keep-alive", data=None)
                        continue
                    summary = _summary_decoder.decode(message["data"])
                    if summary.model != model or summary.range != range_name or summary.id in sent:
                        continue
                    event = await _event(request, store, exchange, symbol, summary.id, include_frame, summary)
                    if event is not None:
                        yield event
            finally:
                await pubsub.aclose()

        return ServerSentEvent(events())


async def _event(
    request: Request, store: StoreReader, exchange: str, symbol: str, frame_id: str, include_frame: bool, summary: FrameSummary | None = None
) -> ServerSentEventMessage | None:
    if include_frame:
        try:
            stored = await request.app.state.ondemand.field(exchange, symbol, frame_id, FIELD_V1_JSON)
        except FrameGone:
            stored = None
        body = None if stored is None else gzip.decompress(stored)
    elif summary is not None:
        body = _json.encode(summary)
    else:
        parsed = FrameId.parse(frame_id)
        record = None if parsed is None else (await store.records(exchange, symbol, parsed.model, parsed.range, [frame_id]))[0]
        body = None if record is None else _json.encode(record.summary())
    if body is None:
        return None
    return ServerSentEventMessage(data=body.decode(), event="frame", id=frame_id)
