"""The OpenAPI answers of the native routes, with examples (the Coinglass ones: service.api.coinglass.examples)."""

from __future__ import annotations

from typing import Any

from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example

from service.wire.schemas import ErrorOut, FrameOut, FramePage, LevelsOut

_FRAME = Example(
    summary="A 12h frame (shortened to 2 columns and 3 rows)",
    value={
        "id": "model1-30fb8e9f-12h-1780000020000",
        "exchange": "binance",
        "symbol": "BTCUSDT",
        "model": "model1",
        "model_version": "1.0.0",
        "params_hash": "30fb8e9f8e1d866d2b3643dc7f1887b1a516f17bb378bb3c0751d586ece8a3e0",
        "range": "12h",
        "column_ms": 300000,
        "generated_at": 1780000021300,
        "data_until": 1780000020000,
        "coverage_start": 1779956820000,
        "x": [1779999600000, 1779999900000],
        "y": [76400.0, 76500.0, 76600.0],
        "long": [[1250000, 0, 0], [980000, 0, 0]],
        "short": [[0, 0, 2100000], [0, 0, 2300000]],
        "candles": [[1779999600000, 76550.1, 76580.0, 76520.3, 76560.2, 18250000.5], [1779999900000, 76560.2, 76575.0, 76540.0, 76548.9, 12002000.0]],
        "stats": {
            "total_long_usd": 980000.0,
            "total_short_usd": 2300000.0,
            "max_long_usd": 1250000.0,
            "max_short_usd": 2300000.0,
            "max_cell_usd": 2300000.0,
            "out_of_grid_usd": 0.0,
            "beyond_long_usd": 4200000.0,
            "beyond_short_usd": 3900000.0,
            "consumed_long_usd": 1800000.0,
            "consumed_short_usd": 950000.0,
            "percentiles": {"p50": 1250000.0, "p90": 2300000.0, "p99": 2300000.0},
        },
        "clusters": [],
        "leverage": "all",
        "tiers": [5.0, 10.0, 25.0, 50.0, 100.0],
        "sources": None,
    },
)

_FRAME_PAGE = Example(
    summary="Two frames and a cursor for the next page",
    value={
        "items": [
            {"id": "model1-30fb8e9f-24h-1780000080000", "exchange": "binance", "symbol": "BTCUSDT", "model": "model1", "model_version": "1.0.0", "params_hash": "30fb8e9f…", "range": "24h", "generated_at": 1780000081200, "data_until": 1780000080000, "coverage_start": 1779913680000},
            {"id": "model1-30fb8e9f-24h-1780000020000", "exchange": "binance", "symbol": "BTCUSDT", "model": "model1", "model_version": "1.0.0", "params_hash": "30fb8e9f…", "range": "24h", "generated_at": 1780000021300, "data_until": 1780000020000, "coverage_start": 1779913620000},
        ],
        "next_cursor": "MTc4MDAwMDAyMDAwMHxtb2RlbDEtMzBmYjhlOWYtMjRoLTE3ODAwMDAwMjAwMDA",
    },
)


def _error(status: int, description: str, message: str, allowed: list[str] | None = None) -> ResponseSpec:
    example = Example(summary=message, value={"error": {"status": status, "error": "bad_request" if status == 400 else "error", "message": message, "allowed": allowed}})
    return ResponseSpec(generate_examples=False, data_container=ErrorOut, description=description, examples=[example])


ERRORS = {
    400: _error(
        400,
        "Bad parameter; the message names the allowed values",
        "range must be one of 12h, 24h, 3d, 7d, 30d, 90d, 180d, 1y; got '2h'",
        ["12h", "24h", "3d", "7d", "30d", "90d", "180d", "1y"],
    ),
    404: _error(404, "Unknown exchange, symbol or frame", "unknown symbol 'DOGEUSDT' on binance; known symbols: BTCUSDT, ETHUSDT, SOLUSDT"),
    503: _error(503, "No frame computed yet, or the store is unreachable", "the data store is unreachable; retry shortly"),
}


def _responses(container: Any, description: str, example: Example | None = None) -> dict[int, ResponseSpec]:
    ok = ResponseSpec(generate_examples=False, data_container=container, description=description, examples=None if example is None else [example])
    return {200: ok, **ERRORS}


LATEST = _responses(FrameOut, "The newest frame (JSON or msgpack)", _FRAME)
LEVELS = _responses(LevelsOut, "Magnet zones, the liquidation map by tier and max pain")
FRAMES = _responses(FramePage, "Frame summaries, newest first", _FRAME_PAGE)
FRAME = _responses(FrameOut, "One frame (JSON or msgpack)", _FRAME)
