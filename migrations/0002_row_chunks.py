"""Rows move from per-market sorted sets (about 100 bytes of overhead a row) into time chunks."""

from __future__ import annotations

from redis.asyncio import Redis

from service.store import keys
from service.store.chunks import CANDLES, LIQUIDATIONS, OPEN_INTEREST
from service.store.rows import unpack_rows
from service.store.writer import Store

VERSION = 2
DESCRIPTION = "candles, open interest and liquidations in time chunks (a day, an hour), compressed behind the newest"

# Rows read from a sorted set at a time.
BATCH = 50_000


async def up(redis: Redis) -> None:
    store = Store(redis)
    for exchange, symbol in await store.markets():
        for kind in (CANDLES, OPEN_INTEREST, LIQUIDATIONS):
            legacy = keys.legacy_rows(kind.name, exchange, symbol)
            start = 0
            while members := await redis.zrange(legacy, start, start + BATCH - 1):
                await store.upsert_rows(kind, exchange, symbol, unpack_rows(members, kind.dtype))
                start += BATCH
            await redis.delete(legacy)
