"""Response examples for the OpenAPI document."""

from __future__ import annotations

from litestar.openapi.spec import Example

FRAME = Example(
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

COINGLASS_HEATMAP = Example(
    summary="Coinglass's heatmap shape",
    value={
        "code": "0",
        "msg": "success",
        "data": {
            "y_axis": [47968.54, 48000.0, 48031.46],
            "liquidation_leverage_data": [[5, 124, 2288867.26], [6, 123, 318624.82]],
            "price_candlesticks": [[1722676500, "61486", "61596.4", "61434.4", "61539.9", "63753192.1129"]],
        },
    },
)

FRAME_PAGE = Example(
    summary="Two frames and a cursor for the next page",
    value={
        "items": [
            {"id": "model1-30fb8e9f-24h-1780000080000", "exchange": "binance", "symbol": "BTCUSDT", "model": "model1", "model_version": "1.0.0", "params_hash": "30fb8e9f…", "range": "24h", "generated_at": 1780000081200, "data_until": 1780000080000, "coverage_start": 1779913680000},
            {"id": "model1-30fb8e9f-24h-1780000020000", "exchange": "binance", "symbol": "BTCUSDT", "model": "model1", "model_version": "1.0.0", "params_hash": "30fb8e9f…", "range": "24h", "generated_at": 1780000021300, "data_until": 1780000020000, "coverage_start": 1779913620000},
        ],
        "next_cursor": "MTc4MDAwMDAyMDAwMHxtb2RlbDEtMzBmYjhlOWYtMjRoLTE3ODAwMDAwMjAwMDA",
    },
)


def error(status: int, message: str, allowed: list[str] | None = None) -> Example:
    return Example(summary=message, value={"error": {"status": status, "error": "bad_request" if status == 400 else "error", "message": message, "allowed": allowed}})


def envelope_error(status: int, message: str) -> Example:
    return Example(summary=message, value={"code": str(status), "msg": message, "data": None})
