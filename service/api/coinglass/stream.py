"""Coinglass's liquidation websocket at ``/ws-api``: ``liquidationOrders`` pushed as collectors store events.

Connect to ``/ws-api?cg-api-key=KEY`` (or send the key in ``X-API-Key`` / ``CG-API-KEY``):
the same keys, anonymous access and per-minute limits as HTTP (a connection counts as one
request), and at most ``ws_connections_per_client`` connections open per key (or address)
over every replica. A connection refused is accepted and closed at once with a code saying
why — 4000 + the HTTP status the same request would get (4401, 4429, 4503) — and a reason
in words. Then:

* the text ``ping`` is answered by ``pong``;
* ``{"method": "subscribe", "channels": ["liquidationOrders"]}`` (``unsubscribe`` alike) is
  answered by ``{"method", "channels", "code": "0", "msg": "success"}`` once it holds;
* anything else is answered by the same reply with ``code`` 400 and ``msg`` saying what is
  allowed; the connection stays open;
* subscribed, every batch of liquidations the store's feed carries arrives as
  ``{"channel": "liquidationOrders", "data": [{"baseAsset", "exName", "price", "side",
  "symbol", "time", "volUsd"}]}``, ``side`` 1 = a long liquidated, 2 = a short.

A client that does not read what it is sent is closed (1008) once ``OUTBOX_SIZE`` messages
wait for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from typing import Any

import msgspec
from litestar import WebSocket, websocket
from litestar.exceptions import WebSocketDisconnect
from redis.exceptions import RedisError

from service.store.outage import STORE
from service.api.auth import KEY_HEADERS, client_address, identify, trusted_networks
from service.api.errors import Unauthorized
from service.api.feed import LiquidationFeed
from service.settings import Settings
from service.store.access import Access, ApiKey
from service.wire.coinglass import LIQUIDATION_ORDERS
from service.wire.schemas import CoinglassSocketReply

log = logging.getLogger(__name__)

CHANNELS = (LIQUIDATION_ORDERS,)
METHODS = ("subscribe", "unsubscribe")
# A connection is counted this long unless renewed, and renewed (its key checked again) every third of it.
LAPSE_MS = 60_000
RENEW_S = LAPSE_MS / 3 / 1000
OUTBOX_SIZE = 1_000
# Longest request read; longer ones are answered with an error.
MAX_REQUEST_CHARS = 4_096
# How long a subscription waits for the feed's follower to know where the feed ends (store down).
READY_TIMEOUT_S = 10.0

# Close codes: 4000 + the HTTP status of the same refusal.
UNAUTHORIZED = 4401
TOO_MANY = 4429
STORE_DOWN = 4503
TOO_SLOW = 1008

USAGE = 'send the text ping, or JSON {"method": "subscribe" or "unsubscribe", "channels": ["liquidationOrders"]}'


class SocketRequest(msgspec.Struct):
    """A subscription request; other fields a client adds (an ``id``) are ignored."""

    method: str
    channels: list[str]


_request = msgspec.json.Decoder(SocketRequest)
_reply = msgspec.json.Encoder()


class _Outbox:
    """What waits to be sent on one connection, in order: replies and pushed messages."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[str] = asyncio.Queue(OUTBOX_SIZE)
        self.overflowed = False

    def push(self, message: str) -> None:
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            self.overflowed = True


def _reply_text(method: str | None, channels: list[str], status: int, message: str) -> str:
    code = "0" if status == 200 else str(status)
    return _reply.encode(CoinglassSocketReply(method=method, channels=channels, code=code, msg=message)).decode()


