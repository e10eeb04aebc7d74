"""API keys and per-client rate limits, shared by every API replica through the store."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

import msgspec

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from service.store import keys
from service.store.client import database_of
from service.store.outage import STORE, is_store_error
from service.store.scripts import lua

log = logging.getLogger(__name__)

KEY_PREFIX = "lm_"
WINDOW_MS = 60_000
# Far from its limit a client's requests are counted in memory and added to the shared
# counter at most this long after; close to it every request is counted in the store at once.
FLUSH_INTERVAL_S = 0.05
# A key record read from the store is kept this long, and only by a process that hears key
# changes (revocations are published): it is dropped the moment its key changes, so a
# revocation takes effect on every replica at once. Not hearing them (store outage, CLI,
# tests): nothing is kept, every check reads the store.
RECORD_TTL_S = 5.0
# How long one wait for a key change lasts before the listener checks whether to stop, seconds.
HEAR_POLL_S = 1.0
# At most this many key records (known or not) are kept; beyond, all are dropped and read again.
MAX_RECORDS = 10_000


class ApiKey(msgspec.Struct, kw_only=True, frozen=True):
    id: str
    name: str
    limit_per_min: int
    created_ms: int
    secret_sha256: str
    revoked_ms: int | None = None


def exact_margin(limit: int) -> int:
    """How close to its limit a client is counted exactly: 10 % of it, and never fewer than 50 requests."""
    return max(limit // 10, 50)


@dataclass(slots=True)
class _Window:
    """One client's count in one window: the shared total last seen, and requests not yet added to it."""

    start_ms: int
    known: int = 0
    pending: int = 0
    synced: bool = False  # known has been read from the store in this window


@dataclass(frozen=True, slots=True)
class Allowance:
    """The outcome of counting one request against a client's per-minute limit."""

    limit: int
    used: int
    retry_after_s: int

    @property
    def allowed(self) -> bool:
        return self.used <= self.limit


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_key(presented: str) -> tuple[str, str] | None:
    """``(key id, secret)`` of a well-formed key, else None."""
    if not presented.startswith(KEY_PREFIX):
        return None
    key_id, sep, secret = presented[len(KEY_PREFIX) :].partition("_")
    if not sep or len(key_id) != 8 or not secret:
        return None
    return key_id, secret


