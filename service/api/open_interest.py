"""Open interest of a coin on every venue in one call: now, per interval, and summed."""

from __future__ import annotations

from typing import Annotated

import numpy as np
from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, QueryParameter

from service.api.errors import BadRequest
from service.api.params import check_coin, exchanges_of, pairs_of
from service.clock import Clock
from service.compute import history, series
from service.compute.realized import INTERVALS_MS
from service.markets import SYNTHETIC_META
from service.store.chunks import OPEN_INTEREST
from service.store.reader import StoreReader
from service.wire.schemas import ErrorOut, OpenInterestOut, OpenInterestVenueOut


def _closes(ohlc: series.Ohlc) -> list[list[float]]:
    return [[t, round(c, 2)] for t, c in zip(ohlc.time.tolist(), ohlc.close.tolist())]


class OpenInterestController(Controller):
    path = "/v1/open-interest"
    tags = ["open interest"]

    @get(
        "/{coin:str}",
        operation_id="getOpenInterest",
        responses={
            400: ResponseSpec(generate_examples=False, data_container=ErrorOut, description="Bad parameter; the message says what is allowed"),
            404: ResponseSpec(generate_examples=False, data_container=ErrorOut, description="No pairs of that coin; the message lists the coins"),
        },
    )
    async def open_interest(
        self,
        store: NamedDependency[StoreReader],
        clock: NamedDependency[Clock],
        coin: FromPath[str],
        interval: Annotated[str, QueryParameter(description="Width of the history's buckets", schema_extra={"enum": list(INTERVALS_MS)})] = "1h",
        limit: Annotated[int, QueryParameter(ge=1, le=1000, description="Buckets of history, newest, 1..1000")] = 24,
    ) -> OpenInterestOut:
        """Every venue's open interest of a coin (USD, one side): the newest observation and its close per
        interval, and their sum; ``synthetic`` says the data is simulated (the demo).

        A venue's history starts where its stored observations do (roll-ups included, as on
        the Coinglass routes); the sum where every venue has one (before, it would be partial).
        """
        if interval not in INTERVALS_MS:
            raise BadRequest(f"interval must be one of {', '.join(INTERVALS_MS)}; got {interval!r}", allowed=list(INTERVALS_MS))
        markets = await store.markets()
        wanted = check_coin(markets, coin)
        pairs = pairs_of(markets, exchanges_of(markets), wanted)
        asked = history.HistoryQuery(INTERVALS_MS[interval], limit, None, None)
        # Each venue's history starts where its own rows do.
        windows = [await history.window(store, OPEN_INTEREST, [pair], asked, clock(), rollups=True) for pair in pairs]
        newest, metas = await store.newest_rows_of(OPEN_INTEREST, pairs), await store.market_metas(pairs)
        venues, observed = [], []
        for pair, window, last_rows in zip(pairs, windows, newest):
            last = series.newest(last_rows["ts_ms"], last_rows["open_interest_usd"])
            ts, usd = await history.open_interest(store, [pair], window, "usd") if window is not None else (np.zeros(0, dtype=np.int64), np.zeros(0))
            observed.append((ts, usd))
            venues.append(
                OpenInterestVenueOut(
                    exchange=pair[0],
                    symbol=pair[1],
                    open_interest_usd=None if last is None else round(last[1], 2),
                    observed_at=None if last is None else last[0],
                    history=_closes(series.point_ohlc(ts, usd, window)) if window is not None else [],
                )
            )
        everyone = await history.window(store, OPEN_INTEREST, pairs, asked, clock(), rollups=True)
        ts, total = series.summed(observed)
        present = [venue.open_interest_usd for venue in venues if venue.open_interest_usd is not None]
        return OpenInterestOut(
            coin=wanted,
            interval=interval,
            synthetic=any(meta.get(SYNTHETIC_META) == "1" for meta in metas),
            total_usd=round(sum(present), 2) if present else None,
            venues=venues,
            total_history=_closes(series.point_ohlc(ts, total, everyone)) if everyone is not None else [],
        )
