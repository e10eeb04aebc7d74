"""Native v1 heatmap routes."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Response, get
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, QueryParameter

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
        store: NamedDependency[Store],
        settings: NamedDependency[Settings],
        exchange: FromPath[str],
        symbol: FromPath[str],
        model: Annotated[str, QueryParameter(description="Model name: model1")] = "model1",
        range_name: Annotated[str, QueryParameter(name="range", description="12h, 24h, 3d, 7d, 30d, 90d, 180d or 1y")] = "24h",
    ) -> Response[bytes]:
        """The newest heatmap frame of a market for one model and range."""
        check_model(settings, model)
        check_range(settings, range_name)
        exchange, symbol = await check_market(store, exchange, symbol)
        body = await store.latest_frame_field(exchange, symbol, model, range_name, FIELD_V1_JSON)
        if body is None:
            raise Unavailable(f"no {model} {range_name} frame for {exchange}:{symbol} yet; it is being computed", headers={"Retry-After": "5"})
        return Response(content=body, media_type="application/json")
