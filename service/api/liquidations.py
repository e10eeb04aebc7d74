"""Realized liquidations of one market: the events and their totals per interval."""

from __future__ import annotations

from typing import Annotated

import numpy as np
from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, QueryParameter

from service.api.errors import BadRequest, shown
from service.api.params import check_market, check_time_span, epoch_ms_param
from service.clock import Clock
from service.store.rows import SIDE_LONG
from service.compute.realized import INTERVALS_MS, bucket_totals, span_window
from service.wire.schemas import ErrorOut, LiquidationEventOut, LiquidationsOut, LiquidationTotalOut
from service.store.reader import StoreReader

DEFAULT_SPAN_MS = 24 * 3_600_000
MAX_BUCKETS = 2000


class LiquidationsController(Controller):
    path = "/v1/liquidations"
    tags = ["liquidations"]

    @get(
        "/{exchange:str}/{symbol:str}",
        operation_id="getRealizedLiquidations",
        responses={
            400: ResponseSpec(generate_examples=False, data_container=ErrorOut, description="Bad parameter; the message says what is allowed"),
            404: ResponseSpec(generate_examples=False, data_container=ErrorOut, description="Unknown exchange or symbol"),
        },
    )
    async def liquidations(
        self,
        store: NamedDependency[StoreReader],
        clock: NamedDependency[Clock],
        exchange: FromPath[str],
        symbol: FromPath[str],
        from_ms: Annotated[int | None, epoch_ms_param("Start, epoch ms (default: 24 h before `to`)", name="from")] = None,
        to_ms: Annotated[int | None, epoch_ms_param("End (exclusive), epoch ms (default: now; later is taken as now)", name="to")] = None,
        interval: Annotated[str, QueryParameter(description="Width of the totals' buckets", schema_extra={"enum": list(INTERVALS_MS)})] = "5m",
        limit: Annotated[int, QueryParameter(ge=1, le=1000, description="Newest events to list, 1..1000")] = 200,
        min_usd: Annotated[float, QueryParameter(ge=0, description="Only list events of at least this many USD")] = 0.0,
    ) -> LiquidationsOut:
        """Realized liquidations as the venues reported them: the newest events and per-interval totals.

        `side` is the side of the position that was liquidated (`long` or `short`).
        Totals cover every bucket from the first one holding `from` to the one holding the
        last millisecond before `to`, zeros included, at most 2000 of them (the newest: `start`
        in the answer says where they begin); the events list is capped by `limit`. `from` must
        be earlier than `to`. Nothing is known of times after now: a `to` later than now is
        taken as now (`end` in the answer says), and a span wholly in the future is empty.
        """
        if interval not in INTERVALS_MS:
            raise BadRequest(f"interval must be one of {', '.join(INTERVALS_MS)}; got {shown(interval)}", allowed=list(INTERVALS_MS))
        check_time_span(from_ms, to_ms, ("from", "to"), strict=True)
        exchange, symbol = await check_market(store, exchange, symbol)
        now = clock()
        end = now if to_ms is None else to_ms
        start = end - DEFAULT_SPAN_MS if from_ms is None else from_ms
        end = min(end, now)
        if start >= end:
            return LiquidationsOut(exchange=exchange, symbol=symbol, interval=interval, start=end, end=end, events=[], totals=[])
        window = span_window(start, end, INTERVALS_MS[interval], MAX_BUCKETS)
        start = max(start, window.first_ms)
        events = await store.read_liquidations(exchange, symbol, start, end)
        starts, long_usd, short_usd = bucket_totals(events, window)
        listed = events[events["usd"] >= min_usd][::-1][:limit]
        return LiquidationsOut(
            exchange=exchange,
            symbol=symbol,
            interval=interval,
            start=start,
            end=end,
            events=[
                LiquidationEventOut(time=int(ts), side="long" if side == SIDE_LONG else "short", price=float(price), quantity=float(qty), usd=float(usd))
                for ts, side, price, qty, usd in zip(
                    listed["ts_ms"].tolist(), listed["side"].tolist(), listed["price"].tolist(), listed["quantity"].tolist(), listed["usd"].tolist()
                )
            ],
            totals=[
                LiquidationTotalOut(time=int(t), long_usd=float(lu), short_usd=float(su))
                for t, lu, su in zip(starts.tolist(), np.round(long_usd, 2).tolist(), np.round(short_usd, 2).tolist())
            ],
        )
