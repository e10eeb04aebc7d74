"""Wire shapes (msgspec Structs): what the API sends and the store keeps encoded."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

import msgspec

T = TypeVar("T")


class Base(msgspec.Struct, kw_only=True, frozen=True):
    pass


class FrameStatsOut(Base):
    total_long_usd: float
    total_short_usd: float
    max_long_usd: float
    max_short_usd: float
    max_cell_usd: float
    percentiles: dict[str, float]


class FrameOut(Base):
    """A heatmap frame as the native API sends it.

    ``long``/``short`` are ``[column][row]`` USD, rounded to whole dollars;
    ``candles`` rows are ``[ts_ms, open, high, low, close, volume_usd]``, with
    ``null`` prices where a column has no bar.
    """

    id: str
    exchange: str
    symbol: str
    model: str
    model_version: str
    params_hash: str
    range: str
    column_ms: int
    generated_at: int
    data_until: int
    coverage_start: int
    x: list[int]
    y: list[float]
    long: list[list[int]]
    short: list[list[int]]
    candles: list[list[float | None]]
    stats: FrameStatsOut
    clusters: list[dict[str, Any]]


class FrameSummary(Base):
    """What identifies a frame: listed in history, published with every new frame."""

    id: str
    exchange: str
    symbol: str
    model: str
    model_version: str
    params_hash: str
    range: str
    generated_at: int
    data_until: int
    coverage_start: int


class FramePage(Base):
    """One page of frame history, newest first; pass ``next_cursor`` back for the next."""

    items: list[FrameSummary]
    next_cursor: str | None


class MarketOut(Base):
    exchange: str
    symbol: str
    coverage_start: int | None  # first stored bar, epoch ms
    data_until: int | None  # end of the last bar the newest frames rest on, epoch ms
    last_update: int | None  # when frames were last computed, epoch ms
    bars: int
    models: list[str]
    ranges: list[str]


class MarketsOut(Base):
    markets: list[MarketOut]


class ModelOut(Base):
    name: str
    version: str
    params_hash: str
    params: dict[str, Any]
    description: str
    doc: str  # markdown: assumptions, parameters, known weaknesses
    created: str | None
    score: dict[str, Any] | None  # backtest against realized liquidations, where measured


class ModelsOut(Base):
    models: list[ModelOut]


class CoinglassHeatmap(Base):
    y_axis: list[float]
    liquidation_leverage_data: list[list[float]]
    price_candlesticks: list[list[int | str]]


class Envelope(Base, Generic[T]):
    """Coinglass's response envelope; ``code`` is a string, "0" on success."""

    code: str
    msg: str
    data: T | None = None


class ErrorBody(Base):
    status: int
    error: str
    message: str
    allowed: list[str] | None = None


class ErrorOut(Base):
    """The one error shape of the native API."""

    error: ErrorBody


class Health(Base):
    status: str
    store: str
    schema_version: int


class Readiness(Base):
    status: str  # "ready" or "not_ready"
    markets: int
    problems: list[str]
