"""A WebSocket subscription that stays up: heartbeats, reconnects with jittered back-off, resubscribes."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import aiohttp

log = logging.getLogger(__name__)


async def cancel(task: asyncio.Task[None] | None) -> None:
    """Cancel a background task and wait until it has ended.

    Cancelled again every second until it has: a cancellation that arrives just as a timeout
    fires inside library code (connecting, say) can be swallowed, and the task would go on.
    """
    if task is None:
        return
    while not task.done():
        task.cancel()
        await asyncio.wait([task], timeout=1.0)
    if not task.cancelled():
        task.result()  # its own failure, if any, as before


@dataclass(frozen=True, slots=True)
class WsPolicy:
    """Timing of one venue's WebSocket session, seconds.

    Attributes
    ----------
    ping_interval_s : float
        How often to send the venue's application-level ping (Bybit ``{"op":"ping"}``
        every 20 s, OKX text ``ping`` under its 30 s idle cut-off); also the period of
        WebSocket protocol pings that detect a dead connection.
    idle_timeout_s : float
        Reconnect when nothing at all arrived for this long (venues with an application
        ping, which answer it; a venue that pings us may be quiet for long, and its
        connection is watched by the protocol pings alone).
    backoff_base_s, backoff_max_s : float
        Reconnect delays: uniformly random in ``[0, min(max, base · 2**failures)]``.
    """

    ping_interval_s: float = 20.0
    idle_timeout_s: float = 90.0
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0


@dataclass(slots=True)
class WsStats:
    connects: int = 0
    disconnects: int = 0
    messages: int = 0


class WsFeed:
    """Keeps one subscription alive and hands every text message to ``on_message``.

    Parameters
    ----------
    venue : str
    url : str
    subscribe : sequence of str
        Text frames sent after every (re)connect, at most one per ``send_interval_s``
        (venues limit the messages a client sends: Binance 10 per second per connection).
    app_ping : str or None
        Text frame sent every ``policy.ping_interval_s`` (None: the venue pings us).
    on_message : callable
        Called with each text message; must not raise (it is guarded anyway).
    session : callable
        Returns the aiohttp session to connect with.
    """

    def __init__(
        self,
        venue: str,
        url: str,
        subscribe: Sequence[str],
        app_ping: str | None,
        on_message: Callable[[str], None],
        session: Callable[[], aiohttp.ClientSession],
        policy: WsPolicy,
        send_interval_s: float = 0.0,
    ) -> None:
        self.venue = venue
        self.url = url
        self.subscribe = list(subscribe)
        self.app_ping = app_ping
        self.on_message = on_message
        self.session = session
        self.policy = policy
        self.send_interval_s = send_interval_s
        self.stats = WsStats()
        self.connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # Frames waiting to go out on the live connection (None while there is none).
        self._outbox: deque[str] | None = None

    def update(self, subscribe: Sequence[str], now: Sequence[str] = ()) -> None:
        """Subscribe with ``subscribe`` from the next (re)connect on; send ``now`` on the live connection.

        ``now`` are the changes (subscribe/unsubscribe frames) that take the live connection
        from the old subscription to the new one; without a live connection the next connect
        sends ``subscribe`` whole.
        """
        self.subscribe = list(subscribe)
        if self._outbox is not None and now:
            self._outbox.extend(now)

    @property
    def pending(self) -> int:
        """Frames not sent yet on the live connection."""
        return len(self._outbox) if self._outbox is not None else len(self.subscribe)

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name=f"ws:{self.venue}")

    async def stop(self) -> None:
        await cancel(self._task)
        self._task = None
        self.connected.clear()

    async def _run(self) -> None:
        failures = 0
        while True:
            received = False
            try:
                received = await self._session_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any failure of one session ends in a reconnect
                log.warning("%s websocket %s: %s: %s", self.venue, self.url, type(exc).__name__, exc)
            self.connected.clear()
            self.stats.disconnects += 1
            failures = 0 if received else failures + 1
            ceiling = min(self.policy.backoff_max_s, self.policy.backoff_base_s * 2 ** min(failures, 16))
            await asyncio.sleep(random.uniform(0.0, ceiling))

    async def _session_once(self) -> bool:
        """One connection's life; returns whether any data arrived on it."""
        async with self.session().ws_connect(
            self.url,
            heartbeat=self.policy.ping_interval_s,
            autoping=True,
            timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=5.0),
        ) as ws:
            self._outbox = deque(self.subscribe)
            try:
                return await self._live(ws)
            finally:
                self._outbox = None

    async def _live(self, ws: aiohttp.ClientWebSocketResponse) -> bool:
        """Send what is due, hand over what arrives, until the connection ends; returns whether data came."""
        received = False
        self.stats.connects += 1
        self.connected.set()
        log.info("%s websocket connected: %s", self.venue, self.url)
        last_ping = last_data = time.monotonic()
        last_sent = -1e9
        outbox = self._outbox
        assert outbox is not None
        while True:
            now = time.monotonic()
            if outbox and now - last_sent >= self.send_interval_s:
                await ws.send_str(outbox.popleft())
                last_sent = now
                continue
            if self.app_ping is not None and now - last_ping >= self.policy.ping_interval_s:
                await ws.send_str(self.app_ping)
                last_ping = now
            wait = self.policy.ping_interval_s
            if self.app_ping is not None:
                if now - last_data >= self.policy.idle_timeout_s:
                    log.warning("%s websocket silent for %.0f s; reconnecting", self.venue, now - last_data)
                    return received
                wait = min(self.policy.idle_timeout_s - (now - last_data), self.policy.ping_interval_s - (now - last_ping))
            # Frames queued meanwhile (a changed subscription) go out within a quarter second.
            wait = min(wait, self.send_interval_s - (now - last_sent) if outbox else 0.25)
            try:
                message = await ws.receive(timeout=max(wait, 0.01))
            except TimeoutError:
                continue
            if message.type == aiohttp.WSMsgType.TEXT:
                last_data = time.monotonic()
                received = True
                self.stats.messages += 1
                try:
                    self.on_message(message.data)
                except Exception:
                    log.exception("%s websocket handler failed on a message", self.venue)
            elif message.type == aiohttp.WSMsgType.BINARY:
                last_data = time.monotonic()
            elif message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                log.warning("%s websocket closed by the venue (%s)", self.venue, message.type.name)
                return received
