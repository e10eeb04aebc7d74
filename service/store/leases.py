"""Collect replicas split the markets between them with leases on shards.

Every market falls in one of ``shards`` shards (a hash of its id). A replica collects the
markets of the shards it holds a lease on: ``SET shard owner NX PX ttl`` to take one, a
compare-and-set on the owner to renew or release it (Lua). Replicas announce themselves in a
sorted set scored by when their announcement expires; each aims for its fair share
(``ceil(shards / live replicas)``): it takes free shards up to it and lets go of shards beyond
it, so a new replica gets work and a dead one's shards are taken over once its leases expire
(within ``ttl``). All keys share the hash tag ``{leases}``.
"""

from __future__ import annotations

import hashlib
import math

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from service.store import keys
from service.store.scripts import lua


def shard_of(market_id: str, shards: int) -> int:
    # A cryptographic hash spreads similar names (ABCUSDT, ABDUSDT) evenly; CRC-32 does not.
    return int.from_bytes(hashlib.blake2b(market_id.encode(), digest_size=8).digest(), "big") % shards


class Leases:
    """The shards one collect replica holds."""

    def __init__(self, redis: Redis, owner: str, *, shards: int = 16, ttl_ms: int = 15_000) -> None:
        self.redis = redis
        self.owner = owner
        self.shards = shards
        self.ttl_ms = ttl_ms
        self.held: set[int] = set()
        self._renew: AsyncScript = redis.register_script(lua("renew_lease.lua"))
        self._release: AsyncScript = redis.register_script(lua("release_lease.lua"))

    def owns(self, exchange: str, symbol: str) -> bool:
        """Whether this replica held the market's shard at its last heartbeat."""
        return shard_of(keys.market_id(exchange, symbol), self.shards) in self.held

    async def still_holds(self, exchange: str, symbol: str) -> bool:
        """Whether this replica holds the market's shard now (checked in the store before a write)."""
        shard = shard_of(keys.market_id(exchange, symbol), self.shards)
        return shard in self.held and await self.redis.get(keys.lease(shard)) == self.owner.encode()

    async def heartbeat(self, now_ms: int) -> set[int]:
        """Announce this replica, keep and take shards up to its fair share, let go of the rest; returns what it holds."""
        members = keys.LEASE_MEMBERS
        await self.redis.zadd(members, {self.owner: now_ms + self.ttl_ms})
        await self.redis.zremrangebyscore(members, "-inf", now_ms)
        replicas = max(1, int(await self.redis.zcard(members)))
        share = math.ceil(self.shards / replicas)
        held: set[int] = set()
        for shard in sorted(self.held):
            if len(held) < share and await self._renew(keys=[keys.lease(shard)], args=[self.owner, self.ttl_ms]):
                held.add(shard)
        for shard in sorted(self.held - held):
            await self._release(keys=[keys.lease(shard)], args=[self.owner])
        # Start where this replica's name points, so that replicas starting together spread out.
        start = shard_of(self.owner, self.shards)
        for offset in range(self.shards):
            if len(held) >= share:
                break
            shard = (start + offset) % self.shards
            if shard not in held and await self.redis.set(keys.lease(shard), self.owner, nx=True, px=self.ttl_ms):
                held.add(shard)
        self.held = held
        return held

    async def release_all(self) -> None:
        for shard in sorted(self.held):
            await self._release(keys=[keys.lease(shard)], args=[self.owner])
        self.held = set()
        await self.redis.zrem(keys.LEASE_MEMBERS, self.owner)

    async def holders(self) -> dict[int, str]:
        """Who holds each shard now (shards without a holder are left out)."""
        values = await self.redis.mget([keys.lease(shard) for shard in range(self.shards)])
        return {shard: value.decode() for shard, value in enumerate(values) if value is not None}
