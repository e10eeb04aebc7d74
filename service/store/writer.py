"""The store: canonical rows and frames in a Redis-protocol server.

Rows are kept as fixed-width packed members of per-market sorted sets scored by
timestamp, so a range read is one ``ZRANGE ... BYSCORE`` and one
``numpy.frombuffer``. Every multi-key write is one Lua script call.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from importlib import resources

import numpy as np
from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from service.store import keys
from service.wire.codec import HISTORY_FIELDS, plain
from service.store.rows import CANDLE_DTYPE, LIQUIDATION_DTYPE, OPEN_INTEREST_DTYPE

# Rows per script call: large enough to amortise round trips, small enough not
# to stall the server for other clients.
UPSERT_CHUNK = 4096


def _lua(name: str) -> str:
    return resources.files("service.store").joinpath("scripts", name).read_text()


def pack_rows(rows: np.ndarray) -> list[bytes]:
    """Each structured row as its own bytes (the sorted-set member)."""
    width = rows.dtype.itemsize
    buffer = np.ascontiguousarray(rows).tobytes()
    return [buffer[i : i + width] for i in range(0, len(buffer), width)]


def unpack_rows(members: list[bytes], dtype: np.dtype) -> np.ndarray:
    if not members:
        return np.zeros(0, dtype=dtype)
    return np.frombuffer(b"".join(members), dtype=dtype).copy()


@dataclass(frozen=True, slots=True)
class StoredFrame:
    """What the store gives back for one frame: its id and encoded forms."""

    frame_id: str
    fields: dict[str, bytes]


class Store:
    """All reads and writes of liqmap data. One per process, around one client."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self.db = int(redis.connection_pool.connection_kwargs.get("db", 0) or 0)
        self._upsert: AsyncScript = redis.register_script(_lua("upsert_rows.lua"))
        self._put_frame: AsyncScript = redis.register_script(_lua("put_frame.lua"))

    async def ping(self) -> bool:
        return bool(await self.redis.ping())

    # markets ------------------------------------------------------------------

    async def add_market(self, exchange: str, symbol: str) -> None:
        await self.redis.sadd(keys.MARKETS, keys.market_id(exchange, symbol))

    async def markets(self) -> list[tuple[str, str]]:
        members = await self.redis.smembers(keys.MARKETS)
        return sorted(keys.split_market_id(m.decode()) for m in members)

    async def has_market(self, exchange: str, symbol: str) -> bool:
        return bool(await self.redis.sismember(keys.MARKETS, keys.market_id(exchange, symbol)))

    async def market_meta(self, exchange: str, symbol: str) -> dict[str, str]:
        raw = await self.redis.hgetall(keys.market_meta(exchange, symbol))
        return {k.decode(): v.decode() for k, v in raw.items()}

    async def set_market_meta(self, exchange: str, symbol: str, **values: str | int | float) -> None:
        await self.redis.hset(keys.market_meta(exchange, symbol), mapping={k: str(v) for k, v in values.items()})

    # rows ---------------------------------------------------------------------

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

    async def _read_rows(self, key: str, dtype: np.dtype, start_ms: int | None, end_ms: int | None) -> np.ndarray:
        low = "-inf" if start_ms is None else start_ms
        high = "+inf" if end_ms is None else f"({end_ms}"
        members = await self.redis.zrange(key, low, high, byscore=True)
        return unpack_rows(members, dtype)

    async def read_candles(self, exchange: str, symbol: str, start_ms: int | None = None, end_ms: int | None = None) -> np.ndarray:
        """Candles with ``start_ms <= ts < end_ms``, oldest first (CANDLE_DTYPE)."""
        return await self._read_rows(keys.candles(exchange, symbol), CANDLE_DTYPE, start_ms, end_ms)

    async def read_open_interest(self, exchange: str, symbol: str, start_ms: int | None = None, end_ms: int | None = None) -> np.ndarray:
        return await self._read_rows(keys.open_interest(exchange, symbol), OPEN_INTEREST_DTYPE, start_ms, end_ms)

    async def read_liquidations(self, exchange: str, symbol: str, start_ms: int | None = None, end_ms: int | None = None) -> np.ndarray:
        return await self._read_rows(keys.liquidations(exchange, symbol), LIQUIDATION_DTYPE, start_ms, end_ms)

    async def read_liquidations_of(
        self, markets: list[tuple[str, str]], start_ms: int | None = None, end_ms: int | None = None
    ) -> list[np.ndarray]:
        """Realized liquidations with ``start_ms <= ts < end_ms`` of several markets, in one round trip, in their order."""
        low = "-inf" if start_ms is None else start_ms
        high = "+inf" if end_ms is None else f"({end_ms}"
        async with self.redis.pipeline(transaction=False) as pipe:
            for exchange, symbol in markets:
                pipe.zrange(keys.liquidations(exchange, symbol), low, high, byscore=True)
            replies = await pipe.execute()
        return [unpack_rows(members, LIQUIDATION_DTYPE) for members in replies]

    async def first_liquidation_ms(self, markets: list[tuple[str, str]]) -> int | None:
        """Time of the oldest stored liquidation of any of ``markets`` (where their coverage starts), or None."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for exchange, symbol in markets:
                pipe.zrange(keys.liquidations(exchange, symbol), 0, 0, withscores=True)
            replies = await pipe.execute()
        firsts = [int(reply[0][1]) for reply in replies if reply]
        return min(firsts) if firsts else None

    async def candle_span(self, exchange: str, symbol: str) -> tuple[int, int, int] | None:
        """``(first bar ts, last bar ts, bar count)`` of a market's stored candles, or None."""
        key = keys.candles(exchange, symbol)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zrange(key, 0, 0, withscores=True)
            pipe.zrange(key, -1, -1, withscores=True)
            pipe.zcard(key)
            first, last, count = await pipe.execute()
        if not first:
            return None
        return int(first[0][1]), int(last[0][1]), int(count)

    async def last_candle_ts(self, exchange: str, symbol: str) -> int | None:
        newest = await self.redis.zrange(keys.candles(exchange, symbol), 0, 0, desc=True, withscores=True)
        return int(newest[0][1]) if newest else None

    async def trim(self, exchange: str, symbol: str, *, candles_before_ms: int, liquidations_before_ms: int) -> None:
        """Drop inputs older than the retention bounds."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zremrangebyscore(keys.candles(exchange, symbol), "-inf", f"({candles_before_ms}")
            pipe.zremrangebyscore(keys.open_interest(exchange, symbol), "-inf", f"({candles_before_ms}")
            pipe.zremrangebyscore(keys.liquidations(exchange, symbol), "-inf", f"({liquidations_before_ms}")
            await pipe.execute()

    # frames -------------------------------------------------------------------

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

    def frame_channel(self, exchange: str, symbol: str) -> str:
        return keys.frame_channel(exchange, symbol, self.db)

    async def latest_frame_field(self, exchange: str, symbol: str, model: str, range_name: str, field: str) -> bytes | None:
        """One encoded form of the newest frame, decompressed, in one read."""
        stored = await self.redis.hget(keys.frame_latest(exchange, symbol, model, range_name), field)
        return None if stored is None else plain(field, stored)

    async def latest_frame_stored(self, exchange: str, symbol: str, model: str, range_name: str, field: str) -> tuple[str, bytes] | None:
        """``(frame_id, stored bytes)`` of the newest frame (compressed where stored so), in one read."""
        frame_id, body = await self.redis.hmget(keys.frame_latest(exchange, symbol, model, range_name), ["id", field])
        if frame_id is None or body is None:
            return None
        return frame_id.decode(), body

    async def frames_after(self, exchange: str, symbol: str, model: str, range_name: str, frame_id: str) -> list[str]:
        """Ids of frames newer than ``frame_id``, oldest first (all kept frames if it is unknown)."""
        key = keys.frame_history(exchange, symbol, model, range_name)
        score = await self.redis.zscore(key, frame_id)
        low = "-inf" if score is None else f"({int(score)}"
        return [member.decode() for member in await self.redis.zrangebyscore(key, low, "+inf")]

    async def latest_frame(self, exchange: str, symbol: str, model: str, range_name: str) -> StoredFrame | None:
        raw = await self.redis.hgetall(keys.frame_latest(exchange, symbol, model, range_name))
        if not raw:
            return None
        fields = {k.decode(): v for k, v in raw.items()}
        return StoredFrame(frame_id=fields.pop("id").decode(), fields=fields)

    async def frame_ids(self, exchange: str, symbol: str, model: str, range_name: str) -> list[str]:
        """Ids of stored frames, newest first."""
        ids = await self.redis.zrange(keys.frame_history(exchange, symbol, model, range_name), 0, -1, desc=True)
        return [i.decode() for i in ids]

    async def frame_index_page(
        self,
        exchange: str,
        symbol: str,
        model: str,
        range_name: str,
        *,
        newest_ms: int | None,
        oldest_ms: int | None,
        count: int,
    ) -> list[tuple[str, int]]:
        """``(frame_id, data_until_ms)`` newest first with ``oldest_ms <= data_until <= newest_ms``."""
        rows = await self.redis.zrevrangebyscore(
            keys.frame_history(exchange, symbol, model, range_name),
            "+inf" if newest_ms is None else newest_ms,
            "-inf" if oldest_ms is None else oldest_ms,
            start=0,
            num=count,
            withscores=True,
        )
        return [(member.decode(), int(score)) for member, score in rows]

    async def frame_fields(self, exchange: str, symbol: str, frame_ids: list[str], field: str, *, stored: bool = False) -> list[bytes | None]:
        """One field of each of several frames, in one round trip; decompressed unless ``stored``."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for frame_id in frame_ids:
                pipe.hget(keys.frame_blob(exchange, symbol, frame_id), field)
            bodies = await pipe.execute()
        if stored:
            return list(bodies)
        return [None if body is None else plain(field, body) for body in bodies]

    async def frame(self, exchange: str, symbol: str, frame_id: str) -> StoredFrame | None:
        raw = await self.redis.hgetall(keys.frame_blob(exchange, symbol, frame_id))
        if not raw:
            return None
        return StoredFrame(frame_id=frame_id, fields={k.decode(): v for k, v in raw.items()})


def _check_dtype(rows: np.ndarray, dtype: np.dtype, what: str) -> None:
    if rows.dtype != dtype:
        raise ValueError(f"{what} rows must have dtype {dtype}, got {rows.dtype}")
