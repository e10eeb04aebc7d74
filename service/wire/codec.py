"""Encoding a Frame once, when computed, into every form the API serves."""

from __future__ import annotations

import gzip
import math

import msgspec
import numpy as np

from engine.frame import Frame, identity_fields
from engine.ranges import RANGES
from service.wire.cells import cells_json
from service.wire.schemas import ClusterOut, CoinglassHeatmap, Envelope, FrameOut, FrameStatsOut, FrameSummary

_json = msgspec.json.Encoder()
_msgpack = msgspec.msgpack.Encoder()

# Field names of the encoded forms in a stored frame.
FIELD_V1_JSON = "v1"
FIELD_V1_MSGPACK = "v1.msgpack"
FIELD_COINGLASS_JSON = "cg"
FIELD_META = "meta"
# Stored gzip-compressed (level 1: a quarter of the size for a few ms, once per frame);
# served as they are to clients that accept gzip, which is nearly all of them.
COMPRESSED_FIELDS = frozenset({FIELD_V1_JSON, FIELD_V1_MSGPACK, FIELD_COINGLASS_JSON})
GZIP_LEVEL = 1


def compress(body: bytes) -> bytes:
    return gzip.compress(body, compresslevel=GZIP_LEVEL, mtime=0)


def plain(field: str, stored: bytes) -> bytes:
    """A stored field's bytes as the client would read them (decompressed where stored compressed)."""
    return gzip.decompress(stored) if field in COMPRESSED_FIELDS else stored


def _number_text(value: float) -> str:
    """A number the way Coinglass writes it in strings: no exponent, no trailing .0."""
    text = repr(round(float(value), 8))
    return text[:-2] if text.endswith(".0") else text


