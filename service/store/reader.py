"""The read side of the store: what the API (and the compute code loading inputs) may call.

Nothing here writes. Rows are fixed-width packed members of per-market sorted sets scored
by timestamp, so a range read is one ``ZRANGE ... BYSCORE`` and one ``numpy.frombuffer``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from service.store import keys
from service.store.migrate import current_version
from service.store.rows import CANDLE_DTYPE, LIQUIDATION_DTYPE, OPEN_INTEREST_DTYPE, unpack_rows
from service.wire.codec import plain


@dataclass(frozen=True, slots=True)
class StoredFrame:
    """What the store gives back for one frame: its id and encoded forms."""

    frame_id: str
    fields: dict[str, bytes]


class StoreReader:
    """Every read of liqmap data. One per process, around the process's one client."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self.db = int(redis.connection_pool.connection_kwargs.get("db", 0) or 0)

    async def schema_version(self) -> int:
        return await current_version(self.redis)

    def frame_announcements(self) -> PubSub:
        """A pub/sub connection; subscribe it to :meth:`frame_channel` or ``keys.frame_channels(db)``."""
        return self.redis.pubsub()

    async def ping(self) -> bool:
        return bool(await self.redis.ping())

    async def markets(self) -> list[tuple[str, str]]:
        members = await self.redis.smembers(keys.MARKETS)
        return sorted(keys.split_market_id(m.decode()) for m in members)

    async def has_market(self, exchange: str, symbol: str) -> bool:
        return bool(await self.redis.sismember(keys.MARKETS, keys.market_id(exchange, symbol)))

    async def market_meta(self, exchange: str, symbol: str) -> dict[str, str]:
        raw = await self.redis.hgetall(keys.market_meta(exchange, symbol))
        return {k.decode(): v.decode() for k, v in raw.items()}

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
