"""Initial layout: record the packed row formats the store writes."""

from __future__ import annotations

import json

from redis.asyncio import Redis

from service.store import keys
from service.store.rows import CANDLE_DTYPE, LIQUIDATION_DTYPE, OPEN_INTEREST_DTYPE

VERSION = 1
DESCRIPTION = "initial layout: per-market sorted sets of packed rows, frame blobs, history and latest"

LAYOUT_KEY = f"{keys.PREFIX}:layout"


async def up(redis: Redis) -> None:
    await redis.hset(
        LAYOUT_KEY,
        mapping={
            "candle_row": json.dumps(CANDLE_DTYPE.descr),
            "open_interest_row": json.dumps(OPEN_INTEREST_DTYPE.descr),
            "liquidation_row": json.dumps(LIQUIDATION_DTYPE.descr),
        },
    )
