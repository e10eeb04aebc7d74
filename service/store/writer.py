"""The write side of the store: collectors' rows, computed frames, market metadata.

Every multi-key write is one Lua script call; row upserts are idempotent by timestamp.
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np
from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from service.store import keys
from service.store.reader import StoreReader
from service.store.rows import CANDLE_DTYPE, LIQUIDATION_DTYPE, OPEN_INTEREST_DTYPE, pack_rows
from service.store.scripts import lua
from service.wire.codec import HISTORY_FIELDS

# Rows per script call: large enough to amortise round trips, small enough not
# to stall the server for other clients.
UPSERT_CHUNK = 4096


class Store(StoreReader):
    """Reads and writes of liqmap data, for the processes that collect and compute."""

    def __init__(self, redis: Redis) -> None:
        super().__init__(redis)
        self._upsert: AsyncScript = redis.register_script(lua("upsert_rows.lua"))
        self._put_frame: AsyncScript = redis.register_script(lua("put_frame.lua"))

    async def add_market(self, exchange: str, symbol: str) -> None:
        await self.redis.sadd(keys.MARKETS, keys.market_id(exchange, symbol))

    async def set_market_meta(self, exchange: str, symbol: str, **values: str | int | float) -> None:
        await self.redis.hset(keys.market_meta(exchange, symbol), mapping={k: str(v) for k, v in values.items()})

    async def _upsert_rows(self, key: str, rows: np.ndarray) -> int:
        """Write ``rows`` so that each timestamp holds exactly one row; returns rows written."""
        if rows.dtype.names is None or "ts_ms" not in rows.dtype.names:
            raise ValueError("rows must be a structured array with a ts_ms field")
        # One row per timestamp within the batch too: the last one wins.
        _, last_index = np.unique(rows["ts_ms"][::-1], return_index=True)
        rows = rows[::-1][last_index]
        members = pack_rows(rows)
        timestamps = rows["ts_ms"].tolist()
        for start in range(0, len(members), UPSERT_CHUNK):
            args: list[int | bytes] = []
            for ts, member in zip(timestamps[start : start + UPSERT_CHUNK], members[start : start + UPSERT_CHUNK]):
                args.append(ts)
                args.append(member)
            await self._upsert(keys=[key], args=args)
        return len(members)

    async def upsert_candles(self, exchange: str, symbol: str, candles: np.ndarray) -> int:
        _check_dtype(candles, CANDLE_DTYPE, "candles")
        return await self._upsert_rows(keys.candles(exchange, symbol), candles)

    async def upsert_open_interest(self, exchange: str, symbol: str, rows: np.ndarray) -> int:
        _check_dtype(rows, OPEN_INTEREST_DTYPE, "open interest")
        return await self._upsert_rows(keys.open_interest(exchange, symbol), rows)

    async def add_liquidations(self, exchange: str, symbol: str, events: np.ndarray) -> int:
        """Add realized liquidation events; an event identical to a stored one is not added again.

        Returns how many were new.
        """
        _check_dtype(events, LIQUIDATION_DTYPE, "liquidations")
        if len(events) == 0:
            return 0
        mapping = {member: int(ts) for member, ts in zip(pack_rows(events), events["ts_ms"].tolist())}
        return int(await self.redis.zadd(keys.liquidations(exchange, symbol), mapping, nx=True))

    async def trim(self, exchange: str, symbol: str, *, candles_before_ms: int, liquidations_before_ms: int) -> None:
        """Drop inputs older than the retention bounds."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zremrangebyscore(keys.candles(exchange, symbol), "-inf", f"({candles_before_ms}")
            pipe.zremrangebyscore(keys.open_interest(exchange, symbol), "-inf", f"({candles_before_ms}")
            pipe.zremrangebyscore(keys.liquidations(exchange, symbol), "-inf", f"({liquidations_before_ms}")
            await pipe.execute()

    async def put_frame(
        self,
        exchange: str,
        symbol: str,
        model: str,
        range_name: str,
        *,
        frame_id: str,
        data_until_ms: int,
        fields: dict[str, bytes],
        event: bytes,
        keep: int,
        column_ms: int,
        history_fields: Collection[str] = HISTORY_FIELDS,
    ) -> None:
        """Store a frame: every encoded form as the latest (if it is the newest), the
        ``history_fields`` in history, where the newest frame of each ``column_ms`` column is
        kept (``keep`` columns at most); then announce it."""
        history = [(name, value) for name, value in fields.items() if name in history_fields]
        args: list[str | int | bytes] = [
            frame_id,
            data_until_ms,
            keep,
            keys.frame_prefix(exchange, symbol),
            self.frame_channel(exchange, symbol),
            event,
            column_ms,
            len(history),
        ]
        for name, value in [*history, *fields.items()]:
            args.extend((name, value))
        await self._put_frame(
            keys=[
                keys.frame_blob(exchange, symbol, frame_id),
                keys.frame_history(exchange, symbol, model, range_name),
                keys.frame_latest(exchange, symbol, model, range_name),
            ],
            args=args,
        )


def _check_dtype(rows: np.ndarray, dtype: np.dtype, what: str) -> None:
    if rows.dtype != dtype:
        raise ValueError(f"{what} rows must have dtype {dtype}, got {rows.dtype}")