class Access:
    """Key management and checks. One per process."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._count = redis.register_script(lua("rate_limit.lua"))
        self._open_connection = redis.register_script(lua("open_connection.lua"))
        self.db = database_of(redis)
        self._records: dict[str, tuple[float, ApiKey | None]] = {}
        self._hearing = False  # subscribed to key changes: records may be kept
        self._stopping = False
        self._watchers: dict[str, set[asyncio.Event]] = {}  # long-lived connections per key id
        self._changes = 0  # key changes heard: a record read across one is not kept
        self._windows: dict[str, _Window] = {}
        self._flush_task: asyncio.Task[None] | None = None

    async def create(self, name: str, limit_per_min: int) -> tuple[ApiKey, str]:
        """A new key; the returned plain key is shown once and never stored."""
        if limit_per_min < 1:
            raise ValueError("limit must be at least 1 request per minute")
        key_id = secrets.token_hex(4)
        secret = secrets.token_urlsafe(24)
        record = ApiKey(id=key_id, name=name, limit_per_min=limit_per_min, created_ms=int(time.time() * 1000), secret_sha256=_digest(secret))
        await self.redis.hset(keys.API_KEYS, key_id, msgspec.json.encode(record))
        await self._announce(key_id)
        return record, f"{KEY_PREFIX}{key_id}_{secret}"

    async def list(self) -> list[ApiKey]:
        raw = await self.redis.hgetall(keys.API_KEYS)
        return sorted((msgspec.json.decode(v, type=ApiKey) for v in raw.values()), key=lambda k: k.created_ms)

    async def revoke(self, key_id: str) -> bool:
        raw = await self.redis.hget(keys.API_KEYS, key_id)
        if raw is None:
            return False
        record = msgspec.json.decode(raw, type=ApiKey)
        if record.revoked_ms is None:
            record = msgspec.structs.replace(record, revoked_ms=int(time.time() * 1000))
            await self.redis.hset(keys.API_KEYS, key_id, msgspec.json.encode(record))
        self._records.pop(key_id, None)
        await self._announce(key_id)
        return True

    async def _announce(self, key_id: str) -> None:
        """Tell every replica that ``key_id`` changed: they drop what they keep of it."""
        await self.redis.publish(keys.api_key_changes(self.db), key_id)

    async def hear_changes(self, pubsub: Callable[[], PubSub]) -> None:
        """Keep key records while subscribed to key changes, dropping each as it changes; until :meth:`stop_hearing`.

        ``pubsub`` makes a pub/sub connection (``StoreReader.frame_announcements``: in a
        cluster, a plain connection to one node, which hears what is published on any).
        Records are kept only once the subscription is confirmed and forgotten when it breaks,
        so no change can go unheard while a record is kept.
        """
        while not self._stopping:
            connection = pubsub()
            try:
                await connection.subscribe(keys.api_key_changes(self.db))
                confirmed = await connection.get_message(timeout=5.0)
                if confirmed is None or confirmed.get("type") != "subscribe":
                    raise RedisError("no confirmation of the subscription to key changes")
                self._hearing = True
                while not self._stopping:
                    message = await connection.get_message(ignore_subscribe_messages=True, timeout=HEAR_POLL_S)
                    if message is not None:
                        data = message["data"]
                        key_id = data.decode() if isinstance(data, bytes) else str(data)
                        self._changes += 1
                        self._records.pop(key_id, None)
                        for event in self._watchers.get(key_id, ()):
                            event.set()
            except RedisError as exc:
                # Key records are read at every request until resubscribed; said once per outage.
                STORE.down(exc, "hearing API key changes")
                await asyncio.sleep(1.0)
            finally:
                self._hearing = False
                self._records.clear()
                try:
                    await connection.aclose()
                except RedisError:
                    pass

    def stop_hearing(self) -> None:
        """Make :meth:`hear_changes` return within ``HEAR_POLL_S``: the pub/sub client can swallow a
        cancellation that arrives while it reads, so a listener is not left to cancellation alone."""
        self._stopping = True

    def watch(self, key_id: str) -> asyncio.Event:
        """An event set each time ``key_id`` is heard to change: a long-lived connection checks its key again at once."""
        event = asyncio.Event()
        self._watchers.setdefault(key_id, set()).add(event)
        return event

    def unwatch(self, key_id: str, event: asyncio.Event) -> None:
        watchers = self._watchers.get(key_id)
        if watchers is not None:
            watchers.discard(event)
            if not watchers:
                del self._watchers[key_id]

    @property
    def hearing_changes(self) -> bool:
        return self._hearing

    @property
    def changes_heard(self) -> int:
        return self._changes

    async def _record(self, key_id: str) -> ApiKey | None:
        now = time.monotonic()
        cached = self._records.get(key_id)
        if cached is not None and now - cached[0] < RECORD_TTL_S:
            return cached[1]
        changes = self._changes
        raw = await self.redis.hget(keys.API_KEYS, key_id)
        record = msgspec.json.decode(raw, type=ApiKey) if raw is not None else None
        if self._hearing and self._changes == changes:
            if len(self._records) >= MAX_RECORDS:
                self._records.clear()  # made-up key ids must not grow this without bound
            self._records[key_id] = (now, record)
        return record

    async def verify(self, presented: str) -> ApiKey | None:
        """The active key matching ``presented``, compared in constant time; else None."""
        parsed = parse_key(presented)
        if parsed is None:
            return None
        key_id, secret = parsed
        record = await self._record(key_id)
        if record is None:
            # Spend the same work as a real comparison so timing says nothing.
            hmac.compare_digest(_digest(secret), "0" * 64)
            return None
        if not hmac.compare_digest(_digest(secret), record.secret_sha256) or record.revoked_ms is not None:
            return None
        return record

    async def key_active(self, key_id: str) -> bool:
        """Whether a key still exists and is not revoked (as sure as :meth:`verify`)."""
        record = await self._record(key_id)
        return record is not None and record.revoked_ms is None

    async def count(self, client: str, limit: int, now_ms: int | None = None) -> Allowance:
        """Count a request of ``client`` in the current one-minute window, shared by all replicas.

        A client's first request in a window, and every request within ``exact_margin(limit)``
        of the limit, is counted in the store at once. Between those, requests are counted in
        memory and added to the shared counter within ``FLUSH_INTERVAL_S`` (the hot path makes
        no round trip), so what a replica knows of the others is at most that old and a limit
        is overshot by at most what other replicas serve in one flush interval.
        """
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        window_start = now_ms - now_ms % WINDOW_MS
        retry_after = max(1, -(-(window_start + WINDOW_MS - now_ms) // 1000))
        window = self._windows.get(client)
        if window is None or window.start_ms != window_start:
            window = self._windows[client] = _Window(window_start)
        if not window.synced or window.known + window.pending + 1 > limit - exact_margin(limit):
            add, window.pending = window.pending + 1, 0
            try:
                used = await self._add(client, window_start, add)
            except BaseException:
                window.pending += add - 1
                raise
            window.known = max(window.known, used)
            window.synced = True
            return Allowance(limit=limit, used=window.known + window.pending, retry_after_s=retry_after)
        window.pending += 1
        if self._flush_task is None or self._flush_task.done():
            self._flush_task = asyncio.create_task(self._flush_soon())
        return Allowance(limit=limit, used=window.known + window.pending, retry_after_s=retry_after)

    async def open_connection(self, client: str, connection_id: str, limit: int, lapse_ms: int, now_ms: int | None = None) -> int | None:
        """Count a long-lived connection (``/ws-api``) of ``client`` if it has fewer than ``limit`` open on
        every replica together; returns how many are open with it, or None at the limit. The connection
        lapses ``lapse_ms`` from now unless renewed (:meth:`renew_connection`): a replica that dies frees
        its connections that late."""
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        opened = int(await self._open_connection(keys=[keys.ws_connections(client)], args=[now_ms, now_ms + lapse_ms, connection_id, limit]))
        return opened if opened > 0 else None

    async def renew_connection(self, client: str, connection_id: str, lapse_ms: int, now_ms: int | None = None) -> None:
        """Keep an open connection counted ``lapse_ms`` more."""
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        key = keys.ws_connections(client)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zadd(key, {connection_id: now_ms + lapse_ms}, xx=True)
            pipe.pexpireat(key, now_ms + lapse_ms, gt=True)
            await pipe.execute()

    async def close_connection(self, client: str, connection_id: str) -> None:
        await self.redis.zrem(keys.ws_connections(client), connection_id)

    async def _add(self, client: str, window_start: int, requests: int) -> int:
        return int(await self._count(keys=[keys.rate_counter(client, window_start)], args=[WINDOW_MS, requests]))

    async def _flush_soon(self) -> None:
        await asyncio.sleep(FLUSH_INTERVAL_S)
        await self.flush()

    async def flush(self, now_ms: int | None = None) -> None:
        """Add every client's in-memory count to the shared counters; forget windows that are over."""
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        now_window = now_ms - now_ms % WINDOW_MS
        for client, window in list(self._windows.items()):
            if window.pending:
                add, window.pending = window.pending, 0
                try:
                    used = await self._add(client, window.start_ms, add)
                except Exception as exc:  # the store is down: keep the count for the next flush
                    window.pending += add
                    if is_store_error(exc):
                        STORE.down(exc, "adding request counts")
                    else:
                        log.warning("could not add request counts to the store: %s", exc)
                    return
                window.known = max(window.known, used)
            if window.start_ms < now_window and not window.pending:
                del self._windows[client]
