"""Native v1 heatmap routes: latest, history, one frame, server-sent events."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from typing import Annotated, Literal

import msgspec
from litestar import Controller, Request, get
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, QueryParameter
from litestar.response import ServerSentEvent, ServerSentEventMessage
from litestar.response.base import ASGIResponse
from litestar.status_codes import HTTP_304_NOT_MODIFIED

from service.api import examples
from service.api.newest import VARY, newest_frame, raw_header, stored_response
from service.api.errors import BadRequest, NotFound, Unavailable
from service.api.params import (
    LEVERAGE_ENUM,
    MODEL_ENUM,
    RANGE_ENUM,
    canonical_market,
    check_leverage_filter,
    check_market,
    check_model,
    check_range,
)
from service.wire.codec import FIELD_META, FIELD_V1_JSON, FIELD_V1_MSGPACK, compress, msgpack_to_json
from service.wire.schemas import ErrorOut, FrameOut, FramePage, FrameSummary, LevelsOut
from service.settings import Settings
from service.store.reader import StoreReader

MSGPACK = "application/msgpack"
Format = Literal["json", "msgpack"]

ModelParam = Annotated[str, QueryParameter(description="Model name, e.g. model1 (see /v1/models)", schema_extra=MODEL_ENUM)]
RangeParam = Annotated[str, QueryParameter(name="range", description="12h, 24h, 3d, 7d, 30d, 90d, 180d or 1y", schema_extra=RANGE_ENUM)]
FormatParam = Annotated[
    Format | None,
    QueryParameter(name="format", description="json (default) or msgpack; an Accept header of application/msgpack does the same"),
]

LeverageParam = Annotated[
    str | None,
    QueryParameter(
        description="Leverage filter: all (default), low (≤10x), mid (between), high (≥50x), or a comma-separated list of the model's tiers such as 25,50 (see /v1/models)",
        schema_extra=LEVERAGE_ENUM,
    ),
]

_summary_decoder = msgspec.json.Decoder(FrameSummary)
_json = msgspec.json.Encoder()

ERRORS = {
    400: ResponseSpec(
        generate_examples=False,
        data_container=ErrorOut,
        description="Bad parameter; the message names the allowed values",
        examples=[examples.error(400, "range must be one of 12h, 24h, 3d, 7d, 30d, 90d, 180d, 1y; got '2h'", ["12h", "24h", "3d", "7d", "30d", "90d", "180d", "1y"])],
    ),
    404: ResponseSpec(
        generate_examples=False,
        data_container=ErrorOut,
        description="Unknown exchange, symbol or frame",
        examples=[examples.error(404, "unknown symbol 'DOGEUSDT' on binance; known symbols: BTCUSDT, ETHUSDT, SOLUSDT")],
    ),
    503: ResponseSpec(
        generate_examples=False,
        data_container=ErrorOut,
        description="No frame computed yet, or the store is unreachable",
        examples=[examples.error(503, "the data store is unreachable; retry shortly")],
    ),
}


def _wants_msgpack(request: Request, fmt: Format | None) -> bool:
    if fmt is not None:
        return fmt == "msgpack"
    return "msgpack" in raw_header(request, b"accept")


def _etag(frame_id: str, msgpack: bool) -> str:
    return f'"{frame_id}{".mp" if msgpack else ""}"'


def _frame_response(request: Request, frame_id: str, stored: bytes, msgpack: bool) -> ASGIResponse:
    etag = _etag(frame_id, msgpack)
    headers = [("etag", etag), ("cache-control", "no-cache")]
    if raw_header(request, b"if-none-match") in (etag, f"W/{etag}", "*"):
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

    @get(
        "/latest",
        operation_id="getLatestHeatmap",
        responses={200: ResponseSpec(generate_examples=False, data_container=FrameOut, description="The newest frame (JSON or msgpack)", examples=[examples.FRAME]), **ERRORS},
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
        # The hot path: state is read directly (no dependency resolution per request).
        state = request.app.state
        settings: Settings = state.settings
        check_model(settings, model)
        check_range(settings, range_name)
        leverage_filter = check_leverage_filter(model, leverage)
        exchange, symbol = canonical_market(exchange, symbol)
        msgpack = _wants_msgpack(request, fmt)
        field = FIELD_V1_MSGPACK if msgpack else FIELD_V1_JSON
        frame_id, body = await newest_frame(request, exchange, symbol, model, range_name, leverage_filter, field)
        return _frame_response(request, frame_id, body, msgpack)

    @get(
        "/levels",
        operation_id="getLiquidationLevels",
        responses={200: ResponseSpec(generate_examples=False, data_container=LevelsOut, description="Magnet zones, the liquidation map by tier and max pain"), **ERRORS},
    )
    async def levels(
        self,
        request: Request,
        store: NamedDependency[StoreReader],
        settings: NamedDependency[Settings],
        exchange: FromPath[str],
        symbol: FromPath[str],
        model: ModelParam = "model1",
        range_name: RangeParam = "24h",
        leverage: LeverageParam = None,
    ) -> LevelsOut:
        """Price ranges with intensity metrics, from the newest frame's data.

        `clusters`: bands of high intensity above price (shorts) and below it (longs), each with
        price low/high, USD, share of its side and distance from price. `map`: per tier, the
        outstanding USD per price row and cumulative longs below / shorts above price.
        `max_pain`: the largest level on each side.
        """
        check_model(settings, model)
        check_range(settings, range_name)
        exchange, symbol = await check_market(store, exchange, symbol)
        leverage_filter = check_leverage_filter(model, leverage)
        latest = await request.app.state.frames.get(exchange, symbol, model, range_name, FIELD_META)
        if latest is None:
            raise Unavailable(f"no {model} {range_name} frame for {exchange}:{symbol} yet; it is being computed", headers={"Retry-After": "5"})
        levels = await request.app.state.ondemand.levels(exchange, symbol, model, range_name, leverage_filter, based_on=latest[0])
        if levels is None:
            raise Unavailable(f"no data for {exchange}:{symbol} yet", headers={"Retry-After": "5"})
        return levels

    @get(
        "/frames",
        operation_id="listHeatmapFrames",
        responses={200: ResponseSpec(generate_examples=False, data_container=FramePage, description="Frame summaries, newest first", examples=[examples.FRAME_PAGE]), **ERRORS},
    )
    async def frames(
        self,
        store: NamedDependency[StoreReader],
        settings: NamedDependency[Settings],
        exchange: FromPath[str],
        symbol: FromPath[str],
        model: ModelParam = "model1",
        range_name: RangeParam = "24h",
        model_version: Annotated[str | None, QueryParameter(description="Only frames of this model version, e.g. 1.0.0")] = None,
        from_ms: Annotated[int | None, QueryParameter(name="from", description="Oldest data_until to include, epoch ms")] = None,
        to_ms: Annotated[int | None, QueryParameter(name="to", description="Newest data_until to include, epoch ms")] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=500, description="Frames per page, 1..500")] = 50,
        cursor: Annotated[str | None, QueryParameter(description="next_cursor of the previous page")] = None,
    ) -> FramePage:
        """Stored frames of a market, newest first, by model version and time, cursor-paginated."""
        check_model(settings, model)
        check_range(settings, range_name)
        exchange, symbol = await check_market(store, exchange, symbol)
        if from_ms is not None and to_ms is not None and from_ms > to_ms:
            raise BadRequest(f"from ({from_ms}) must not be later than to ({to_ms})")
        newest, after_id = (to_ms, None)
        if cursor is not None:
            newest, after_id = _decode_cursor(cursor)
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
            metas = await store.frame_fields(exchange, symbol, [fid for fid, _ in index], FIELD_META)
            for (fid, score), meta in zip(index, metas):
                newest, after_id = score, fid
                if meta is None:
                    continue
                summary = _summary_decoder.decode(meta)
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
        responses={200: ResponseSpec(generate_examples=False, data_container=FrameOut, description="One frame (JSON or msgpack)", examples=[examples.FRAME]), **ERRORS},
    )
    async def frame(
        self,
        request: Request,
        store: NamedDependency[StoreReader],
        exchange: FromPath[str],
        symbol: FromPath[str],
        frame_id: FromPath[str],
        fmt: FormatParam = None,
    ) -> ASGIResponse:
        """One stored frame by id (ids come from /latest, /frames and the stream)."""
        exchange, symbol = await check_market(store, exchange, symbol)
        msgpack = _wants_msgpack(request, fmt)
        stored = (await store.frame_fields(exchange, symbol, [frame_id], FIELD_V1_MSGPACK, stored=True))[0]
        if stored is None:
            raise NotFound(f"no frame {frame_id!r} for {exchange}:{symbol}; it may be older than the history kept")
        if not msgpack:
            # History keeps msgpack only; JSON is made from it on request.
            stored = await asyncio.to_thread(lambda: compress(msgpack_to_json(stored)))
        return _frame_response(request, frame_id, stored, msgpack)

    @get("/stream", operation_id="streamHeatmapFrames", responses=ERRORS)
    async def stream(
        self,
        request: Request,
        store: NamedDependency[StoreReader],
        settings: NamedDependency[Settings],
        exchange: FromPath[str],
        symbol: FromPath[str],
        model: ModelParam = "model1",
        range_name: RangeParam = "24h",
        include_frame: Annotated[bool, QueryParameter(name="include_frame", description="Send the whole frame in each event")] = False,
    ) -> ServerSentEvent:
        """Server-sent events: one ``frame`` event per new frame, its id as the event id.

        Reconnect with ``Last-Event-ID`` to receive the frames you missed first.
        """
        check_model(settings, model)
        check_range(settings, range_name)
        exchange, symbol = await check_market(store, exchange, symbol)
        last_event_id = request.headers.get("last-event-id")

        async def events() -> AsyncIterator[ServerSentEventMessage]:
            pubsub = store.frame_announcements()
            await pubsub.subscribe(store.frame_channel(exchange, symbol))
            try:
                yield ServerSentEventMessage(comment="subscribed", retry=3000, data=None)
                sent: set[str] = set()
                if last_event_id:
                    for frame_id in await store.frames_after(exchange, symbol, model, range_name, last_event_id):
                        message = await _event(store, exchange, symbol, frame_id, include_frame)
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
                    event = await _event(store, exchange, symbol, summary.id, include_frame, summary)
                    if event is not None:
                        yield event
            finally:
                await pubsub.aclose()

        return ServerSentEvent(events())


async def _event(
    store: StoreReader, exchange: str, symbol: str, frame_id: str, include_frame: bool, summary: FrameSummary | None = None
) -> ServerSentEventMessage | None:
    if include_frame:
        stored = (await store.frame_fields(exchange, symbol, [frame_id], FIELD_V1_MSGPACK, stored=True))[0]
        body = None if stored is None else await asyncio.to_thread(msgpack_to_json, stored)
    else:
        body = _json.encode(summary) if summary is not None else (await store.frame_fields(exchange, symbol, [frame_id], FIELD_META))[0]
    if body is None:
        return None
    return ServerSentEventMessage(data=body.decode(), event="frame", id=frame_id)
