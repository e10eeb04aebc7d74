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

# Key segments of schema 2's frame keys, after the market's hash tag.
OLD_FRAME_KEYS = (":frame:", ":frames:", ":latest:")


async def up(redis: Redis) -> None:
    for member in await redis.smembers(keys.MARKETS):
        exchange, symbol = keys.split_market_id(member.decode())
        prefix = keys.market_meta(exchange, symbol).removesuffix("meta")
        doomed = [key async for key in redis.scan_iter(match=f"{_glob(prefix)}*", count=1000) if any(part in key.decode()[len(prefix) - 1 :] for part in OLD_FRAME_KEYS)]
        for start in range(0, len(doomed), 500):
            await redis.delete(*doomed[start : start + 500])


def _glob(text: str) -> str:
    """``text`` as a literal in a SCAN pattern (hash tags hold braces; ``[`` ``*`` ``?`` would be wild)."""
    return "".join(f"\\{char}" if char in "[]*?\\" else char for char in text)