class _Session:
    """One accepted, counted connection."""

    def __init__(self, socket: WebSocket, feed: LiquidationFeed, access: Access, client: str, connection_id: str, key: ApiKey | None) -> None:
        self.socket = socket
        self.feed = feed
        self.access = access
        self.client = client
        self.connection_id = connection_id
        self.key = key
        self.outbox = _Outbox()
        self.close_code: int | None = None
        self.close_reason = ""

    async def run(self) -> None:
        tasks = [asyncio.create_task(self._receive()), asyncio.create_task(self._send())]
        if self.key is not None:
            tasks.append(asyncio.create_task(self._watch_key(self.key.id)))
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.feed.unsubscribe(self.outbox)
            for task in tasks:
                task.cancel()
            for ended in await asyncio.gather(*tasks, return_exceptions=True):
                # The client leaving mid-send is how most connections end; anything else is worth a line.
                if isinstance(ended, Exception) and not isinstance(ended, (WebSocketDisconnect, OSError)):
                    log.warning("websocket connection %s of %s ended on %r", self.connection_id, self.client, ended)
        if self.close_code is not None:
            with contextlib.suppress(WebSocketDisconnect, OSError, RuntimeError):
                await self.socket.close(self.close_code, self.close_reason)

    def _close(self, code: int, reason: str) -> None:
        self.close_code, self.close_reason = code, reason

    async def _receive(self) -> None:
        while True:
            event = await self.socket.receive()
            if event["type"] != "websocket.receive":
                return  # the client left
            text = event.get("text")
            if text is None:
                self.outbox.push(_reply_text(None, [], 400, f"binary messages are not understood: {USAGE}"))
                continue
            await self._handle(text)

    async def _handle(self, text: str) -> None:
        if text.strip().lower() == "ping":
            self.outbox.push("pong")
            return
        if len(text) > MAX_REQUEST_CHARS:
            self.outbox.push(_reply_text(None, [], 400, f"a request is at most {MAX_REQUEST_CHARS} characters: {USAGE}"))
            return
        try:
            request = _request.decode(text)
        except msgspec.DecodeError as exc:
            self.outbox.push(_reply_text(_method_of(text), [], 400, f"not understood ({exc}): {USAGE}"))
            return
        if request.method not in METHODS:
            self.outbox.push(_reply_text(request.method, request.channels, 400, f"method must be subscribe or unsubscribe; got {request.method!r}"))
            return
        unknown = [channel for channel in request.channels if channel not in CHANNELS]
        if unknown or not request.channels:
            got = ", ".join(repr(channel) for channel in unknown) or "none"
            self.outbox.push(_reply_text(request.method, request.channels, 400, f"channels must be a list of {', '.join(CHANNELS)}; got {got}"))
            return
        if request.method == "unsubscribe":
            self.feed.unsubscribe(self.outbox)
        else:
            try:
                await asyncio.wait_for(self.feed.ready.wait(), READY_TIMEOUT_S)
            except TimeoutError:
                self.outbox.push(_reply_text(request.method, request.channels, 503, "the liquidation feed is not available: the data store is unreachable; retry shortly"))
                return
            self.feed.subscribe(self.outbox)
        self.outbox.push(_reply_text(request.method, request.channels, 200, "success"))

    async def _send(self) -> None:
        renew_at = time.monotonic() + RENEW_S
        while True:
            try:
                message = await asyncio.wait_for(self.outbox.queue.get(), max(0.0, renew_at - time.monotonic()))
            except TimeoutError:
                if not await self._renew():
                    return
                renew_at = time.monotonic() + RENEW_S
                continue
            if self.outbox.overflowed:
                self._close(TOO_SLOW, f"too slow: {OUTBOX_SIZE} messages were waiting to be read")
                return
            await self.socket.send_data(message, mode="text")

    async def _watch_key(self, key_id: str) -> None:
        """Return (and close) as soon as the key is heard revoked, not at the next renewal."""
        changed = self.access.watch(key_id)
        try:
            while True:
                await changed.wait()
                changed.clear()
                with contextlib.suppress(RedisError):
                    if not await self.access.key_active(key_id):
                        self._close(UNAUTHORIZED, "the API key has been revoked")
                        return
        finally:
            self.access.unwatch(key_id, changed)

    async def _renew(self) -> bool:
        """Keep the connection counted; False (and the close to send) when its key was revoked meanwhile."""
        try:
            if self.key is not None and not await self.access.key_active(self.key.id):
                self._close(UNAUTHORIZED, "the API key has been revoked")
                return False
            await self.access.renew_connection(self.client, self.connection_id, LAPSE_MS)
        except RedisError as exc:
            STORE.down(exc, "renewing websocket connections")  # the connection goes on; said once per outage
        return True


def _method_of(text: str) -> str | None:
    """The ``method`` of a request that is JSON but not a valid request, to name it in the reply."""
    try:
        value: Any = msgspec.json.decode(text)
    except msgspec.DecodeError:
        return None
    method = value.get("method") if isinstance(value, dict) else None
    return method if isinstance(method, str) else None


def _presented_key(socket: WebSocket) -> str | None:
    key = socket.query_params.get("cg-api-key")
    if key:
        return key
    return next((value.decode(errors="replace") for name, value in socket.scope["headers"] if name in KEY_HEADERS), None)


@websocket("/ws-api", name="coinglassLiquidationStream")
async def liquidation_stream(socket: WebSocket) -> None:
    """Coinglass's liquidation websocket (see the module's documentation)."""
    state = socket.app.state
    settings: Settings = state.settings
    access: Access = state.access
    presented = _presented_key(socket)
    await socket.accept()
    connection_id = secrets.token_hex(8)
    try:
        client, limit, key = await identify(access, settings, presented, client_address(socket.scope, trusted_networks(settings.trusted_proxies)))
        allowance = await access.count(client, limit)
        if not allowance.allowed:
            await socket.close(TOO_MANY, f"rate limit of {limit} requests per minute exceeded; retry in {allowance.retry_after_s} s")
            return
        if await access.open_connection(client, connection_id, settings.ws_connections_per_client, LAPSE_MS) is None:
            await socket.close(TOO_MANY, f"too many connections open: {settings.ws_connections_per_client} allowed per API key (or address)")
            return
    except Unauthorized as exc:
        reason = str(exc) if presented else "an API key is required: connect to /ws-api?cg-api-key=KEY"
        await socket.close(UNAUTHORIZED, reason)
        return
    except RedisError as exc:
        STORE.down(exc, "opening a websocket")
        await socket.close(STORE_DOWN, "the data store is unreachable; retry shortly")
        return
    try:
        await _Session(socket, state.liquidation_feed, access, client, connection_id, key).run()
    finally:
        with contextlib.suppress(RedisError):
            await access.close_connection(client, connection_id)