def _opt(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def _identity(frame: Frame) -> dict[str, str]:
    """The fields of :class:`service.wire.schemas.FrameIdentity`: the frame's id, then the engine's identity."""
    return {"id": frame.frame_id, **identity_fields(frame)}


def to_native(frame: Frame) -> FrameOut:
    candles = frame.candles
    candle_rows = [
        [int(ts), _opt(o), _opt(h), _opt(lo), _opt(c), _opt(v)]
        for ts, o, h, lo, c, v in zip(
            candles.ts_ms.tolist(),
            candles.open.tolist(),
            candles.high.tolist(),
            candles.low.tolist(),
            candles.close.tolist(),
            candles.volume_usd.tolist(),
        )
    ]
    stats = frame.stats
    return FrameOut(
        **_identity(frame),
        column_ms=RANGES[frame.range].column_ms,
        generated_at=frame.generated_at_ms,
        data_until=frame.data_until_ms,
        coverage_start=frame.coverage_start_ms,
        x=frame.x_ms.tolist(),
        y=np.round(frame.y, 8).tolist(),
        long=np.rint(frame.long_usd).astype(np.int64).tolist(),
        short=np.rint(frame.short_usd).astype(np.int64).tolist(),
        candles=candle_rows,
        stats=FrameStatsOut(
            total_long_usd=float(stats.total_long_usd),
            total_short_usd=float(stats.total_short_usd),
            max_long_usd=float(stats.max_long_usd),
            max_short_usd=float(stats.max_short_usd),
            max_cell_usd=float(stats.max_cell_usd),
            out_of_grid_usd=float(stats.out_of_grid_usd),
            beyond_long_usd=float(stats.beyond_long_usd),
            beyond_short_usd=float(stats.beyond_short_usd),
            consumed_long_usd=float(stats.consumed_long_usd),
            consumed_short_usd=float(stats.consumed_short_usd),
            percentiles={k: float(v) for k, v in stats.percentiles.items()},
        ),
        clusters=[ClusterOut(**band) for band in frame.clusters],
        leverage=frame.leverage,
        tiers=[float(t) for t in frame.tiers],
        sources=frame.sources,
        margin_table=frame.margin_table,
    )


def coinglass_cells(frame: Frame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Coinglass's sparse cells ``(x, y, usd)``: long + short intensity rounded to cents where above 0,
    from the first column with a bar (``x`` counts from there)."""
    has_bar = ~np.isnan(frame.candles.close)
    first = int(np.argmax(has_bar)) if has_bar.any() else len(has_bar)
    total = (frame.long_usd[first:].astype(np.float64) + frame.short_usd[first:]).round(2)
    xs, ys = np.nonzero(total > 0)
    return xs, ys, total[xs, ys]


def to_coinglass(frame: Frame, with_cells: bool = True) -> CoinglassHeatmap:
    """Coinglass's heatmap shape: columns start at the first one with data.

    ``liquidation_leverage_data`` is sparse ``[x, y, usd]`` over long + short
    intensity; ``x`` indexes ``price_candlesticks``, ``y`` indexes ``y_axis``.
    Without ``with_cells`` it is left empty (see :func:`coinglass_json`).
    """
    has_bar = ~np.isnan(frame.candles.close)
    first = int(np.argmax(has_bar)) if has_bar.any() else len(has_bar)
    data: list[list[float]] = []
    if with_cells:
        xs, ys, values = coinglass_cells(frame)
        data = [[x, y, v] for x, y, v in zip(xs.tolist(), ys.tolist(), values.tolist())]
    candles = frame.candles
    sticks: list[list[int | str]] = []
    last_close = ""
    for i in range(first, len(candles.ts_ms)):
        ts_s = int(candles.ts_ms[i]) // 1000
        if not has_bar[i]:
            # Coinglass candles are never empty: a column without bars is flat at the last close.
            sticks.append([ts_s, last_close, last_close, last_close, last_close, "0"])
            continue
        last_close = _number_text(candles.close[i])
        sticks.append(
            [
                ts_s,
                _number_text(candles.open[i]),
                _number_text(candles.high[i]),
                _number_text(candles.low[i]),
                last_close,
                _number_text(candles.volume_usd[i]),
            ]
        )
    return CoinglassHeatmap(
        y_axis=np.round(frame.y, 8).tolist(),
        liquidation_leverage_data=data,
        price_candlesticks=sticks,
    )


def to_summary(frame: Frame) -> FrameSummary:
    return FrameSummary(
        **_identity(frame),
        generated_at=frame.generated_at_ms,
        data_until=frame.data_until_ms,
        coverage_start=frame.coverage_start_ms,
    )


def coinglass_json(frame: Frame) -> bytes:
    """The Coinglass heatmap envelope of a frame as JSON: :func:`to_coinglass` encoded, with the
    cells written from arrays (:mod:`service.wire.cells`) rather than a list per cell."""
    shape = to_coinglass(frame, with_cells=False)
    body = _json.encode(Envelope(code="0", msg="success", data=shape))
    xs, ys, usd = coinglass_cells(frame)
    marker = b'"liquidation_leverage_data":[]'
    at = body.index(marker) + len(marker) - 2
    return body[:at] + cells_json(xs, ys, usd) + body[at + 2 :]


def encode_field(frame: Frame, field: str) -> bytes:
    """One form of a frame as served (compressed where :data:`COMPRESSED_FIELDS` says)."""
    if field == FIELD_META:
        return _json.encode(to_summary(frame))
    if field == FIELD_COINGLASS_JSON:
        return compress(coinglass_json(frame))
    native = to_native(frame)
    if field == FIELD_V1_JSON:
        return compress(_json.encode(native))
    if field == FIELD_V1_MSGPACK:
        return compress(_msgpack.encode(native))
    raise ValueError(f"unknown frame field {field!r}; known: {FIELD_V1_JSON}, {FIELD_V1_MSGPACK}, {FIELD_COINGLASS_JSON}, {FIELD_META}")


def encode_frame(frame: Frame) -> dict[str, bytes]:
    """Every served form of a frame, keyed by field name."""
    return {field: encode_field(frame, field) for field in (FIELD_V1_JSON, FIELD_V1_MSGPACK, FIELD_COINGLASS_JSON, FIELD_META)}


def encode_event(frame: Frame) -> bytes:
    """The announcement published with every new frame: its summary."""
    return _json.encode(to_summary(frame))
