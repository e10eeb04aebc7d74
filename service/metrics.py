"""Process metrics exposed at ``/metrics`` (Prometheus text format)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

FRAMES_COMPUTED = Counter("liqmap_frames_computed_total", "Frames computed and stored", ["exchange"])
MARKET_REFRESH_SECONDS = Histogram(
    "liqmap_market_refresh_seconds",
    "Time to rebuild and store every frame of one market",
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
COLLECT_ERRORS = Counter("liqmap_collect_errors_total", "Collect rounds of one market that failed", ["exchange"])

REQUESTS = Counter("liqmap_requests_total", "HTTP requests answered", ["method", "path", "status_code"])
REQUEST_SECONDS = Histogram(
    "liqmap_request_duration_seconds",
    "Time to answer an HTTP request",
    ["path"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)

JOBS_DONE = Counter("liqmap_jobs_done_total", "Recompute jobs whose frames were stored")
JOBS_FAILED = Counter("liqmap_jobs_failed_total", "Recompute jobs that failed (retried until parked)")
JOBS_RECLAIMED = Counter("liqmap_jobs_reclaimed_total", "Recompute jobs claimed from a worker that died, stalled or failed")
JOBS_PARKED = Counter("liqmap_jobs_parked_total", "Recompute jobs parked after failing too often")
JOBS_QUEUED = Counter("liqmap_jobs_queued_total", "Recompute jobs added by collectors")
SHARDS_HELD = Gauge("liqmap_collect_shards_held", "Shards of markets this collect replica holds a lease on")
LEASES_TAKEN = Counter("liqmap_collect_leases_taken_total", "Shard leases this collect replica took (at start, or over from another)")
JOB_QUEUE_LAG = Gauge("liqmap_job_queue_lag", "Recompute jobs waiting or in progress (as a worker last saw the queue)")
JOBS_PARKED_NOW = Gauge("liqmap_jobs_parked_now", "Recompute jobs parked with their error (as a worker last saw them)")
MARKETS_FOLLOWED = Gauge("liqmap_collect_markets_followed", "Markets of a venue this collect replica collects (and streams)", ["exchange"])
KLINE_CONNECTIONS = Gauge("liqmap_kline_connections", "WebSocket connections carrying a venue's kline streams", ["exchange"])
STREAMED_BARS = Counter("liqmap_streamed_bars_total", "Closed 1m bars taken off a venue's kline streams", ["exchange"])
STATE_POLL_SECONDS = Gauge("liqmap_open_interest_poll_seconds", "How often each market's open interest is polled, derived from the markets and the request budget", ["exchange"])
