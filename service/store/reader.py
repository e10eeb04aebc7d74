"""The read side of the store: what the API (and the compute code loading inputs) may call.

Nothing here writes. Rows live in time chunks (:mod:`service.store.chunks`): a range read
is one round trip for the chunk index and one for the chunks it needs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError

from service.store import keys
from service.store.client import database_of
from service.store.migrate import current_version
from service.store import chunks
from service.store.chunks import CANDLES, LIQUIDATIONS, OPEN_INTEREST, ChunkInfo, RowKind
from service.store.records import FrameRecord, decode_record
from service.store.rows import LIQUIDATION_DTYPE
from service.store.scripts import lua

log = logging.getLogger(__name__)

# Entries the liquidation feed keeps (about: trimmed as the server finds it cheap); a replica
# that falls this far behind (a store outage) misses the older ones.
LIQUIDATION_FEED_LENGTH = 10_000


@dataclass(frozen=True, slots=True)
class FeedEntry:
    """One entry of the liquidation feed: events of one market stored together, oldest first."""

    id: str
    exchange: str
    symbol: str
    events: np.ndarray  # LIQUIDATION_DTYPE


def feed_entry(exchange: str, symbol: str, events: np.ndarray) -> dict[str, bytes]:
    """The stream fields of a feed entry (the writer's side of :meth:`StoreReader.read_liquidation_feed`)."""
    return {"market": keys.market_id(exchange, symbol).encode(), "rows": np.ascontiguousarray(events, dtype=LIQUIDATION_DTYPE).tobytes()}


def _feed_entry(entry_id: bytes, fields: dict[bytes, bytes]) -> FeedEntry:
    exchange, symbol = keys.split_market_id(fields[b"market"].decode())
    return FeedEntry(entry_id.decode(), exchange, symbol, np.frombuffer(fields[b"rows"], dtype=LIQUIDATION_DTYPE))


class StoreReader:
    """Every read of liqmap data. One per process, around the process's one client."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self.cluster = isinstance(redis, RedisCluster)
        self.db = database_of(redis)
        self._announcements: Redis | None = None
        self._newest_record = redis.register_script(lua("newest_record.lua"))
        self._listeners_closed = False

    async def schema_version(self) -> int:
        return await current_version(self.redis)

    def frame_announcements(self) -> PubSub:
        """A pub/sub connection; subscribe it to :meth:`frame_channel` or ``keys.frame_channels(db)``.

        Listeners hold their connection as long as they listen (an event stream's client for
        as long as it stays), so they come from a pool of their own, not from the commands'
        bounded one. In a cluster every node relays every published message, so one plain
        connection to one node hears them all (patterns included, which a cluster client's
        pub/sub does not route).
        """
        if self._listeners_closed:
            raise RedisError("the store reader's listeners are closed (the process is stopping)")
        if self._announcements is None:
            if self.cluster:
                node = self.redis.get_default_node()  # type: ignore[attr-defined]
                self._announcements = Redis(host=node.host, port=node.port, protocol=3)
            else:
                commands = self.redis.connection_pool
                self._announcements = Redis(connection_pool=ConnectionPool(connection_class=commands.connection_class, **commands.connection_kwargs))
                self._announcements.auto_close_connection_pool = True
        return self._announcements.pubsub()

    async def close_listeners(self) -> None:
        """Close the listeners' connections, for good (the commands' client is closed by its owner)."""
        self._listeners_closed = True
        if self._announcements is not None:
            await self._announcements.aclose()
            self._announcements = None

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

    # rows ---------------------------------------------------------------------

    async def chunk_index(self, kind: RowKind, exchange: str, symbol: str) -> dict[int, ChunkInfo]:
        """``{chunk start: ChunkInfo}`` of one market's rows of one kind."""
        return (await self.chunk_indexes(kind, [(exchange, symbol)]))[0]

    async def chunk_indexes(self, kind: RowKind, markets: list[tuple[str, str]]) -> list[dict[int, ChunkInfo]]:
        """The chunk index of each market, in one round trip."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for exchange, symbol in markets:
                pipe.hgetall(keys.chunk_index(kind.name, exchange, symbol))
            replies = await pipe.execute()
        return [{int(start): chunks.parse_index_value(value) for start, value in raw.items()} for raw in replies]

    async def _chunks(self, kind: RowKind, markets: list[tuple[str, str]], pick: Callable[[list[int]], list[int]]) -> list[np.ndarray]:
        """Per market, the rows of the chunks ``pick`` chooses from its chunk starts, in two round trips."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for exchange, symbol in markets:
                pipe.hkeys(keys.chunk_index(kind.name, exchange, symbol))
            indexes = await pipe.execute()
        wanted = [pick(sorted(int(start) for start in index)) for index in indexes]
        async with self.redis.pipeline(transaction=False) as pipe:
            for (exchange, symbol), starts in zip(markets, wanted):
                for start in starts:
                    pipe.get(keys.chunk(kind.name, exchange, symbol, start))
            stored = iter(await pipe.execute())
        out = []
        for starts in wanted:
            parts = [chunks.decode(next(stored), kind.dtype) for _ in starts]
            out.append(np.concatenate(parts) if parts else np.zeros(0, dtype=kind.dtype))
        return out

    async def read_rows_of(self, kind: RowKind, markets: list[tuple[str, str]], start_ms: int | None = None, end_ms: int | None = None) -> list[np.ndarray]:
        """Rows with ``start_ms <= ts < end_ms`` of several markets, oldest first, in their order."""
        found = await self._chunks(kind, markets, lambda starts: chunks.chunks_between(starts, kind, start_ms, end_ms))
        return [chunks.within(rows, start_ms, end_ms) for rows in found]

    async def read_rows(self, kind: RowKind, exchange: str, symbol: str, start_ms: int | None = None, end_ms: int | None = None) -> np.ndarray:
        return (await self.read_rows_of(kind, [(exchange, symbol)], start_ms, end_ms))[0]

    async def read_candles(self, exchange: str, symbol: str, start_ms: int | None = None, end_ms: int | None = None) -> np.ndarray:
        """Candles with ``start_ms <= ts < end_ms``, oldest first (CANDLE_DTYPE)."""
        return await self.read_rows(CANDLES, exchange, symbol, start_ms, end_ms)

    async def read_open_interest(self, exchange: str, symbol: str, start_ms: int | None = None, end_ms: int | None = None) -> np.ndarray:
        return await self.read_rows(OPEN_INTEREST, exchange, symbol, start_ms, end_ms)

    async def read_liquidations(self, exchange: str, symbol: str, start_ms: int | None = None, end_ms: int | None = None) -> np.ndarray:
        return await self.read_rows(LIQUIDATIONS, exchange, symbol, start_ms, end_ms)

    async def read_liquidations_of(
        self, markets: list[tuple[str, str]], start_ms: int | None = None, end_ms: int | None = None
    ) -> list[np.ndarray]:
        """Realized liquidations with ``start_ms <= ts < end_ms`` of several markets, in their order."""
        return await self.read_rows_of(LIQUIDATIONS, markets, start_ms, end_ms)

    async def first_liquidation_ms(self, markets: list[tuple[str, str]]) -> int | None:
        """Time of the oldest stored liquidation of any of ``markets`` (where their coverage starts), or None."""
        firsts = await self._chunks(LIQUIDATIONS, markets, lambda starts: starts[:1])
        times = [int(rows["ts_ms"][0]) for rows in firsts if len(rows)]
        return min(times) if times else None

    async def first_row_times(self, kind: RowKind, markets: list[tuple[str, str]]) -> list[int | None]:
        """Time of each market's oldest stored row of one kind (None: none), from the chunk indexes, in one round trip."""
        return [min(c.first_ms for c in index.values()) if index else None for index in await self.chunk_indexes(kind, markets)]

    async def newest_rows_of(self, kind: RowKind, markets: list[tuple[str, str]]) -> list[np.ndarray]:
        """The rows of each market's newest chunk of one kind (its newest row last), in two round trips."""
        return await self._chunks(kind, markets, lambda starts: starts[-1:])

    async def candle_spans(self, markets: list[tuple[str, str]]) -> list[tuple[int, int, int] | None]:
        """``(first bar ts, last bar ts, bar count)`` of each market's stored candles (None: none), in one round trip."""
        return [
            (min(c.first_ms for c in index.values()), max(c.last_ms for c in index.values()), sum(c.rows for c in index.values())) if index else None
            for index in await self.chunk_indexes(CANDLES, markets)
        ]

    async def candle_span(self, exchange: str, symbol: str) -> tuple[int, int, int] | None:
        return (await self.candle_spans([(exchange, symbol)]))[0]

    async def market_metas(self, markets: list[tuple[str, str]]) -> list[dict[str, str]]:
        """The metadata of each market, in one round trip."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for exchange, symbol in markets:
                pipe.hgetall(keys.market_meta(exchange, symbol))
            replies = await pipe.execute()
        return [{k.decode(): v.decode() for k, v in raw.items()} for raw in replies]

    async def last_candle_ts(self, exchange: str, symbol: str) -> int | None:
        newest = (await self._chunks(CANDLES, [(exchange, symbol)], lambda starts: starts[-1:]))[0]
        return int(newest["ts_ms"][-1]) if len(newest) else None

    # the liquidation feed ------------------------------------------------------

    async def liquidation_feed_end(self) -> str:
        """Id of the feed's newest entry (``0-0`` while it has none): what comes after it is news."""
        newest = await self.redis.xrevrange(keys.LIQUIDATION_FEED, count=1)
        return newest[0][0].decode() if newest else "0-0"

    async def read_liquidation_feed(self, after: str, *, block_ms: int, count: int) -> tuple[str, list[FeedEntry]]:
        """Feed entries after the id ``after``, oldest first, at most ``count``; waits up to ``block_ms`` for one.

        Returns the id to read on from and the entries; an entry that does not decode is
        skipped (and logged), never read again.
        """
        reply = await self.redis.xread({keys.LIQUIDATION_FEED: after}, count=count, block=block_ms)
        # RESP3: {stream: [[(id, fields), ...]]}; RESP2: [[stream, [(id, fields), ...]]].
        found = [entry for (part,) in reply.values() for entry in part] if isinstance(reply, dict) else [entry for _, part in reply or [] for entry in part]
        entries = []
        for entry_id, fields in found:
            try:
                entries.append(_feed_entry(entry_id, fields))
            except (KeyError, ValueError) as exc:
                log.warning("skipping liquidation feed entry %s that does not decode: %r", entry_id, exc)
        return (found[-1][0].decode() if found else after), entries

    # frames -------------------------------------------------------------------

    def frame_channel(self, exchange: str, symbol: str) -> str:
        return keys.frame_channel(exchange, symbol, self.db)

    async def latest_packed(self, exchange: str, symbol: str, model: str, range_name: str) -> tuple[str, bytes] | None:
        """``(frame_id, stored form)`` of the newest frame of a live range, in one read (None: none yet)."""
        frame_id, packed = await self.redis.hmget(keys.frame_latest(exchange, symbol, model, range_name), ["id", "packed"])
        if frame_id is None or packed is None:
            return None
        return frame_id.decode(), packed

    async def newest_record(self, exchange: str, symbol: str, model: str, range_name: str) -> FrameRecord | None:
        """The record of the newest frame in history (any range), or None; one atomic read, so
        never None while a newer frame replaces the newest."""
        raw = await self._newest_record(keys=[keys.frame_history(exchange, symbol, model, range_name), keys.frame_records(exchange, symbol, model, range_name)])
        return None if raw is None else decode_record(raw)

    async def records(self, exchange: str, symbol: str, model: str, range_name: str, frame_ids: list[str]) -> list[FrameRecord | None]:
        """The records of frames in history, in the order asked (None where an id is not listed)."""
        if not frame_ids:
            return []
        raw = await self.redis.hmget(keys.frame_records(exchange, symbol, model, range_name), frame_ids)
        return [None if value is None else decode_record(value) for value in raw]

    async def frames_after(self, exchange: str, symbol: str, model: str, range_name: str, frame_id: str) -> list[str]:
        """Ids of frames newer than ``frame_id``, oldest first (all kept frames if it is unknown)."""
        key = keys.frame_history(exchange, symbol, model, range_name)
        score = await self.redis.zscore(key, frame_id)
        low = "-inf" if score is None else f"({int(score)}"
        return [member.decode() for member in await self.redis.zrangebyscore(key, low, "+inf")]

    async def frame_ids(self, exchange: str, symbol: str, model: str, range_name: str) -> list[str]:
        """Ids of frames in history, newest first."""
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

