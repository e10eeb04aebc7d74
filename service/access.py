"""API keys and per-client rate limits, shared by every API replica through the store."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

import msgspec
from redis.asyncio import Redis

from service import keys
from service.store import _lua

KEY_PREFIX = "lm_"
WINDOW_MS = 60_000
# A key record read from the store is trusted this long before it is read again,
# so a revocation takes effect on every replica within this many seconds.
RECORD_TTL_S = 5.0


class ApiKey(msgspec.Struct, kw_only=True, frozen=True):
    id: str
    name: str
    limit_per_min: int
    created_ms: int
    secret_sha256: str
    revoked_ms: int | None = None


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
        self._count = redis.register_script(_lua("rate_limit.lua"))
        self._records: dict[str, tuple[float, ApiKey | None]] = {}

    async def create(self, name: str, limit_per_min: int) -> tuple[ApiKey, str]:
        """A new key; the returned plain key is shown once and never stored."""
        if limit_per_min < 1:
            raise ValueError("limit must be at least 1 request per minute")
        key_id = secrets.token_hex(4)
        secret = secrets.token_urlsafe(24)
        record = ApiKey(id=key_id, name=name, limit_per_min=limit_per_min, created_ms=int(time.time() * 1000), secret_sha256=_digest(secret))
        await self.redis.hset(keys.API_KEYS, key_id, msgspec.json.encode(record))
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
        return True

    async def _record(self, key_id: str) -> ApiKey | None:
        now = time.monotonic()
        cached = self._records.get(key_id)
        if cached is not None and now - cached[0] < RECORD_TTL_S:
            return cached[1]
        raw = await self.redis.hget(keys.API_KEYS, key_id)
        record = msgspec.json.decode(raw, type=ApiKey) if raw is not None else None
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

    async def count(self, client: str, limit: int, now_ms: int | None = None) -> Allowance:
        """Count a request of ``client`` in the current one-minute window."""
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        window_start = now_ms - now_ms % WINDOW_MS
        used = int(await self._count(keys=[keys.rate_counter(client, window_start)], args=[WINDOW_MS]))
        retry_after = max(1, -(-(window_start + WINDOW_MS - now_ms) // 1000))
        return Allowance(limit=limit, used=used, retry_after_s=retry_after)
