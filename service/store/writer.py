"""The write side of the store: collectors' rows, computed frames, market metadata.

Every multi-key write is one Lua script call; row upserts are idempotent by timestamp.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

import numpy as np
from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError, WatchError

from service.store import keys
from service.store.reader import LIQUIDATION_FEED_LENGTH, StoreReader, feed_entry
from service.store import chunks
from service.store.chunks import CANDLES, FUNDING, LIQUIDATIONS, LONG_SHORT, OPEN_INTEREST, TAKER, RowKind
from service.store.scripts import lua
from service.store.records import FrameRecord, encode_record

log = logging.getLogger(__name__)


class Store(StoreReader):
    """Reads and writes of liqmap data, for the processes that collect and compute."""

    def __init__(self, redis: Redis) -> None:
        super().__init__(redis)
        self._put_frame: AsyncScript = redis.register_script(lua("put_frame.lua"))
        self._clear_if: AsyncScript = redis.register_script(lua("clear_if.lua"))
        self._lower_to: AsyncScript = redis.register_script(lua("lower_to.lua"))

    async def add_market(self, exchange: str, symbol: str) -> None:
        await self.redis.sadd(keys.MARKETS, keys.market_id(exchange, symbol))

    async def set_market_meta(self, exchange: str, symbol: str, **values: str | int | float) -> None:
        await self.redis.hset(keys.market_meta(exchange, symbol), mapping={k: str(v) for k, v in values.items()})

    async def clear_market_meta(self, exchange: str, symbol: str, name: str, *, if_value: str) -> None:
        """Remove one metadata field if it still holds ``if_value`` (a newer value set meanwhile stays)."""
        await self._clear_if(keys=[keys.market_meta(exchange, symbol)], args=[name, if_value])

    async def revision_in(self, kind: RowKind, exchange: str, symbol: str, rows: np.ndarray) -> int | None:
        """The earliest time at which ``rows``, about to be written, differ from what the store holds
        where the market's frames were built already (a bar filled in late, a venue's correction);
        None when they change nothing there (new bars, or the same ones again)."""
        built_until = await self.redis.hget(keys.market_meta(exchange, symbol), "data_until_ms")
        if built_until is None or not len(rows):
            return None
        earlier = chunks.unique_rows(rows[rows["ts_ms"] < int(built_until)], kind)
        if not len(earlier):
            return None
        stored = await self.read_rows(kind, exchange, symbol, int(earlier["ts_ms"][0]), int(earlier["ts_ms"][-1]) + 1)
        known = {int(ts): row.tobytes() for ts, row in zip(stored["ts_ms"], stored)}
        for ts, row in zip(earlier["ts_ms"].tolist(), earlier):
            if known.get(ts) != row.tobytes():
                return int(ts)
        return None

    async def note_revision(self, exchange: str, symbol: str, from_ms: int) -> None:
        """Mark that inputs from ``from_ms`` on changed where frames were built (``revised_from_ms``,
        the lowest such time): the refresher drops those frames from history first."""
        await self._lower_to(keys=[keys.market_meta(exchange, symbol)], args=["revised_from_ms", from_ms])

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
                        pipe.hset(index_key, str(start), chunks.index_value(rows, encoded))
                    else:
                        pipe.delete(key)
                        pipe.hdel(index_key, str(start))
                    await pipe.execute()
                    return
                except WatchError:
                    continue

    async def _write_chunk(self, kind: RowKind, exchange: str, symbol: str, start: int, rows: np.ndarray, *, packed: bool) -> np.ndarray:
        """Merge ``rows`` into one chunk; returns the rows it added (see :func:`chunks.merge`)."""
        added = rows[:0]

        def merge(stored: np.ndarray) -> np.ndarray:
            nonlocal added
            merged, added = chunks.merge(stored, rows, kind)
            return merged

        await self._rewrite_chunk(kind, exchange, symbol, start, merge, packed=packed)
        return added

    async def _upsert(self, kind: RowKind, exchange: str, symbol: str, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Write rows of one kind; returns them without repeats, and those the store did not hold yet."""
        _check_dtype(rows, kind.dtype, kind.what)
        rows = chunks.unique_rows(rows, kind)
        if not len(rows):
            return rows, rows
        groups = chunks.split_by_chunk(rows, kind)
        index = await self.chunk_index(kind, exchange, symbol)
        newest = max([*index, *groups])
        added = [rows[:0]]
        for start, part in groups.items():
            added.append(await self._write_chunk(kind, exchange, symbol, start, part, packed=start < newest))
        for start, info in index.items():
            if info.encoding == chunks.RAW and start < newest and start not in groups:
                await self._write_chunk(kind, exchange, symbol, start, part[:0], packed=True)
        return rows, np.concatenate(added)

    async def upsert_rows(self, kind: RowKind, exchange: str, symbol: str, rows: np.ndarray) -> int:
        """Write rows of one kind; returns rows written (``ts`` kinds: after dropping repeats within the batch)
        or rows added (``row`` kinds: identical events are not added twice).

        The newest chunk stays as it is, every older one is compressed (an older raw chunk too,
        once a newer one exists).
        """
        written, added = await self._upsert(kind, exchange, symbol, rows)
        return len(added) if kind.unique == "row" else len(written)

    async def upsert_candles(self, exchange: str, symbol: str, candles: np.ndarray) -> int:
        return await self.upsert_rows(CANDLES, exchange, symbol, candles)

    async def upsert_open_interest(self, exchange: str, symbol: str, rows: np.ndarray) -> int:
        return await self.upsert_rows(OPEN_INTEREST, exchange, symbol, rows)

    async def upsert_funding(self, exchange: str, symbol: str, rows: np.ndarray) -> int:
        return await self.upsert_rows(FUNDING, exchange, symbol, rows)

    async def upsert_long_short(self, exchange: str, symbol: str, rows: np.ndarray) -> int:
        return await self.upsert_rows(LONG_SHORT, exchange, symbol, rows)

    async def upsert_taker(self, exchange: str, symbol: str, rows: np.ndarray) -> int:
        return await self.upsert_rows(TAKER, exchange, symbol, rows)

    async def add_liquidations(self, exchange: str, symbol: str, events: np.ndarray, *, announce: bool = True) -> int:
        """Add realized liquidation events; an event identical to a stored one is not added again.

        The new ones are announced on the liquidation feed (what ``/ws-api`` pushes), unless
        ``announce`` is false (history fetched on a market's first start is not news). An
        announcement that fails is logged: the events are stored, only their push is lost.
        Returns how many were new.
        """
        _, added = await self._upsert(LIQUIDATIONS, exchange, symbol, events)
        if announce and len(added):
            try:
                await self.redis.xadd(
                    keys.LIQUIDATION_FEED, feed_entry(exchange, symbol, added), maxlen=LIQUIDATION_FEED_LENGTH, approximate=True
                )
            except RedisError as exc:
                log.warning("stored %d liquidations of %s:%s but could not announce them: %s", len(added), exchange, symbol, exc)
        return len(added)

    async def trim_rows(self, kind: RowKind, exchange: str, symbol: str, before_ms: int) -> None:
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
        await self.trim_rows(CANDLES, exchange, symbol, candles_before_ms)
        await self.trim_rows(OPEN_INTEREST, exchange, symbol, candles_before_ms)
        await self.trim_rows(FUNDING, exchange, symbol, candles_before_ms)
        await self.trim_rows(LONG_SHORT, exchange, symbol, candles_before_ms)
        await self.trim_rows(TAKER, exchange, symbol, candles_before_ms)
        await self.trim_rows(LIQUIDATIONS, exchange, symbol, liquidations_before_ms)

    async def put_frame(
        self, record: FrameRecord, *, packed: bytes | None, event: bytes, keep: int, column_ms: int
    ) -> None:
        """Record a frame in history (the newest of each ``column_ms`` column is kept, ``keep``
        columns at most), keep its stored form as the latest where given (live ranges), announce it."""
        exchange, symbol, model, range_name = record.exchange, record.symbol, record.model, record.range
        await self._put_frame(
            keys=[
                keys.frame_history(exchange, symbol, model, range_name),
                keys.frame_records(exchange, symbol, model, range_name),
                keys.frame_latest(exchange, symbol, model, range_name),
            ],
            args=[record.id, record.data_until, keep, column_ms, encode_record(record), self.frame_channel(exchange, symbol), event, packed or b""],
        )

    async def delist_frames_after(self, exchange: str, symbol: str, models: Iterable[str], ranges: Iterable[str], after_ms: int) -> int:
        """Remove from history every frame whose data ends after ``after_ms`` (its inputs changed since); returns how many."""
        removed = 0
        for model in models:
            for range_name in ranges:
                history = keys.frame_history(exchange, symbol, model, range_name)
                gone = await self.redis.zrangebyscore(history, f"({after_ms}", "+inf")
                if gone:
                    async with self.redis.pipeline(transaction=True) as pipe:
                        pipe.zrem(history, *gone)
                        pipe.hdel(keys.frame_records(exchange, symbol, model, range_name), *gone)
                        await pipe.execute()
                    removed += len(gone)
        return removed


def _check_dtype(rows: np.ndarray, dtype: np.dtype, what: str) -> None:
    if rows.dtype != dtype:
        raise ValueError(f"{what} rows must have dtype {dtype}, got {rows.dtype}")
