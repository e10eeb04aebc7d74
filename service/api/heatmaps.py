"""Native v1 heatmap routes."""

from __future__ import annotations

from litestar import Controller, Request, Response, get
from litestar.openapi.datastructures import ResponseSpec

from service.api.errors import Unavailable
from service.api.params import check_market, check_model, check_range
from service.codec import FIELD_V1_JSON
from service.schemas import ErrorOut, FrameOut
from service.settings import Settings
from service.store import Store


class HeatmapController(Controller):
    path = "/v1/heatmaps"
    tags = ["heatmaps"]

    @get(
        "/{exchange:str}/{symbol:str}/latest",
        operation_id="getLatestHeatmap",
        responses={
            200: ResponseSpec(data_container=FrameOut, description="The newest frame"),
            400: ResponseSpec(data_container=ErrorOut, description="Bad model or range"),
            404: ResponseSpec(data_container=ErrorOut, description="Unknown exchange or symbol"),
            503: ResponseSpec(data_container=ErrorOut, description="No frame computed yet, or store down"),
        },
    )
    async def latest(
        self,
        request: Request,
        store: Store,
        settings: Settings,
        exchange: str,
        symbol: str,
        model: str = "model1",
        range: str = "24h",  # noqa: A002 - the public parameter name
    ) -> Response[bytes]:
        """The newest heatmap frame of a market for one model and range."""
        check_model(settings, model)
        check_range(settings, range)
        exchange, symbol = await check_market(store, exchange, symbol)
        body = await store.latest_frame_field(exchange, symbol, model, range, FIELD_V1_JSON)
        if body is None:
            raise Unavailable(f"no {model} {range} frame for {exchange}:{symbol} yet; it is being computed", headers={"Retry-After": "5"})
        return Response(content=body, media_type="application/json")
