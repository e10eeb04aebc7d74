"""What there is: markets with their coverage, and models with their versions and scores."""

from __future__ import annotations

import asyncio
from litestar import Controller, get
from litestar.di import NamedDependency

from engine.models import MODELS
from service.markets import AGGREGATE_EXCHANGE, SYNTHETIC_META, coin_of
from service.wire.schemas import MarketOut, MarketsOut, ModelOut, ModelsOut
from service.settings import Settings
from service.store.reader import StoreReader


class CatalogController(Controller):
    path = "/v1"
    tags = ["catalog"]

    @get("/markets", operation_id="listMarkets")
    async def markets(self, store: NamedDependency[StoreReader], settings: NamedDependency[Settings]) -> MarketsOut:
        """Every market with data: venue, symbol, the span of its stored bars, its last update, and
        whether its data is simulated (``synthetic``: the demo's venues and the aggregates summing them)."""
        markets = await store.markets()
        spans, metas = await asyncio.gather(
            store.candle_spans(markets),
            store.market_metas(markets),
        )
        simulated = {(exchange, symbol) for (exchange, symbol), meta in zip(markets, metas) if meta.get(SYNTHETIC_META) == "1"}
        simulated |= {(AGGREGATE_EXCHANGE, coin_of(symbol)) for _, symbol in simulated}
        out = []
        for (exchange, symbol), span, meta in zip(markets, spans, metas):
            out.append(
                MarketOut(
                    exchange=exchange,
                    symbol=symbol,
                    coverage_start=span[0] if span else None,
                    data_until=int(meta["data_until_ms"]) if "data_until_ms" in meta else None,
                    last_update=int(meta["last_update_ms"]) if "last_update_ms" in meta else None,
                    bars=span[2] if span else 0,
                    models=list(settings.models),
                    ranges=list(settings.ranges),
                    synthetic=(exchange, symbol) in simulated,
                )
            )
        return MarketsOut(markets=out)

    @get("/models", operation_id="listModels")
    async def models(self, settings: NamedDependency[Settings]) -> ModelsOut:
        """Every model this service computes: version, parameters and their hash, assumptions, margin tiers, score per data set and coin."""
        out = []
        for name in settings.models:
            meta = MODELS[name].metadata()
            out.append(
                ModelOut(
                    name=meta["name"],
                    version=meta["version"],
                    params_hash=meta["params_hash"],
                    params=meta["params"],
                    description=meta["description"],
                    doc=meta["doc"],
                    tiers=list(meta["tiers"]),
                    created=meta.get("created"),
                    score=meta.get("score"),
                    calibration=meta.get("calibration"),
                    margin_table=meta["margin_table"],
                )
            )
        return ModelsOut(models=out)
