"""The one stored form of a frame: compact, lossless, and the source of every shape the API sends.

A frame is packed once when computed; the native JSON, msgpack and Coinglass shapes are made
from it on request (:mod:`service.wire.codec`), from exactly the arrays the engine produced,
so they are the bytes they would have been had they been encoded at compute time.

Layout: a msgpack array (``PackedFrame``) compressed with zstd. The intensity arrays are
float32 bit patterns, differenced along time (a column is mostly the one before it) and
split into byte planes, which compresses them to about a fifth.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import msgspec
import numpy as np

from engine.frame import Frame, FrameCandles, FrameStats, identity_fields
from service.wire import zstd

FORMAT = 1



class PackedFrame(msgspec.Struct, array_like=True, frozen=True):
    format: int
    exchange: str
    symbol: str
    model: str
    model_version: str
    params_hash: str
    range: str
    generated_at_ms: int
    data_until_ms: int
    coverage_start_ms: int
    columns: int
    rows: int
    x_ms: bytes  # int64, (columns,)
    y: bytes  # float64, (rows,)
    long_usd: bytes  # float32 (columns, rows), time-differenced bit patterns in byte planes
    short_usd: bytes
    candles: bytes  # float64 (5, columns): open, high, low, close, volume_usd
    stats: dict[str, Any]
    clusters: list[dict[str, Any]]
    leverage: str
    tiers: list[float]
    sources: dict[str, dict[str, Any]] | None
    margin_table: dict[str, Any] | None = None


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(PackedFrame)


def _planes(values: np.ndarray) -> bytes:
    """float32 (columns, rows) → bit patterns differenced along columns, as byte planes."""
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    delta = np.diff(bits, axis=0, prepend=np.zeros((1, bits.shape[1]), dtype=np.uint32)) if bits.size else bits
    return np.ascontiguousarray(delta).view(np.uint8).reshape(-1, 4).T.tobytes()


def _unplanes(planes: bytes, columns: int, rows: int) -> np.ndarray:
    delta = np.frombuffer(planes, dtype=np.uint8).reshape(4, -1).T.copy().view(np.uint32).reshape(columns, rows)
    return np.cumsum(delta, axis=0, dtype=np.uint32).view(np.float32)


def pack_frame(frame: Frame) -> bytes:
    """The stored form of a frame."""
    columns, rows = frame.long_usd.shape
    candles = frame.candles
    packed = PackedFrame(
        format=FORMAT,
        **identity_fields(frame),
        generated_at_ms=frame.generated_at_ms,
        data_until_ms=frame.data_until_ms,
        coverage_start_ms=frame.coverage_start_ms,
        columns=columns,
        rows=rows,
        x_ms=np.ascontiguousarray(frame.x_ms, dtype=np.int64).tobytes(),
        y=np.ascontiguousarray(frame.y, dtype=np.float64).tobytes(),
        long_usd=_planes(frame.long_usd),
        short_usd=_planes(frame.short_usd),
        candles=np.stack([candles.open, candles.high, candles.low, candles.close, candles.volume_usd]).astype(np.float64).tobytes(),
        stats=asdict(frame.stats),
        clusters=list(frame.clusters),
        leverage=frame.leverage,
        tiers=list(frame.tiers),
        sources=frame.sources,
        margin_table=frame.margin_table,
    )
    return zstd.compress(_encoder.encode(packed), zstd.FAST)


def unpack_frame(stored: bytes) -> Frame:
    """The frame a stored form was packed from, array for array."""
    packed = _decoder.decode(zstd.decompress(stored))
    if packed.format != FORMAT:
        raise ValueError(f"stored frame format {packed.format} is not one this code reads ({FORMAT})")
    x_ms = np.frombuffer(packed.x_ms, dtype=np.int64)
    ohlcv = np.frombuffer(packed.candles, dtype=np.float64).reshape(5, packed.columns)
    return Frame(
        **identity_fields(packed),
        generated_at_ms=packed.generated_at_ms,
        data_until_ms=packed.data_until_ms,
        coverage_start_ms=packed.coverage_start_ms,
        x_ms=x_ms,
        y=np.frombuffer(packed.y, dtype=np.float64),
        long_usd=_unplanes(packed.long_usd, packed.columns, packed.rows),
        short_usd=_unplanes(packed.short_usd, packed.columns, packed.rows),
        candles=FrameCandles(ts_ms=x_ms, open=ohlcv[0], high=ohlcv[1], low=ohlcv[2], close=ohlcv[3], volume_usd=ohlcv[4]),
        stats=FrameStats(**packed.stats),
        clusters=packed.clusters,
        leverage=packed.leverage,
        tiers=tuple(packed.tiers),
        sources=packed.sources,
        margin_table=packed.margin_table,
    )
