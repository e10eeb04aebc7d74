"""The store's liquidation feed as one API process serves it: one follower, fanning out to ``/ws-api`` connections.

Collectors put every liquidation they store on the feed (a capped stream in the store,
:meth:`service.store.reader.StoreReader.read_liquidation_feed`); every API replica follows
it on its own, so a client gets the same events whichever replica it is connected to.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from redis.exceptions import RedisError

from service.store.outage import STORE
from service.store.reader import StoreReader
from service.wire.coinglass import liquidation_push

log = logging.getLogger(__name__)

# How long one read waits for news (below the store client's socket timeout), and how many
# entries it takes at most.
BLOCK_MS = 5_000
READ_COUNT = 500


class Subscriber(Protocol):
    def push(self, message: str) -> None:
        """Take one message; must not block (a subscriber that cannot keep up deals with it itself)."""


class LiquidationFeed:
    """Follows the store's liquidation feed from where it ends at start, and hands every batch read,
    encoded once as Coinglass's ``liquidationOrders`` message, to each subscriber."""

    def __init__(self, store: StoreReader) -> None:
        self.store = store
        self._subscribers: set[Subscriber] = set()
        # Set once the follower knows where the feed ends: every event stored after it is pushed.
        self.ready = asyncio.Event()
        self._stopping = False

    def stop(self) -> None:
        """Make :meth:`follow` return after the read under way (at most ``BLOCK_MS``): the store client
        can swallow a cancellation that lands while it reads, so shutdown does not rely on it alone."""
        self._stopping = True

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.add(subscriber)

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.discard(subscriber)

    def subscribed(self, subscriber: Subscriber) -> bool:
        return subscriber in self._subscribers

    async def follow(self) -> None:
        """Read the feed until stopped (or cancelled); after a store outage, go on from the last entry read
        (entries trimmed meanwhile, beyond the feed's length, are missed)."""
        cursor: str | None = None
        while not self._stopping:
            try:
                if cursor is None:
                    cursor = await self.store.liquidation_feed_end()
                    self.ready.set()
                cursor, entries = await self.store.read_liquidation_feed(cursor, block_ms=BLOCK_MS, count=READ_COUNT)
            except RedisError as exc:
                # Read on from the last entry once the store answers; said once per outage.
                STORE.down(exc, "following the liquidation feed")
                await asyncio.sleep(1.0)
                continue
            if entries and self._subscribers:
                message = liquidation_push([(entry.exchange, entry.symbol, entry.events) for entry in entries]).decode()
                for subscriber in list(self._subscribers):
                    subscriber.push(message)
