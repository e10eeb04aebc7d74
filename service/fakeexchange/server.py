"""The fake venues' servers: REST + WebSocket on 127.0.0.1, with injectable faults.

Each :class:`FakeVenue` listens on its own loopback port and answers the public
endpoints the collectors call, in the venue's exact format. Faults:

* :meth:`FakeVenue.inject` — the next matching requests fail as asked: an HTTP
  status (429/418/403/5xx, with ``Retry-After``), an HTML error page, truncated
  JSON, wrong types, the venue's own rate-limit code in a 200 answer, or an answer
  slower than the client waits (:meth:`FakeVenue.clear_faults` forgets them);
* :meth:`FakeVenue.stop` / :meth:`FakeVenue.start` — the venue is down (connection
  refused), then back on the same port;
* :meth:`FakeVenue.drop_after` — the stream is cut after some messages;
* :meth:`FakeVenue.push` with ``duplicate``/``shuffle`` — repeated and out-of-order events;
* ``scenario`` — a named random mix of the above for trying things by hand (:data:`SCENARIOS`).

While no client is subscribed, stream messages wait in an outbox and go to the next
subscriber (real venues drop them; tests can then assert exact delivery).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import numpy as np
from aiohttp import WSMsgType, web

from service.store import tiers as tier_rows
from service.collect.venues.binance_brackets import default_tiers
from service.store.tiers import Tier
from service.markets import from_okx_instrument, okx_family, okx_instrument
from service.fakeexchange import formats as fmt
from service.fakeexchange.market import FUNDING_RATE, VenueMarket
from service.collect.synthetic import MINUTE_MS, SyntheticMarket, demo_symbols
from service.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")

VENUES = ("binance", "bybit", "okx")
FaultKind = Literal["status", "html", "truncated", "wrong_types", "venue_code", "slow"]
FIVE_MINUTES_MS = 5 * MINUTE_MS
# The fake Bybit's and OKX's own maintenance-margin ladders, (cap USD, rate, max leverage):
# not Binance's, so a test can tell whose tiers reached a frame.
BYBIT_LADDERS = {
    "major": [(2e6, 0.005, 100.0), (4e6, 0.01, 50.0), (6e6, 0.015, 33.33), (8e6, 0.02, 25.0), (10e6, 0.025, 20.0)],
    "other": [(2e5, 0.01, 50.0), (4e5, 0.02, 25.0), (6e5, 0.03, 16.67), (8e5, 0.04, 12.5), (1e6, 0.05, 10.0)],
}
OKX_LADDERS = {
    "major": [(5e5, 0.004, 100.0), (1e6, 0.005, 75.0), (2e6, 0.01, 50.0), (5e6, 0.02, 20.0), (1e7, 0.05, 10.0)],
    "other": [(5e4, 0.01, 50.0), (2e5, 0.015, 20.0), (1e6, 0.03, 10.0), (3e6, 0.05, 5.0)],
}
HTML_PAGE = b"<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1><hr>cloudflare</body></html>"


@dataclass(slots=True)
class Fault:
    """A failure for the next ``count`` requests whose path contains ``path`` (any if None)."""

    kind: FaultKind
    status: int = 429
    retry_after_s: float | None = 1.0
    path: str | None = None
    count: int = 1
    delay_s: float = 0.0  # "slow": the answer comes this much later (past the client's timeout)


@dataclass(frozen=True, slots=True)
class Scenario:
    """A random mix of faults: each REST request fails with probability ``rate`` (kinds drawn evenly)."""

    rate: float = 0.0
    faults: tuple[Fault, ...] = ()
    ws_drop_every: int | None = None
    duplicates: bool = False


SCENARIOS: dict[str, Scenario] = {
    "normal": Scenario(),
    "storm": Scenario(0.5, (Fault("status", 429, 2.0), Fault("status", 418, 5.0))),
    "garbage": Scenario(0.2, (Fault("html", 502), Fault("truncated"), Fault("wrong_types"))),
    "flaky-stream": Scenario(ws_drop_every=25, duplicates=True),
}


@dataclass(eq=False, slots=True)
class _Connection:
    ws: web.WebSocketResponse
    path: str = ""
    topics: set[str] = field(default_factory=set)
    # Symbols whose 1m klines this connection is subscribed to, and when it sent its last messages.
    klines: set[str] = field(default_factory=set)
    sent_at: deque[float] = field(default_factory=deque)
    marks: bool = False  # Binance !markPrice@arr@1s


# Each venue's limits on kline subscriptions, as the fake enforces them: topics per connection,
# topics per subscribe message, bytes per message, messages per second from the client.
KLINE_LIMITS = {
    "binance": {"per_connection": 1024, "per_message": None, "bytes": None, "per_second": 10},
    "bybit": {"per_connection": None, "per_message": 10, "bytes": 21_000, "per_second": None},
    "okx": {"per_connection": None, "per_message": None, "bytes": 64 * 1024, "per_second": None},
}


class FakeVenue:
    """One venue's fake server.

    Parameters
    ----------
    venue : str
        ``binance``, ``bybit`` or ``okx``.
    market : VenueMarket
    clock : callable, optional
        Current time, epoch ms (default: the wall clock). Bars opening after it do not exist yet.
    live : bool
        Stream the market's liquidations as the clock passes them.
    scenario : str
        A key of :data:`SCENARIOS`.
    """

    def __init__(
        self,
        venue: str,
        market: VenueMarket,
        *,
        clock: Callable[[], int] | None = None,
        live: bool = False,
        scenario: str = "normal",
        seed: int = 0,
    ) -> None:
        if venue not in VENUES:
            raise ValueError(f"unknown venue {venue!r}; fake venues: {', '.join(VENUES)}")
        self.venue = venue
        self.market = market
        self.clock = clock or (lambda: int(time.time() * 1000))
        self.live = live
        self.scenario = SCENARIOS[scenario]
        self.port = 0
        self.requests: Counter[str] = Counter()
        self.subscriptions = 0
        self.pings = 0  # application-level pings received (Bybit {"op":"ping"}, OKX "ping")
        self._random = random.Random(seed)
        self._faults: deque[Fault] = deque()
        self._drop_after: int | None = None
        self._connections: set[_Connection] = set()
        self._outbox: list[tuple[str, str]] = []
        self._activity = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self._emitter: asyncio.Task[None] | None = None
        # Listed instruments (a subset of the market's symbols; delist/relist change it), and
        # those listed but not trading.
        self.listed: list[str] = market.symbols()
        self.halted: set[str] = set()
        # Largest page of Bybit's instruments-info (the venue's is 1000; tests lower it).
        self.instruments_page = 1000
        # Kline streams: subscribe messages taken, limits broken (should stay empty), bars sent.
        self.kline_subscribes = 0
        self.kline_violations: list[str] = []
        self.klines_sent = 0
        self.kline_tick_s = 0.01
        self.klines_held = False
        self._klines_until: int | None = None
        self._kline_task: asyncio.Task[None] | None = None

    # --- lifecycle ---------------------------------------------------------------------

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        base = f"ws://127.0.0.1:{self.port}"
        return {
            "binance": f"{base}/market/stream?streams=!forceOrder@arr",
            "bybit": f"{base}/v5/public/linear",
            "okx": f"{base}/ws/v5/public",
        }[self.venue]

    @property
    def kline_ws_url(self) -> str:
        base = f"ws://127.0.0.1:{self.port}"
        return {"binance": f"{base}/market/stream", "bybit": f"{base}/v5/public/linear", "okx": f"{base}/ws/v5/business"}[self.venue]

    def settings_overrides(self) -> dict[str, str]:
        """The Settings fields that point a collector at this venue."""
        out = {f"{self.venue}_rest_url": self.rest_url, f"{self.venue}_ws_url": self.ws_url}
        if self.venue == "binance":
            out["binance_web_url"] = self.rest_url
            out["binance_kline_ws_url"] = self.kline_ws_url
        if self.venue == "okx":
            out["okx_business_ws_url"] = self.kline_ws_url
        return out

    # --- listings ----------------------------------------------------------------------

    def delist(self, symbol: str) -> None:
        self.listed = [s for s in self.listed if s != symbol]

    def relist(self, symbol: str) -> None:
        if symbol not in self.market.symbols():
            raise ValueError(f"{symbol} is not in the fake market")
        if symbol not in self.listed:
            self.listed.append(symbol)

    def trading(self) -> list[str]:
        """Listed and trading: what ``LIQMAP_MARKETS=all`` must pick."""
        return [s for s in self.listed if s not in self.halted]

    def quote_volume(self, symbol: str) -> float:
        return self.market.quote_volume_24h(symbol)

    def kline_connections(self) -> list[int]:
        """Kline subscriptions per open connection (what the venue sees)."""
        return sorted((len(c.klines) for c in self._connections if c.klines), reverse=True)

    async def cut_klines(self, *, hold: bool = False) -> int:
        """Close every kline connection (the venue cuts the streams); returns how many.

        ``hold``: refuse new kline connections until :meth:`resume_klines` (bars close meanwhile).
        """
        self.klines_held = hold
        cut = [c for c in self._connections if c.klines]
        for connection in cut:
            await connection.ws.close()
        return len(cut)

    def resume_klines(self) -> None:
        self.klines_held = False

    def _kline_path(self, request: web.Request) -> bool:
        if self.venue == "binance":
            return "forceOrder" not in request.query_string
        return self.venue == "bybit" or request.path.endswith("/business")

    @property
    def running(self) -> bool:
        return self._runner is not None

    async def start(self) -> None:
        """Listen (again) on the venue's port; the first start picks a free one."""
        if self._runner is not None:
            return
        app = web.Application(middlewares=[self._faults_middleware])
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()
        self.port = int(runner.addresses[0][1])
        self._runner = runner
        if self.live and self._emitter is None:
            self._emitter = asyncio.create_task(self._emit_live(), name=f"fake:{self.venue}:emit")
        if self._kline_task is None:
            self._kline_task = asyncio.create_task(self._emit_klines(), name=f"fake:{self.venue}:klines")

    async def stop(self) -> None:
        """Go down: streams cut, connections refused until :meth:`start`."""
        if self._emitter is not None:
            self._emitter.cancel()
            self._emitter = None
        if self._kline_task is not None:
            self._kline_task.cancel()
            self._kline_task = None
        for connection in list(self._connections):
            await connection.ws.close()
        self._connections.clear()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # --- faults ------------------------------------------------------------------------

    def inject(self, fault: Fault) -> None:
        self._faults.append(fault)

    def clear_faults(self) -> None:
        """Forget the faults injected and not yet served: the venue behaves again."""
        self._faults.clear()

    def drop_after(self, messages: int) -> None:
        """Cut every subscribed stream after ``messages`` more stream messages (once)."""
        self._drop_after = messages

    def _next_fault(self, path: str) -> Fault | None:
        for fault in self._faults:
            if fault.path is None or fault.path in path:
                fault.count -= 1
                if fault.count <= 0:
                    self._faults.remove(fault)
                return fault
        if self.scenario.rate and self._random.random() < self.scenario.rate:
            return self._random.choice(self.scenario.faults)
        return None

    @web.middleware
    async def _faults_middleware(self, request: web.Request, handler: Callable) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await handler(request)
        self.requests[request.path] += 1
        fault = self._next_fault(request.path)
        if fault is None:
            return await handler(request)
        headers = {} if fault.retry_after_s is None else {"Retry-After": str(fault.retry_after_s)}
        if fault.kind == "slow":
            await asyncio.sleep(fault.delay_s)
            return await handler(request)
        if fault.kind == "status":
            return web.Response(status=fault.status, body=self._status_body(fault.status), headers=headers, content_type="application/json")
        if fault.kind == "html":
            return web.Response(status=fault.status, body=HTML_PAGE, content_type="text/html")
        if fault.kind == "venue_code":
            # Binance has no rate-limit code in a 200 answer: its -1003 comes with HTTP 429.
            status = 429 if self.venue == "binance" else 200
            return web.Response(status=status, body=self._rate_code_body(), headers=headers, content_type="application/json")
        normal = await handler(request)
        body = normal.body if isinstance(normal, web.Response) and isinstance(normal.body, bytes) else b""
        if fault.kind == "truncated":
            return web.Response(body=body[: len(body) // 2], content_type="application/json")
        return web.Response(body=fmt.dumps(_wrong_types(json.loads(body))), content_type="application/json")

    def _status_body(self, status: int) -> bytes:
        if self.venue == "binance" and status in (418, 429):
            return b'{"code":-1003,"msg":"Too many requests; current limit of IP is 2400 requests per minute."}'
        if self.venue == "okx" and status == 429:
            return b'{"code":"50011","msg":"Too Many Requests","data":[]}'
        return b'{"error":"access too frequent"}' if status == 403 else b'{"error":"unavailable"}'

    def _rate_code_body(self) -> bytes:
        now = self.clock()
        if self.venue == "bybit":
            return fmt.dumps(fmt.bybit_envelope({}, now, 10006, "Too many visits!"))
        if self.venue == "okx":
            return fmt.dumps(fmt.okx_envelope([], "50011", "Too Many Requests"))
        return b'{"code":-1003,"msg":"Too many requests."}'

    # --- streams -----------------------------------------------------------------------

    async def push(
        self,
        symbol: str,
        events: np.ndarray | list[tuple],
        *,
        duplicate: bool = False,
        shuffle: bool = False,
        coin_margined: bool = False,
    ) -> None:
        """Stream liquidation events (LIQUIDATION_DTYPE rows or tuples) in the venue's format.

        ``duplicate`` sends every message twice, ``shuffle`` in random order;
        ``coin_margined`` (Binance) marks them COIN-M (``st = 2``), which collectors must ignore.
        """
        rows = events.tolist() if isinstance(events, np.ndarray) else list(events)
        messages = [self._stream_message(symbol, [row], coin_margined) for row in rows] if self.venue == "binance" else self._batched(symbol, rows)
        if duplicate or self.scenario.duplicates:
            messages = [m for m in messages for _ in (0, 1)]
        if shuffle or self.scenario.duplicates:
            self._random.shuffle(messages)
        for topic, text in messages:
            await self._deliver(topic, text)

    def _batched(self, symbol: str, rows: list[tuple]) -> list[tuple[str, str]]:
        """Bybit and OKX carry several events per message: a few at a time."""
        return [self._stream_message(symbol, rows[i : i + 3], False) for i in range(0, len(rows), 3)]

    def _stream_message(self, symbol: str, rows: list[tuple], coin_margined: bool) -> tuple[str, str]:
        if self.venue == "binance":
            return "!forceOrder@arr", fmt.dumps(fmt.binance_force_order(symbol, rows[0], usdm=not coin_margined)).decode()
        if self.venue == "bybit":
            return f"allLiquidation.{symbol}", fmt.dumps(fmt.bybit_liquidations(symbol, rows, self.clock())).decode()
        inst = okx_instrument(symbol)
        return "liquidation-orders", fmt.dumps(fmt.okx_liquidations(inst, rows, self.market.contract_value(symbol))).decode()

    async def send_raw(self, text: str, topic: str = "*") -> None:
        """Send any text on the stream (malformed messages, say)."""
        await self._deliver(topic, text)

    async def _deliver(self, topic: str, text: str) -> None:
        # Topic "*" goes to every subscriber of liquidations (kline streams have no topics here).
        targets = [c for c in self._connections if c.topics and (topic == "*" or topic in c.topics or "*" in c.topics)]
        if not targets:
            self._outbox.append((topic, text))
            return
        for connection in targets:
            await self._send(connection, text)

    async def _send(self, connection: _Connection, text: str) -> None:
        if connection.ws.closed:
            return
        await connection.ws.send_str(text)
        if self._drop_after is not None:
            self._drop_after -= 1
            if self._drop_after <= 0:
                self._drop_after = self.scenario.ws_drop_every
                await connection.ws.close()

    async def _subscribe(self, connection: _Connection, topics: set[str]) -> None:
        connection.topics |= topics
        self.subscriptions += 1
        await self._notify()
        waiting, self._outbox = self._outbox, []
        for topic, text in waiting:
            if topic == "*" or topic in connection.topics or "*" in connection.topics:
                await self._send(connection, text)
            else:
                self._outbox.append((topic, text))

    async def wait_subscribed(self, count: int) -> None:
        """Wait until ``count`` subscriptions have been made since start (reconnects count)."""
        await self.wait_until(lambda: self.subscriptions >= count)

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Wait until ``predicate()`` holds, checked after every subscription and ping."""
        async with self._activity:
            await self._activity.wait_for(predicate)

    async def _notify(self) -> None:
        async with self._activity:
            self._activity.notify_all()

    async def _stream_handler(self, request: web.Request) -> web.StreamResponse:
        if self.klines_held and self._kline_path(request):
            return web.Response(status=503, text="kline streams are down")
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        connection = _Connection(ws, request.path)
        self._connections.add(connection)
        if self.venue == "binance" and "streams=" in request.query_string and "forceOrder" not in request.query_string:
            streams = request.query["streams"].split("/")
            connection.marks = any(stream.startswith("!markPrice@arr") for stream in streams)
            await self._kline_subscribe(connection, streams, len(request.query_string))
        if self.scenario.ws_drop_every and self._drop_after is None:
            self._drop_after = self.scenario.ws_drop_every
        try:
            if self.venue == "binance" and "forceOrder" in request.query_string + request.path:
                await self._subscribe(connection, {"!forceOrder@arr"})
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    await self._on_client_text(connection, message.data)
        finally:
            self._connections.discard(connection)
        return ws

    async def _on_client_text(self, connection: _Connection, text: str) -> None:
        if not await self._within_message_rate(connection):
            return
        if self.venue == "okx":
            if text == "ping":
                self.pings += 1
                await self._notify()
                await connection.ws.send_str("pong")
                return
            request = json.loads(text)
            op = request.get("op")
            args = request.get("args", [])
            candles = [arg.get("instId", "") for arg in args if arg.get("channel") == "candle1m"]
            if candles:
                if not connection.path.endswith("/business"):
                    await connection.ws.send_str(json.dumps({"event": "error", "code": "60018", "msg": "Wrong URL or channel:candle1m doesn't exist.", "connId": "fake"}))
                    self.kline_violations.append("okx: candle1m on the public endpoint")
                    return
                symbols = [from_okx_instrument(inst) or inst for inst in candles]
                if op == "subscribe":
                    for arg in args:
                        await connection.ws.send_str(json.dumps({"event": "subscribe", "arg": arg, "connId": "fake"}))
                    await self._kline_subscribe(connection, symbols, len(text), canonical=True)
                elif op == "unsubscribe":
                    connection.klines -= set(symbols)
                    await self._notify()
                return
            if op == "subscribe":
                await connection.ws.send_str(json.dumps({"event": "subscribe", "arg": args[0] if args else {}, "connId": "fake"}))
                if any(arg.get("channel") == "liquidation-orders" for arg in args):
                    await self._subscribe(connection, {"liquidation-orders"})
            return
        if self.venue == "bybit":
            request = json.loads(text)
            op = request.get("op")
            args = request.get("args", [])
            if op == "ping":
                self.pings += 1
                await self._notify()
                await connection.ws.send_str(json.dumps({"success": True, "ret_msg": "pong", "conn_id": "fake", "op": "ping"}))
            elif op in ("subscribe", "unsubscribe"):
                if len(args) > 10:
                    self.kline_violations.append(f"bybit: {len(args)} args in one {op}")
                    await connection.ws.send_str(json.dumps({"success": False, "ret_msg": f"args size >10", "conn_id": "fake", "op": op}))
                    return
                await connection.ws.send_str(json.dumps({"success": True, "ret_msg": "", "conn_id": "fake", "req_id": "", "op": op}))
                klines = [a.removeprefix("kline.1.") for a in args if a.startswith("kline.1.")]
                others = {a for a in args if not a.startswith("kline.1.")}
                if op == "unsubscribe":
                    connection.klines -= set(klines)
                    connection.topics -= others
                    await self._notify()
                    return
                if klines:
                    await self._kline_subscribe(connection, klines, len(text), canonical=True)
                if others:
                    await self._subscribe(connection, others)
            return
        request = json.loads(text)  # Binance: {"method": "SUBSCRIBE", "params": [...], "id": n}
        method, params = request.get("method"), request.get("params", [])
        if method == "SUBSCRIBE":
            await self._kline_subscribe(connection, params, len(text))
            await connection.ws.send_str(json.dumps({"result": None, "id": request.get("id")}))
        elif method == "UNSUBSCRIBE":
            connection.klines -= {p.split("@")[0].upper() for p in params}
            await connection.ws.send_str(json.dumps({"result": None, "id": request.get("id")}))
            await self._notify()

    async def _within_message_rate(self, connection: _Connection) -> bool:
        """Binance closes a connection that sends more than 10 messages in a second."""
        limit = KLINE_LIMITS[self.venue]["per_second"]
        if limit is None:
            return True
        now = time.monotonic()
        connection.sent_at.append(now)
        while connection.sent_at and now - connection.sent_at[0] > 1.0:
            connection.sent_at.popleft()
        if len(connection.sent_at) > limit:
            self.kline_violations.append(f"{self.venue}: {len(connection.sent_at)} messages in a second")
            await connection.ws.close()
            return False
        return True

    async def _kline_subscribe(self, connection: _Connection, topics: list[str], size: int, *, canonical: bool = False) -> None:
        """Subscribe a connection to klines (Binance topics ``btcusdt@kline_1m``), within the venue's limits."""
        limits = KLINE_LIMITS[self.venue]
        symbols = set(topics) if canonical else {t.split("@")[0].upper() for t in topics if t.endswith("@kline_1m")}
        if limits["bytes"] is not None and size > limits["bytes"]:
            self.kline_violations.append(f"{self.venue}: a subscribe message of {size} bytes")
            return
        if limits["per_connection"] is not None and len(connection.klines | symbols) > limits["per_connection"]:
            self.kline_violations.append(f"{self.venue}: {len(connection.klines | symbols)} streams on one connection")
            await connection.ws.send_str(json.dumps({"error": {"code": 2, "msg": "Invalid request: too many streams"}, "id": None}))
            return
        connection.klines |= symbols
        self.kline_subscribes += 1
        await self._notify()

    async def _emit_klines(self) -> None:
        """At every bar close on the clock: each subscribed symbol's closed bar, then its new bar in progress;
        Binance's mark prices of every listed symbol once a second (and at every bar close)."""
        marks_sent = -1.0
        while True:
            await asyncio.sleep(self.kline_tick_s)
            now = self.clock()
            watching = [c for c in self._connections if c.marks]
            if watching and (time.monotonic() - marks_sent >= 1.0 or now - now % MINUTE_MS != self._klines_until):
                marks_sent = time.monotonic()
                listed = list(self.listed)
                marks = await asyncio.to_thread(lambda: {s: self.market.mark_price(s, now) for s in listed})
                text = fmt.dumps(fmt.binance_mark_prices(marks, FUNDING_RATE, self.market.next_funding_ms(now), now)).decode()
                for connection in watching:
                    if not connection.ws.closed:
                        await connection.ws.send_str(text)
            boundary = now - now % MINUTE_MS
            if self._klines_until is None or boundary < self._klines_until:
                self._klines_until = boundary
                continue
            # A clock that jumped ahead: the last few bars, as a venue catching up would.
            for close in range(max(self._klines_until + MINUTE_MS, boundary - 4 * MINUTE_MS), boundary + 1, MINUTE_MS):
                await self._send_klines(close, now)
            if boundary != self._klines_until:
                self._klines_until = boundary
                await self._notify()

    @property
    def klines_closed_ms(self) -> int | None:
        """The last bar close the kline streams have been through (sent, or lost without subscribers)."""
        return self._klines_until

    async def _send_klines(self, close_ms: int, now_ms: int) -> None:
        connections = [c for c in self._connections if c.klines]
        symbols = sorted({s for c in connections for s in c.klines} & self.market.symbols_set())
        if not symbols:
            return
        # The bar that closed and the one that opened, of every symbol (generated off the loop).
        bars = await asyncio.to_thread(lambda: {s: self.market.rows(s, close_ms - MINUTE_MS, close_ms + MINUTE_MS).candles.tolist() for s in symbols})
        for connection in connections:
            for symbol in sorted(connection.klines & bars.keys()):
                for bar in bars[symbol]:
                    if connection.ws.closed:
                        break
                    closed = bar[0] + MINUTE_MS <= close_ms
                    await connection.ws.send_str(self._kline_message(symbol, bar, closed, now_ms))
                    self.klines_sent += closed

    def _kline_message(self, symbol: str, bar: tuple, closed: bool, now_ms: int) -> str:
        if self.venue == "binance":
            return fmt.dumps(fmt.binance_kline(symbol, bar, closed, now_ms)).decode()
        if self.venue == "bybit":
            return fmt.dumps(fmt.bybit_kline(symbol, bar, closed, now_ms)).decode()
        return fmt.dumps(fmt.okx_candle(okx_instrument(symbol), bar, self.market.contract_value(symbol), closed)).decode()

    async def _emit_live(self) -> None:
        """Stream the market's liquidations as the clock passes them (``live`` mode)."""
        emitted_until = self.clock()
        while True:
            await asyncio.sleep(0.5)
            now = self.clock()
            for symbol in self.market.symbols():
                events = self.market.liquidations(symbol, emitted_until, now)
                if len(events):
                    await self.push(symbol, events)
            emitted_until = now

    # --- REST --------------------------------------------------------------------------

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await self._stream_handler(request)
        handler = getattr(self, f"_{self.venue}_rest")
        query = dict(request.query)
        try:
            body = handler(request.path, query)
        except _UnknownSymbol as exc:
            return self._unknown_symbol(str(exc))
        except (KeyError, ValueError) as exc:
            return web.Response(status=400, text=f"bad request: {exc}")
        if body is None:
            return web.Response(status=404, text="not found")
        return web.Response(body=fmt.dumps(body), content_type="application/json")

    def _unknown_symbol(self, symbol: str) -> web.Response:
        if self.venue == "binance":
            return web.Response(status=400, body=b'{"code":-1121,"msg":"Invalid symbol."}', content_type="application/json")
        if self.venue == "bybit":
            return web.Response(body=fmt.dumps(fmt.bybit_envelope({}, self.clock(), 10001, f"params error: symbol invalid {symbol}")), content_type="application/json")
        return web.Response(body=fmt.dumps(fmt.okx_envelope([], "51001", "Instrument ID does not exist")), content_type="application/json")

    def _symbol(self, symbol: str | None) -> str:
        if symbol is None or symbol not in self.market.symbols_set():
            raise _UnknownSymbol(symbol or "")
        return symbol

    def _candles(self, symbol: str, start_ms: int, end_ms: int, limit: int, newest: bool = False) -> np.ndarray:
        """Bars opening in ``[start_ms, end_ms]`` that exist by the clock, ``limit`` of them."""
        now = self.clock()
        end_ms = min(end_ms, now)
        if end_ms < start_ms:
            return self.market.rows(self._symbol(symbol), now, now).candles[:0]
        candles = self.market.rows(symbol, start_ms, end_ms + 1).candles
        candles = candles[(candles["ts_ms"] >= start_ms) & (candles["ts_ms"] <= end_ms)]
        return candles[-limit:] if newest else candles[:limit]

    def _history(self, symbol: str, start_ms: int, end_ms: int, limit: int, step_ms: int = FIVE_MINUTES_MS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Open interest observed at the ``step_ms`` bar closes in ``[start_ms, end_ms]`` that have passed."""
        end_ms = min(end_ms, self.clock())
        first = -(-start_ms // step_ms) * step_ms
        ts = np.arange(first, end_ms + 1, step_ms, dtype=np.int64)[:limit]
        if not len(ts):
            return ts, np.zeros(0), np.zeros(0)
        return ts, self.market.open_interest_at(symbol, ts)["open_interest_usd"], self.market.close_at(symbol, ts)

    def _now_state(self, symbol: str) -> tuple[int, float, float]:
        """(now, open interest USD at the last bar close, mark price)."""
        now = self.clock()
        last_close = np.array([now - now % MINUTE_MS])
        return now, float(self.market.open_interest_at(symbol, last_close)["open_interest_usd"][0]), self.market.mark_price(symbol, now)

    def _prices(self, symbols: list[str]) -> dict[str, float]:
        return {s: self.market.market.profile(s).base_price for s in symbols}

    def _binance_rest(self, path: str, q: dict[str, str]) -> object:
        now = self.clock()
        if path == "/fapi/v1/exchangeInfo":
            return fmt.binance_exchange_info(self.listed, set(self.trading()), now)
        if path == "/fapi/v1/ticker/24hr" and "symbol" not in q:
            return fmt.binance_tickers_24h({s: self.quote_volume(s) for s in self.listed}, self._prices(self.listed), now)
        if path == "/fapi/v1/klines":
            symbol = self._symbol(q.get("symbol"))
            limit = min(int(q.get("limit", 500)), 1500)
            start = int(q.get("startTime", now - limit * MINUTE_MS))
            return fmt.binance_klines(self._candles(symbol, start, int(q.get("endTime", now)), limit))
        if path == "/fapi/v1/openInterest":
            symbol = self._symbol(q.get("symbol"))
            now, oi, mark = self._now_state(symbol)
            return fmt.binance_open_interest(symbol, oi, mark, now)
        if path == "/fapi/v1/premiumIndex":
            symbol = self._symbol(q.get("symbol"))
            return fmt.binance_premium_index(symbol, self.market.mark_price(symbol, now), FUNDING_RATE, self.market.next_funding_ms(now), now)
        if path == "/futures/data/openInterestHist":
            symbol = self._symbol(q.get("symbol"))
            limit = min(int(q.get("limit", 30)), 500)
            ts, oi, close = self._history(symbol, int(q.get("startTime", now - limit * FIVE_MINUTES_MS)), int(q.get("endTime", now)), limit)
            return fmt.binance_open_interest_hist(symbol, ts, oi, close)
        if path == "/futures/data/globalLongShortAccountRatio":
            symbol = self._symbol(q.get("symbol"))
            limit = min(int(q.get("limit", 30)), 500)
            end = min(int(q.get("endTime", now)), now)
            rows = self.market.long_short_at(symbol, int(q.get("startTime", end - limit * FIVE_MINUTES_MS)), end)
            return fmt.binance_account_ratio(symbol, rows[-limit:] if "startTime" not in q else rows[:limit])
        if path == "/bapi/futures/v1/friendly/future/common/brackets":
            return fmt.binance_brackets({s: venue_tiers("binance", s) for s in self.market.symbols()}, now)
        return None

    def _bybit_rest(self, path: str, q: dict[str, str]) -> object:
        now = self.clock()
        if q.get("category") != "linear":
            raise ValueError("category must be linear")
        if path == "/v5/market/instruments-info":
            everything = [*self.listed, *fmt.bybit_extra_instruments()]
            size = min(int(q.get("limit", 500)), 1000, self.instruments_page)
            start = int(q.get("cursor") or 0)
            following = str(start + size) if start + size < len(everything) else ""
            return fmt.bybit_envelope(fmt.bybit_instruments(everything[start : start + size], set(self.trading()), following), now)
        if path == "/v5/market/tickers" and "symbol" not in q:
            return fmt.bybit_envelope(fmt.bybit_ticker_volumes({s: self.quote_volume(s) for s in self.listed}, self._prices(self.listed)), now)
        symbol = self._symbol(q.get("symbol"))
        if path == "/v5/market/kline":
            limit = min(int(q.get("limit", 200)), 1000)
            end = int(q.get("end", now))
            start = int(q.get("start", end - limit * MINUTE_MS))
            return fmt.bybit_envelope(fmt.bybit_klines(symbol, self._candles(symbol, start, end, limit, newest=True)), now)
        if path == "/v5/market/open-interest":
            limit = min(int(q.get("limit", 50)), 200)
            end = int(q.get("endTime", now))
            ts, oi, close = self._history(symbol, int(q.get("startTime", end - limit * FIVE_MINUTES_MS)), end, 10**9)
            ts, oi, close = ts[-limit:], oi[-limit:], close[-limit:]
            return fmt.bybit_envelope(fmt.bybit_open_interest(symbol, ts, oi, close), now)
        if path == "/v5/market/tickers":
            now, oi, mark = self._now_state(symbol)
            return fmt.bybit_envelope(fmt.bybit_ticker(symbol, mark, oi, FUNDING_RATE, self.market.next_funding_ms(now)), now)
        if path == "/v5/market/account-ratio":
            limit = min(int(q.get("limit", 50)), 500)
            end = min(int(q.get("endTime", now)), now)
            rows = self.market.long_short_at(symbol, int(q.get("startTime", end - limit * FIVE_MINUTES_MS)), end)[-limit:]
            return fmt.bybit_envelope(fmt.bybit_account_ratio(symbol, rows), now)
        if path == "/v5/market/risk-limit":
            return fmt.bybit_envelope(fmt.bybit_risk_limits(symbol, venue_tiers("bybit", symbol)), now)
        return None

    def _okx_rest(self, path: str, q: dict[str, str]) -> object:
        now = self.clock()
        if path == "/api/v5/public/instruments":
            values = {okx_instrument(s): self.market.contract_value(s) for s in self.listed}
            return fmt.okx_envelope(fmt.okx_swap_instruments(values, {okx_instrument(s) for s in self.trading()}))
        if path == "/api/v5/market/tickers":
            insts = {okx_instrument(s): s for s in self.listed}
            return fmt.okx_envelope(
                fmt.okx_tickers(
                    {i: self.quote_volume(s) for i, s in insts.items()},
                    {i: self.market.market.profile(s).base_price for i, s in insts.items()},
                    {i: self.market.contract_value(s) for i, s in insts.items()},
                    now,
                )
            )
        if path in ("/api/v5/public/open-interest", "/api/v5/public/mark-price") and "instId" not in q:
            rows: list[object] = []
            for listed in self.listed:
                at, oi, mark = self._now_state(listed)
                inst_id = okx_instrument(listed)
                if path.endswith("open-interest"):
                    rows.append(fmt.okx_open_interest(inst_id, oi, mark, self.market.contract_value(listed), at))
                else:
                    rows.append(fmt.okx_mark_price(inst_id, mark, at))
            return fmt.okx_envelope(rows)
        inst = q.get("instId") or ""
        symbol = self._symbol(from_okx_instrument(inst) or _family_symbol(q.get("instFamily")))
        contract_value = self.market.contract_value(symbol)
        if path in ("/api/v5/market/candles", "/api/v5/market/history-candles"):
            limit = min(int(q.get("limit", 100)), 300 if path.endswith("/candles") else 100)
            after = int(q.get("after", now + MINUTE_MS))  # records earlier than this
            before = int(q.get("before", 0))  # records newer than this
            candles = self._candles(symbol, before + 1, after - 1, limit, newest=True)
            return fmt.okx_envelope(fmt.okx_candles(candles, contract_value, now))
        if path == "/api/v5/rubik/stat/contracts/open-interest-history":
            limit = min(int(q.get("limit", 100)), 100)
            end = int(q.get("end", now))
            ts, oi, close = self._history(symbol, int(q.get("begin", end - limit * FIVE_MINUTES_MS)), end, 10**9)
            ts, oi, close = ts[-limit:], oi[-limit:], close[-limit:]
            return fmt.okx_envelope(fmt.okx_open_interest_history(ts, oi, close, contract_value))
        if path == "/api/v5/rubik/stat/contracts/long-short-account-ratio-contract":
            limit = min(int(q.get("limit", 100)), 100)
            end = min(int(q.get("end", now)), now)
            rows = self.market.long_short_at(symbol, int(q.get("begin", end - limit * FIVE_MINUTES_MS)), end)[-limit:]
            return fmt.okx_envelope(fmt.okx_account_ratio(rows))
        if path == "/api/v5/rubik/stat/taker-volume-contract":
            limit = min(int(q.get("limit", 100)), 100)
            ended = now - now % FIVE_MINUTES_MS - FIVE_MINUTES_MS  # the newest period that has ended
            end = min(int(q.get("end", ended)), ended)
            rows = self.market.taker_at(symbol, int(q.get("begin", end - (limit - 1) * FIVE_MINUTES_MS)), end)[-limit:]
            return fmt.okx_envelope(fmt.okx_taker_volume(rows))
        if path == "/api/v5/public/open-interest":
            now, oi, mark = self._now_state(symbol)
            return fmt.okx_envelope([fmt.okx_open_interest(inst, oi, mark, contract_value, now)])
        if path == "/api/v5/public/mark-price":
            return fmt.okx_envelope([fmt.okx_mark_price(inst, self.market.mark_price(symbol, now), now)])
        if path == "/api/v5/public/funding-rate":
            return fmt.okx_envelope([fmt.okx_funding_rate(inst, FUNDING_RATE, self.market.next_funding_ms(now))])
        if path == "/api/v5/public/position-tiers":
            family = okx_family(symbol)
            return fmt.okx_envelope(fmt.okx_position_tiers(family, venue_tiers("okx", symbol), contract_value, self.market.mark_price(symbol, now)))
        return None


def venue_tiers(venue: str, symbol: str) -> list[Tier]:
    """The maintenance-margin tiers a fake venue publishes for a symbol (Binance: the shipped tables)."""
    if venue == "binance":
        return default_tiers(symbol)
    ladders = BYBIT_LADDERS if venue == "bybit" else OKX_LADDERS
    return tier_rows.from_caps(ladders["major" if symbol in ("BTCUSDT", "ETHUSDT") else "other"])


class _UnknownSymbol(Exception):
    pass


def _family_symbol(family: str | None) -> str | None:
    return None if not family else family.replace("-", "")


def _wrong_types(value: object) -> object:
    """The same document with its first number (or numeric string) inside data replaced by an object."""
    done = False

    def walk(node: object) -> object:
        nonlocal done
        if done:
            return node
        if isinstance(node, dict):
            return {k: (walk(v) if k not in ("code", "retCode", "retMsg", "msg", "time") else v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        if isinstance(node, (int, float)) or (isinstance(node, str) and _numeric(node)):
            done = True
            return {"unexpected": [node]}
        return node

    return walk(value)


def _numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


class FakeExchange:
    """All three fake venues over one synthetic market.

    Parameters
    ----------
    seed : int
        The synthetic market's seed.
    symbols : list of str, optional
        Canonical symbols listed on every venue (default BTCUSDT, ETHUSDT, SOLUSDT).
    instruments : int, optional
        Instead of ``symbols``: this many (BTCUSDT, ETHUSDT, SOLUSDT, then made-up coins).
    clock, live, scenario :
        As for :class:`FakeVenue`.
    """

    def __init__(
        self,
        seed: int = 7,
        symbols: list[str] | None = None,
        *,
        clock: Callable[[], int] | None = None,
        live: bool = False,
        scenario: str = "normal",
        instruments: int | None = None,
    ) -> None:
        specs = None if symbols is None else {s: _base_price(s) for s in symbols}
        if instruments is not None:
            specs = demo_symbols(instruments, seed)
        market = SyntheticMarket(seed, specs, cache_days=12)
        self.venues = {
            venue: FakeVenue(venue, VenueMarket(venue, market), clock=clock, live=live, scenario=scenario, seed=seed + i)
            for i, venue in enumerate(VENUES)
        }

    def __getitem__(self, venue: str) -> FakeVenue:
        return self.venues[venue]

    async def start(self) -> None:
        for venue in self.venues.values():
            await venue.start()

    async def stop(self) -> None:
        for venue in self.venues.values():
            await venue.stop()

    def settings_overrides(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for venue in self.venues.values():
            out.update(venue.settings_overrides())
        return out


def _base_price(symbol: str) -> float:
    from service.collect.synthetic import DEFAULT_PROFILES

    profile = DEFAULT_PROFILES.get(symbol)
    return profile.base_price if profile is not None else 10.0


class ThreadedFakeExchange:
    """A live :class:`FakeExchange` on its own event loop in a thread (see :func:`fake_exchange_thread`)."""

    def __init__(self, exchange: FakeExchange, loop: asyncio.AbstractEventLoop) -> None:
        self.exchange = exchange
        self.loop = loop
        self.overrides = exchange.settings_overrides()

    def call(self, coroutine: Coroutine[Any, Any, T], timeout_s: float = 30.0) -> T:
        """Run ``coroutine`` (a fault, a push, a stop) on the exchange's loop and wait for it."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout_s)


@contextmanager
def fake_exchange_thread(**options: object) -> Iterator[ThreadedFakeExchange]:
    """Run a live :class:`FakeExchange` on its own event loop in a thread; yields it with the Settings overrides."""
    ready = threading.Event()
    state: dict[str, object] = {}
    loop = asyncio.new_event_loop()

    async def main() -> None:
        exchange = FakeExchange(live=True, **options)  # type: ignore[arg-type]
        try:
            await exchange.start()
            state["running"] = ThreadedFakeExchange(exchange, loop)
        except Exception as exc:
            state["error"] = exc
            ready.set()
            return
        stop = asyncio.Event()
        state["stop"] = stop
        ready.set()
        await stop.wait()
        await exchange.stop()

    thread = threading.Thread(target=lambda: loop.run_until_complete(main()), name="fake-exchange", daemon=True)
    thread.start()
    ready.wait()
    if "error" in state:
        raise RuntimeError(f"the fake exchange did not start: {state['error']}")
    try:
        yield state["running"]  # type: ignore[misc]
    finally:
        stop_event = state["stop"]
        loop.call_soon_threadsafe(stop_event.set)  # type: ignore[attr-defined]
        thread.join(timeout=10)


@contextmanager
def fake_exchange_in_thread(**options: object) -> Iterator[dict[str, str]]:
    """Run a live :class:`FakeExchange` on its own event loop in a thread; yields the Settings URL overrides."""
    with fake_exchange_thread(**options) as running:
        yield running.overrides


def listing_options(settings: Settings) -> dict[str, object]:
    """What the fake exchange lists for these settings: LIQMAP_MARKETS's symbols, or (all, top:N)
    ``fake_instruments`` of them."""
    selection = settings.market_selection()
    if selection.from_listing:
        return {"instruments": settings.fake_instruments}
    return {"symbols": list(selection.symbols)}


async def serve_forever(scenario: str = "normal", seed: int = 7, symbols: list[str] | None = None, instruments: int | None = None) -> None:
    """Run a live fake exchange until cancelled; print the settings that point liqmap at it."""
    exchange = FakeExchange(seed, symbols, live=True, scenario=scenario, instruments=instruments)
    await exchange.start()
    try:
        print(f"fake exchange running (scenario {scenario}); point liqmap at it with:", flush=True)
        for name, url in sorted(exchange.settings_overrides().items()):
            print(f"export LIQMAP_{name.upper()}='{url}'", flush=True)
        await asyncio.Event().wait()
    finally:
        await exchange.stop()

