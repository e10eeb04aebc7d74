"""Every Redis key name liqmap uses, built here and nowhere else.

All keys of one market share the hash tag ``{exchange:SYMBOL}`` so that a
market lives in one Redis Cluster slot and its multi-key writes can be atomic.
"""

from __future__ import annotations

PREFIX = "lm"

SCHEMA_VERSION = f"{PREFIX}:schema_version"
MIGRATION_LOCK = f"{PREFIX}:migration_lock"
MARKETS = f"{PREFIX}:markets"  # set of "exchange:SYMBOL"
API_KEYS = f"{PREFIX}:api_keys"  # hash: key id -> JSON record (secret stored hashed)
# The work queue (service.store.jobs): one stream and its bookkeeping, in one cluster slot.
JOBS = f"{PREFIX}:{{jobs}}:stream"
JOB_ERRORS = f"{PREFIX}:{{jobs}}:errors"  # hash: entry id -> last error of a failing job
JOBS_PARKED = f"{PREFIX}:{{jobs}}:parked"  # hash: entry id -> a job that kept failing, with its error
# The liquidation feed (service.store.reader): a capped stream of the events collectors store,
# which every API replica follows for /ws-api. One key, one slot, per database.
LIQUIDATION_FEED = f"{PREFIX}:{{liquidations}}:feed"
# Collect replicas (service.store.leases): who is alive, and a lease per shard of markets.
LEASE_MEMBERS = f"{PREFIX}:{{leases}}:members"  # sorted set: replica -> when its announcement expires, ms


def lease(shard: int) -> str:
    """String with a TTL: the collect replica holding a shard of markets."""
    return f"{PREFIX}:{{leases}}:shard:{shard}"


def rate_counter(client: str, window_start_ms: int) -> str:
    """Requests of one client (key id or anonymous address) in one window."""
    return f"{PREFIX}:rl:{{{client}}}:{window_start_ms}"


def ws_connections(client: str) -> str:
    """Sorted set: the open ``/ws-api`` connections of one client (key id or anonymous address), scored by when each lapses (ms)."""
    return f"{PREFIX}:ws:{{{client}}}:connections"


def market_id(exchange: str, symbol: str) -> str:
    return f"{exchange}:{symbol}"


def split_market_id(market: str) -> tuple[str, str]:
    exchange, _, symbol = market.partition(":")
    return exchange, symbol


def _market(exchange: str, symbol: str) -> str:
    return f"{PREFIX}:{{{exchange}:{symbol}}}"


def chunk(kind: str, exchange: str, symbol: str, start_ms: int) -> str:
    """String: the rows of one kind (``candles``, ``oi``, ``liq``) in one chunk of time (see :mod:`service.store.chunks`)."""
    return f"{_market(exchange, symbol)}:{kind}:{start_ms}"


def chunk_index(kind: str, exchange: str, symbol: str) -> str:
    """Hash: chunk start (ms) -> ``<rows><encoding byte>`` of every stored chunk of one kind."""
    return f"{_market(exchange, symbol)}:{kind}:chunks"


def legacy_rows(kind: str, exchange: str, symbol: str) -> str:
    """Schema 1: sorted set of packed rows scored by time (``candles``, ``oi``, ``liq``); migration 0002 moves them into chunks."""
    return f"{_market(exchange, symbol)}:{kind}"


def job_queued(exchange: str, symbol: str) -> str:
    """String with a TTL: a refresh of the market is queued and not started yet."""
    return f"{_market(exchange, symbol)}:queued"


def refresh_lock(exchange: str, symbol: str) -> str:
    """String with a TTL: the worker refreshing the market now."""
    return f"{_market(exchange, symbol)}:refreshing"


def market_meta(exchange: str, symbol: str) -> str:
    """Hash: last_update_ms, first_candle_ms, ..."""
    return f"{_market(exchange, symbol)}:meta"


def frame_records(exchange: str, symbol: str, model: str, range_name: str) -> str:
    """Hash: frame id -> record (service.store.records) of every frame in history."""
    return f"{_market(exchange, symbol)}:records:{model}:{range_name}"


def legacy_frame_blob(exchange: str, symbol: str, frame_id: str) -> str:
    """Schema 2: a hash of every encoded form of one frame (migration 0003 removes them)."""
    return f"{_market(exchange, symbol)}:frame:{frame_id}"


def frame_history(exchange: str, symbol: str, model: str, range_name: str) -> str:
    """Sorted set: score = data_until_ms, member = frame id."""
    return f"{_market(exchange, symbol)}:frames:{model}:{range_name}"


def frame_latest(exchange: str, symbol: str, model: str, range_name: str) -> str:
    """Hash: ``id``, ``packed`` (the stored form) and ``meta`` (summary) of the newest frame of a live range."""
    return f"{_market(exchange, symbol)}:latest:{model}:{range_name}"


def frame_channel(exchange: str, symbol: str, db: int) -> str:
    """Pub/sub channel announcing every new frame of a market.

    Pub/sub is shared by every database of a server, so the channel names the database
    the frames are stored in: deployments on one server must not hear each other.
    """
    return f"{PREFIX}:db{db}:{{{exchange}:{symbol}}}:frames:events"


def api_key_changes(db: int) -> str:
    """Pub/sub channel naming each API key id as it is created or revoked (replicas drop what they cached)."""
    return f"{PREFIX}:db{db}:api_keys:changed"


def frame_channels(db: int) -> str:
    """Pattern matching every market's frame channel of one database."""
    return f"{PREFIX}:db{db}:{{*}}:frames:events"
