"""Per-symbol stream topics (klines) packed on as few WebSocket connections as a venue allows.

A venue caps the topics of one connection and of one subscribe message, and the messages a
client sends per second. :class:`SymbolStreams` keeps a set of symbols subscribed within
those caps: a symbol keeps its connection while it stays in the set; symbols that leave are
unsubscribed on their live connection, new ones fill connections that have room (subscribed
on the live connection), then new connections. A connection left empty is closed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import aiohttp

from service.collect.venues.ws import WsFeed, WsPolicy


@dataclass(frozen=True, slots=True)
class StreamLimits:
    """What one venue allows a client on one connection.

    Attributes
    ----------
    topics_per_connection : int
        Topics (streams, channels) one connection may hold.
    topics_per_message : int
        Topics in one subscribe or unsubscribe message.
    message_interval_s : float
        Pause between two messages the client sends on one connection.
    """

    topics_per_connection: int
    topics_per_message: int
    message_interval_s: float


# Topics of one symbol, and the frames that (un)subscribe a list of topics.
Topics = Callable[[str], list[str]]
Frames = Callable[[list[str], bool], list[str]]


def chunked(items: list[str], size: int) -> list[list[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


@dataclass(eq=False, slots=True)
class _Connection:
    feed: WsFeed
    symbols: list[str] = field(default_factory=list)
    topics: int = 0


class SymbolStreams:
    """One venue's per-symbol topics over connections within its :class:`StreamLimits`.

    Parameters
    ----------
    venue, url : str
    limits : StreamLimits
    topics : callable
        The topics of one symbol (e.g. ``["btcusdt@kline_1m"]``).
    frames : callable
        ``frames(topics, subscribe)``: the text frames that (un)subscribe ``topics``, each
        within ``limits.topics_per_message``.
    app_ping, on_message, session, policy :
        As for :class:`~service.collect.venues.ws.WsFeed`.
    """

    def __init__(
        self,
        venue: str,
        url: str,
        limits: StreamLimits,
        topics: Topics,
        frames: Frames,
        app_ping: str | None,
        on_message: Callable[[str], None],
        session: Callable[[], aiohttp.ClientSession],
        policy: WsPolicy,
    ) -> None:
        self.venue = venue
        self.url = url
        self.limits = limits
        self.topics = topics
        self.frames = frames
        self.app_ping = app_ping
        self.on_message = on_message
        self.session = session
        self.policy = policy
        self.connections: list[_Connection] = []
        self._where: dict[str, _Connection] = {}
        self._closing: list[WsFeed] = []

    @property
    def symbols(self) -> set[str]:
        return set(self._where)

    def follows(self, symbol: str) -> bool:
        return symbol in self._where

    def connected(self, symbol: str) -> bool:
        """Whether the symbol's connection is up (its bars are arriving, or will after subscribing)."""
        connection = self._where.get(symbol)
        return connection is not None and connection.feed.connected.is_set()

    def set_symbols(self, symbols: Iterable[str]) -> None:
        """Subscribe exactly ``symbols`` from now on (changes only what changed)."""
        wanted = list(dict.fromkeys(symbols))
        wanted_set = set(wanted)
        gone: dict[int, list[str]] = {}
        for symbol in [s for s in self._where if s not in wanted_set]:
            connection = self._where.pop(symbol)
            connection.symbols.remove(symbol)
            gone.setdefault(id(connection), []).append(symbol)
        added: dict[int, list[str]] = {}
        for symbol in wanted:
            if symbol in self._where:
                continue
            size = len(self.topics(symbol))
            connection = next((c for c in self.connections if c.topics + size <= self.limits.topics_per_connection), None)
            if connection is None:
                connection = self._open()
            connection.symbols.append(symbol)
            connection.topics += size
            self._where[symbol] = connection
            added.setdefault(id(connection), []).append(symbol)
        for connection in list(self.connections):
            removed, new = gone.get(id(connection), []), added.get(id(connection), [])
            if not removed and not new:
                continue
            connection.topics = sum(len(self.topics(s)) for s in connection.symbols)
            if not connection.symbols:
                self.connections.remove(connection)
                connection.feed.update([])
                self._closing.append(connection.feed)
                continue
            changes = self.frames(self._topics_of(removed), False) if removed else []
            changes += self.frames(self._topics_of(new), True) if new else []
            connection.feed.update(self.frames(self._topics_of(connection.symbols), True), changes)
            connection.feed.start()

    def _topics_of(self, symbols: list[str]) -> list[str]:
        return [topic for symbol in symbols for topic in self.topics(symbol)]

    def _open(self) -> _Connection:
        feed = WsFeed(self.venue, self.url, [], self.app_ping, self.on_message, self.session, self.policy, self.limits.message_interval_s)
        connection = _Connection(feed)
        self.connections.append(connection)
        return connection

    async def reap(self) -> None:
        """Close connections left without symbols."""
        closing, self._closing = self._closing, []
        for feed in closing:
            await feed.stop()

    async def stop(self) -> None:
        for connection in self.connections:
            await connection.feed.stop()
        self.connections.clear()
        self._where.clear()
        await self.reap()

    def subscribed(self) -> list[int]:
        """Topics per connection, in connection order."""
        return [connection.topics for connection in self.connections]
