"""Typed settings, read from the environment once.

Every variable is ``LIQMAP_<FIELD>`` in upper case, except ``REDIS_URL``,
which is read as is. Nothing else in the code base reads ``os.environ``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

import msgspec

from service.markets import MarketSelection, parse_markets

ENV_PREFIX = "LIQMAP_"

Mode = Literal["demo", "serve", "api", "collect", "worker"]


class Settings(msgspec.Struct, kw_only=True, frozen=True):
    """Everything configurable about one liqmap process."""

    mode: Mode = "serve"
    # Redis-protocol server to use; unset: start an embedded Valkey under data_dir.
    redis_url: str | None = None
    # REDIS_URL names one node of a Redis Cluster (every other node is found from it).
    redis_cluster: bool = False
    # Connections one process opens to the store at most for its commands (more requests at once
    # wait their turn, as the store answers one command at a time anyway); pub/sub listeners
    # (a live event stream each) have connections of their own. Not applied to a cluster.
    redis_max_connections: int = 32
    # Where the embedded store keeps its append-only file.
    data_dir: Path = Path(".liqmap")
    host: str = "127.0.0.1"
    port: int = 8000
    # How often collectors poll their sources, seconds.
    collect_interval_s: float = 60.0
    # History fetched on first start so the first frame has something to show, days.
    backfill_days: float = 3.0
    # Market sources the collecting process runs: binance, bybit, okx (live, keyless) or synthetic.
    sources: tuple[str, ...] = ("binance", "bybit", "okx")
    # Seed of the synthetic market (demo), and how many symbols it has (BTCUSDT, ETHUSDT, SOLUSDT first).
    synthetic_seed: int = 7
    synthetic_markets: int = 3
    # The synthetic source runs as these venues (each its own share of one simulated market,
    # answering as Binance, Bybit, OKX and summed into "all"); empty: one venue named "synthetic".
    synthetic_venues: tuple[str, ...] = ("binance", "bybit", "okx")
    # Markets collected on every venue: canonical symbols (OKX's BTC-USDT-SWAP is BTCUSDT),
    # `all` (every USDT-margined perpetual the venue trades) or `top:N` (the N with the largest
    # 24h quote volume); all and top:N are refreshed from the venue's instrument list.
    markets: tuple[str, ...] = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
    # How often the market list of all / top:N is read again from each venue, seconds.
    markets_refresh_s: float = 3600.0
    # Candles over the venues' WebSocket kline streams (REST for backfill, gaps and open
    # interest); false: every poll fetches candles over REST.
    kline_streams: bool = True
    # Instruments each venue of the fake exchange lists when markets is all or top:N.
    fake_instruments: int = 200
    # Per coin, also the sum over venues as exchange "all" (e.g. all/BTC).
    aggregate: bool = True
    # Venue endpoints (the fake exchange replaces them with loopback URLs).
    binance_rest_url: str = "https://fapi.binance.com"
    binance_ws_url: str = "wss://fstream.binance.com/market/stream?streams=!forceOrder@arr"
    binance_web_url: str = "https://www.binance.com"
    # Combined market streams (klines: subscribed with SUBSCRIBE messages).
    binance_kline_ws_url: str = "wss://fstream.binance.com/market/stream"
    bybit_rest_url: str = "https://api.bybit.com"
    bybit_ws_url: str = "wss://stream.bybit.com/v5/public/linear"
    okx_rest_url: str = "https://www.okx.com"
    okx_ws_url: str = "wss://ws.okx.com:8443/ws/v5/public"
    # OKX streams candles on its business endpoint.
    okx_business_ws_url: str = "wss://ws.okx.com:8443/ws/v5/business"
    # Share of each venue's published request limit this process may use.
    request_budget_share: float = 0.5
    # Bound on one HTTP call, seconds.
    http_timeout_s: float = 10.0
    # WebSocket heartbeat period, silence before reconnecting, reconnect back-off, seconds.
    ws_ping_interval_s: float = 20.0
    ws_idle_timeout_s: float = 90.0
    ws_backoff_base_s: float = 1.0
    ws_backoff_max_s: float = 60.0
    # How often streamed liquidations are written to the store, seconds.
    liquidation_flush_s: float = 1.0
    # Longest venue back-off (Retry-After) a backfill sleeps out before giving up, seconds.
    backfill_max_wait_s: float = 120.0
    # Models and ranges computed for every market.
    models: tuple[str, ...] = ("model1", "model2", "model3", "model4")
    ranges: tuple[str, ...] = ("12h", "24h", "3d", "7d", "30d", "90d", "180d", "1y")
    # Price rows of every frame.
    frame_rows: int = 400
    # Frames kept in history per (market, model, range): the newest of each column, this many
    # columns back. History keeps a record of each (about 400 bytes), not the frame: a frame of
    # history is built again on request, the same bytes. Per range:
    # LIQMAP_FRAME_HISTORY_BY_RANGE=24h=288,1y=365.
    frame_history: int = 12
    frame_history_by_range: dict[str, int] = {}
    # Engine processes of each API process, for frames and maps built on request (0: a thread).
    api_engine_processes: int = 1
    # Niceness of engine work (worker processes, the API's engine processes): on a shared
    # machine the scheduler serves reads first, so recompute never starves them.
    engine_nice: int = 10
    # Ranges whose columns are at most this wide (12h and 24h: 5 min) are rebuilt at every new
    # bar and kept whole; the others (3d: 15 min, 7d: 30 min, ...) when a column ends, and
    # built on request (minutes). 15 makes 3d live too: about 0.7 MB more per market.
    live_column_max_min: float = 5.0
    # Retention of raw inputs, days: 1m bars and open interest (the 7d range's window, its
    # history and a day; longer ranges read roll-ups, kept as long as they need them) and
    # realized liquidations.
    candle_retention_days: float = 9.0
    liquidation_retention_days: float = 7.0
    # Requests without an API key: allowed or not, and how many per minute per client address.
    anonymous_access: bool = True
    anonymous_limit_per_min: int = 1200
    # Coinglass-compatible websocket (/ws-api) connections open at once per key (or anonymous address), over every replica.
    ws_connections_per_client: int = 10
    # Addresses or networks (CIDR) of reverse proxies whose X-Forwarded-For names the client,
    # e.g. 10.0.0.0/8,192.168.1.5. Default none: every client is its connection's address, and
    # a forwarded header is ignored (a client could write any address in it).
    trusted_proxies: tuple[str, ...] = ()
    # Requests per minute of a key created without --limit.
    default_key_limit_per_min: int = 1200
    # /ready answers 503 when a market's frames are older than this, seconds.
    ready_max_age_s: float = 300.0
    # Upper bound on one scheduled job and on one recompute job, seconds; a recompute job
    # pending this long (its worker died or stalled) is claimed by another worker.
    job_timeout_s: float = 120.0
    # Deliveries of a recompute job before it is parked with its error.
    job_max_attempts: int = 3
    # Worker processes `serve` and `demo` start beside the API.
    workers: int = 1
    # Collect replicas split the markets in this many shards, each held by one replica
    # through a lease of this many seconds (renewed a third of the way through).
    collect_shards: int = 16
    lease_ttl_s: float = 15.0
    # Port of /health and /metrics of the `worker` and `collect` roles (unset: not served).
    metrics_port: int | None = None
    log_level: str = "info"

    def __post_init__(self) -> None:
        self.market_selection()
        if self.redis_max_connections < 4:
            raise ValueError(f"redis_max_connections must be at least 4 (listeners and commands share them); got {self.redis_max_connections}")

    def market_selection(self) -> MarketSelection:
        """``markets`` parsed (``ValueError`` naming LIQMAP_MARKETS and its allowed forms)."""
        return _markets(self.markets)

    def history_keep(self, range_name: str) -> int:
        return self.frame_history_by_range.get(range_name, self.frame_history)

    def is_live(self, range_name: str) -> bool:
        """Whether a range is rebuilt at every new bar and kept whole (else at its columns' ends, and built on request)."""
        from engine.ranges import MINUTE_MS, RANGES, base_step_ms

        spec = RANGES[range_name]
        return base_step_ms(spec, MINUTE_MS) == MINUTE_MS and spec.column_ms <= self.live_column_max_min * MINUTE_MS

    def to_env(self) -> dict[str, str]:
        """These settings as the environment :meth:`from_env` reads (how ``serve`` hands them to its roles)."""
        env: dict[str, str] = {}
        for name in self.__struct_fields__:
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, tuple):
                text = ",".join(value)
            elif isinstance(value, dict):
                text = ",".join(f"{k}={v}" for k, v in value.items())
            elif isinstance(value, bool):
                text = "true" if value else "false"
            else:
                text = str(value)
            env["REDIS_URL" if name == "redis_url" else ENV_PREFIX + name.upper()] = text
        return env

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        defaults: Mapping[str, object] | None = None,
        **overrides: object,
    ) -> Settings:
        """Build settings: ``defaults`` (a role's own), then ``environ``, then non-None ``overrides``.

        ``environ`` defaults to the process environment.
        Raises ``ValueError`` naming the variable when a value has the wrong type.
        """
        environ = os.environ if environ is None else environ
        raw: dict[str, object] = dict(defaults or {})
        for name in cls.__struct_fields__:
            env_name = "REDIS_URL" if name == "redis_url" else ENV_PREFIX + name.upper()
            if env_name in environ:
                value: object = environ[env_name]
                if name in ("models", "ranges", "sources", "markets", "synthetic_venues", "trusted_proxies"):
                    value = [part.strip() for part in str(value).split(",") if part.strip()]
                elif name == "frame_history_by_range":
                    value = dict(part.strip().split("=", 1) for part in str(value).split(",") if "=" in part)
                raw[name] = value
        if raw.get("redis_url") == "":
            raw["redis_url"] = None
        raw.update({key: value for key, value in overrides.items() if value is not None})
        if "markets" in raw:
            _markets(raw["markets"])  # type: ignore[arg-type]
        try:
            return msgspec.convert(raw, cls, strict=False, dec_hook=_decode_path)
        except msgspec.ValidationError as exc:
            if "LIQMAP_MARKETS" in str(exc):
                raise ValueError(str(exc).split(" - at ")[0]) from exc
            match = re.search(r"\$\.(\w+)", str(exc))
            field = match.group(1) if match else "?"
            env_name = "REDIS_URL" if field == "redis_url" else ENV_PREFIX + field.upper()
            raise ValueError(f"invalid setting {env_name}: {exc}") from exc


def _markets(values: Sequence[str]) -> MarketSelection:
    try:
        return parse_markets(values)
    except ValueError as exc:
        raise ValueError(f"invalid setting LIQMAP_MARKETS: {exc}") from None


def _decode_path(type_: type, value: object) -> object:
    if type_ is Path and isinstance(value, str):
        return Path(value)
    raise NotImplementedError
