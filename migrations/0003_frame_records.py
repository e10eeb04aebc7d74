"""Frames: history keeps a record per frame (built again on request), the latest of live ranges one packed form.

Schema 2 kept every encoded form of every frame in history (about 230 KB a frame). The new
layout cannot be made from those, and frames are functions of their inputs: the old frame
keys go, and the next refresh of each market records its frames anew.
"""

from __future__ import annotations

from redis.asyncio import Redis

from service.store import keys

VERSION = 3
DESCRIPTION = "frame history as records, latest frames of live ranges packed; old frame keys removed (rebuilt by the next refresh)"



async def up(redis: Redis) -> None:
    for member in await redis.smembers(keys.MARKETS):
        exchange, symbol = keys.split_market_id(member.decode())
        prefix = keys.market_meta(exchange, symbol).removesuffix("meta")
        doomed = []
        async for raw in redis.scan_iter(match=f"{_glob(prefix)}*", count=1000):
            key = raw.decode()
            rest = key[len(prefix) :]
            if rest.startswith("frame:"):  # an encoded frame
                doomed.append(key)
            elif rest.startswith("latest:") and not await redis.hexists(key, "packed"):  # a latest copy of every encoding
                doomed.append(key)
            elif rest.startswith("frames:") and not await redis.exists(prefix + "records:" + rest.removeprefix("frames:")):  # history of ids of those
                doomed.append(key)
        for start in range(0, len(doomed), 500):
            await redis.delete(*doomed[start : start + 500])


def _glob(text: str) -> str:
    """``text`` as a literal in a SCAN pattern (hash tags hold braces; ``[`` ``*`` ``?`` would be wild)."""
    return "".join(f"\\{char}" if char in "[]*?\\" else char for char in text)
