"""The Coinglass-compatible liquidation routes (same paths, parameters and shapes)."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Response, get
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, QueryParameter

from service.api.errors import Unavailable
from service.api.params import check_market, check_model, check_range, require
from service.codec import FIELD_COINGLASS_JSON
from service.schemas import CoinglassHeatmap, Envelope
from service.settings import Settings
from service.store import Store


class CoinglassController(Controller):
    path = "/api/futures/liquidation"
    tags = ["coinglass-compatible"]

    @get(
        "/heatmap/{model:str}",
        operation_id="coinglassHeatmap",
        responses={
            200: ResponseSpec(data_container=Envelope[CoinglassHeatmap], description="Heatmap in Coinglass's shape"),
            400: ResponseSpec(data_container=Envelope[None], description="Bad parameter"),
            404: ResponseSpec(data_container=Envelope[None], description="Unknown exchange or symbol"),
        },
    )
    async def heatmap(
        self,
        store: NamedDependency[Store],
        settings: NamedDependency[Settings],
        model: FromPath[str],
        exchange: Annotated[str | None, QueryParameter(description="Exchange, e.g. Binance (case-insensitive)")] = None,
        symbol: Annotated[str | None, QueryParameter(description="Trading pair, e.g. BTCUSDT")] = None,
        range_: Annotated[str | None, QueryParameter(name="range", description="12h, 24h, 3d, 7d, 30d, 90d, 180d or 1y")] = None,
    ) -> Response[bytes]:
        """Pair liquidation heatmap (``model1``..``model3``), as Coinglass serves it."""
        check_model(settings, model)
        exchange = require("exchange", exchange, "Binance")
        symbol = require("symbol", symbol, "BTCUSDT")
        range_name = check_range(settings, require("range", range_, "3d"))
        exchange, symbol = await check_market(store, exchange, symbol)
        body = await store.latest_frame_field(exchange, symbol, model, range_name, FIELD_COINGLASS_JSON)
        if body is None:
            raise Unavailable(f"no {model} {range_name} heatmap for {exchange}:{symbol} yet; it is being computed", headers={"Retry-After": "5"})
        return Response(content=body, media_type="application/json")
