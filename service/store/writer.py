"""The write side of the store: collectors' rows, computed frames, market metadata.

Every multi-key write is one Lua script call; row upserts are idempotent by timestamp.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

import numpy as np
from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import WatchError

from service.store import keys
from service.store.reader import StoreReader
from service.store import chunks
from service.store.chunks import CANDLES, LIQUIDATIONS, OPEN_INTEREST, RowKind
from service.store.scripts import lua
from service.wire.codec import HISTORY_FIELDS


class Store(StoreReader):
    """Reads and writes of liqmap data, for the processes that collect and compute."""

    def __init__(self, redis: Redis) -> None:
        super().__init__(redis)
        self._put_frame: AsyncScript = redis.register_script(lua("put_frame.lua"))

    async def add_market(self, exchange: str, symbol: str) -> None:
        await self.redis.sadd(keys.MARKETS, keys.market_id(exchange, symbol))

    async def set_market_meta(self, exchange: str, symbol: str, **values: str | int | float) -> None:
        await self.redis.hset(keys.market_meta(exchange, symbol), mapping={k: str(v) for k, v in values.items()})

    async def _rewrite_chunk(
        self, kind: RowKind, exchange: str, symbol: str, start: int, change: Callable[[np.ndarray], np.ndarray | None], *, packed: bool
    ) -> None:
        """Replace one chunk's rows by ``change(rows)`` (None: leave it as it is) in one optimistic
        transaction, compressed if ``packed``; ``change`` runs again if another writer got there first."""
        key = keys.chunk(kind.name, exchange, symbol, start)
        index_key = keys.chunk_index(kind.name, exchange, symbol)
        async with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(key)
                    rows = change(chunks.decode(await pipe.get(key), kind.dtype))
                    if rows is None:
                        await pipe.unwatch()
                        return
                    pipe.multi()
                    if len(rows):
                        encoded = chunks.encode(rows, packed=packed)
                        pipe.set(key, encoded)
                        pipe.hset(index_key, str(start), f"{len(rows)}".encode() + encoded[:1])
                    else:
                        pipe.delete(key)
                        pipe.hdel(index_key, str(start))
                    await pipe.execute()
                    return
                except WatchError:
                    continue

    async def _write_chunk(self, kind: RowKind, exchange: str, symbol: str, start: int, rows: np.ndarray, *, packed: bool) -> int:
        """Merge ``rows`` into one chunk; returns rows added."""
        added = 0

        def merge(stored: np.ndarray) -> np.ndarray:
            nonlocal added
            merged, added = chunks.merge(stored, rows, kind)
            return merged

        await self._rewrite_chunk(kind, exchange, symbol, start, merge, packed=packed)
        return added

    async def upsert_rows(self, kind: RowKind, exchange: str, symbol: str, rows: np.ndarray) -> int:
        """Write rows of one kind; returns rows written (``ts`` kinds: after dropping repeats within the batch)
        or rows added (``row`` kinds: identical events are not added twice).

        The newest chunk stays as it is, every older one is compressed (an older raw chunk too,
        once a newer one exists).
        """
        _check_dtype(rows, kind.dtype, kind.what)
        rows = chunks.unique_rows(rows, kind)
        if not len(rows):
            return 0
        groups = chunks.split_by_chunk(rows, kind)
        index = await self.chunk_index(kind, exchange, symbol)
        newest = max([*index, *groups])
        added = 0
        for start, part in groups.items():
            added += await self._write_chunk(kind, exchange, symbol, start, part, packed=start < newest)
        for start, (_, encoding) in index.items():
            if encoding == chunks.RAW and start < newest and start not in groups:
                await self._write_chunk(kind, exchange, symbol, start, part[:0], packed=True)
        return added if kind.unique == "row" else len(rows)

    async def upsert_candles(self, exchange: str, symbol: str, candles: np.ndarray) -> int:
        return await self.upsert_rows(CANDLES, exchange, symbol, candles)

    async def upsert_open_interest(self, exchange: str, symbol: str, rows: np.ndarray) -> int:
        return await self.upsert_rows(OPEN_INTEREST, exchange, symbol, rows)

    async def add_liquidations(self, exchange: str, symbol: str, events: np.ndarray) -> int:
        """Add realized liquidation events; an event identical to a stored one is not added again.

        Returns how many were new.
        """
        return await self.upsert_rows(LIQUIDATIONS, exchange, symbol, events)

    async def _trim_kind(self, kind: RowKind, exchange: str, symbol: str, before_ms: int) -> None:
        """Drop rows of one kind older than ``before_ms``: whole chunks, and the older part of the one it falls in."""
        index = await self.chunk_index(kind, exchange, symbol)
        gone = [start for start in index if start + kind.span_ms <= before_ms]
        if gone:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.delete(*(keys.chunk(kind.name, exchange, symbol, start) for start in gone))
                pipe.hdel(keys.chunk_index(kind.name, exchange, symbol), *(str(start) for start in gone))
                await pipe.execute()
        boundary = kind.chunk_start(before_ms)
        if boundary in index and boundary < before_ms:

            def drop_older(rows: np.ndarray) -> np.ndarray | None:
                kept = rows[rows["ts_ms"] >= before_ms]
                return None if len(kept) == len(rows) else kept

            await self._rewrite_chunk(kind, exchange, symbol, boundary, drop_older, packed=boundary < max(index))

    async def trim(self, exchange: str, symbol: str, *, candles_before_ms: int, liquidations_before_ms: int) -> None:
        """Drop inputs older than the retention bounds."""
        await self._trim_kind(CANDLES, exchange, symbol, candles_before_ms)
        await self._trim_kind(OPEN_INTEREST, exchange, symbol, candles_before_ms)
        await self._trim_kind(LIQUIDATIONS, exchange, symbol, liquidations_before_ms)

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
