"""Rows kept in time chunks: one Redis string per market, kind and chunk of time.

A sorted set costs about 100 bytes of overhead per row, more than a candle itself. Here a
chunk (a day of candles, an hour of liquidations) is one string: the packed rows of the
newest chunk as they are (cheap to rewrite every minute), every older chunk compressed
(byte planes of the rows, then zstd: a day of 1m candles takes about a quarter of its
packed size). The functions here are pure; :mod:`service.store.reader` and
:mod:`service.store.writer` do the IO.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np

from engine.rollup import ROLLUP_STEPS_MS
from service.wire import zstd
from service.store.rows import CANDLE_DTYPE, FUNDING_DTYPE, LIQUIDATION_DTYPE, LONG_SHORT_DTYPE, OPEN_INTEREST_DTYPE, ROLLUP_DTYPE, TAKER_DTYPE

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS

# First byte of a stored chunk: how the rest is written.
RAW = b"R"
PACKED = b"Z"



@dataclass(frozen=True, slots=True)
class RowKind:
    """One kind of stored rows.

    Attributes
    ----------
    name : str
        Key segment (``candles``, ``oi``, ``liq``, ``fund``, ``lsr``, roll-ups).
    what : str
        The rows in words, for messages.
    dtype : numpy.dtype
        The packed row layout (:mod:`service.store.rows`), with a ``ts_ms`` field.
    span_ms : int
        Width of a chunk; chunks start at multiples of it (UTC).
    unique : "ts" or "row"
        ``ts``: one row per timestamp, a later write replaces it; ``row``: identical rows
        collapse, different rows at one timestamp are all kept (liquidation events).
    """

    name: str
    what: str
    dtype: np.dtype
    span_ms: int
    unique: Literal["ts", "row"]

    def chunk_start(self, ts_ms: int) -> int:
        return ts_ms - ts_ms % self.span_ms


CANDLES = RowKind("candles", "candles", CANDLE_DTYPE, DAY_MS, "ts")
OPEN_INTEREST = RowKind("oi", "open interest", OPEN_INTEREST_DTYPE, DAY_MS, "ts")
LIQUIDATIONS = RowKind("liq", "liquidations", LIQUIDATION_DTYPE, HOUR_MS, "row")
FUNDING = RowKind("fund", "funding rates", FUNDING_DTYPE, DAY_MS, "ts")
LONG_SHORT = RowKind("lsr", "long/short account ratios", LONG_SHORT_DTYPE, DAY_MS, "ts")
# Taker volumes per venue period, from venues whose bars do not split volume by taker side.
TAKER = RowKind("taker", "taker volumes", TAKER_DTYPE, DAY_MS, "ts")
# One kind per roll-up step (engine.rollup), a week of bars per chunk.
ROLLUPS = {step: RowKind(f"r{step // 60_000}m", f"{step // 60_000}m roll-ups", ROLLUP_DTYPE, 7 * DAY_MS, "ts") for step in ROLLUP_STEPS_MS}
KINDS = {kind.name: kind for kind in (CANDLES, OPEN_INTEREST, LIQUIDATIONS, FUNDING, LONG_SHORT, TAKER, *ROLLUPS.values())}


class ChunkInfo(NamedTuple):
    """What a market's chunk index says of one chunk, without reading it."""

    rows: int
    encoding: bytes  # RAW or PACKED
    first_ms: int  # time of its first and last row
    last_ms: int


def index_value(rows: np.ndarray, stored: bytes) -> bytes:
    """The chunk index's entry for a chunk of ``rows`` stored as ``stored``: ``b"<rows>,<first>,<last>"`` and the encoding byte."""
    return f"{len(rows)},{int(rows['ts_ms'][0])},{int(rows['ts_ms'][-1])}".encode() + stored[:1]


def parse_index_value(value: bytes) -> ChunkInfo:
    rows, first, last = value[:-1].split(b",")
    return ChunkInfo(int(rows), value[-1:], int(first), int(last))


def encode(rows: np.ndarray, *, packed: bool) -> bytes:
    """A chunk's stored bytes: the rows as they are (``packed`` false) or compressed."""
    raw = np.ascontiguousarray(rows).tobytes()
    if not packed:
        return RAW + raw
    planes = np.frombuffer(raw, dtype=np.uint8).reshape(len(rows), rows.dtype.itemsize).T.tobytes()
    return PACKED + zstd.compress(planes)


def decode(stored: bytes | None, dtype: np.dtype) -> np.ndarray:
    """The rows of a stored chunk, oldest first (none for a missing chunk)."""
    if not stored:
        return np.zeros(0, dtype=dtype)
    codec, body = stored[:1], stored[1:]
    if codec == RAW:
        return np.frombuffer(body, dtype=dtype).copy()
    if codec == PACKED:
        planes = np.frombuffer(zstd.decompress(body), dtype=np.uint8)
        width = dtype.itemsize
        return np.ascontiguousarray(planes.reshape(width, len(planes) // width).T).view(dtype).reshape(-1)
    raise ValueError(f"unknown chunk encoding {codec!r}")


def _as_bytes(rows: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(rows).view(np.dtype((np.void, rows.dtype.itemsize)))


def unique_rows(rows: np.ndarray, kind: RowKind) -> np.ndarray:
    """``rows`` sorted by time with duplicates gone as ``kind.unique`` says (the last of equal timestamps wins)."""
    if not len(rows):
        return rows
    if kind.unique == "ts":
        _, last = np.unique(rows["ts_ms"][::-1], return_index=True)
        return rows[::-1][last]
    # Identical rows collapse; order by time, then by the bytes so that the result is canonical.
    _, first = np.unique(_as_bytes(rows), return_index=True)
    kept = rows[first]
    return kept[np.argsort(kept["ts_ms"], kind="stable")]


def merge(stored: np.ndarray, new: np.ndarray, kind: RowKind) -> tuple[np.ndarray, np.ndarray]:
    """``stored`` with ``new`` written over it, and the rows of ``new`` it added (``ts`` kinds: at a
    time ``stored`` has no row for; ``row`` kinds: not stored yet), oldest first."""
    fresh = unique_rows(new, kind)
    if not len(stored):
        return fresh, fresh
    merged = unique_rows(np.concatenate((stored, new)), kind)
    if kind.unique == "ts":
        return merged, fresh[~np.isin(fresh["ts_ms"], stored["ts_ms"])]
    return merged, fresh[~np.isin(_as_bytes(fresh), _as_bytes(stored))]


def split_by_chunk(rows: np.ndarray, kind: RowKind) -> dict[int, np.ndarray]:
    """Rows grouped by the start of their chunk."""
    starts = rows["ts_ms"] - rows["ts_ms"] % kind.span_ms
    return {int(start): rows[starts == start] for start in np.unique(starts)}


def chunks_between(starts: list[int], kind: RowKind, start_ms: int | None, end_ms: int | None) -> list[int]:
    """Chunk starts holding rows with ``start_ms <= ts < end_ms`` (None: unbounded), ascending."""
    low = -(1 << 62) if start_ms is None else kind.chunk_start(start_ms)
    high = 1 << 62 if end_ms is None else end_ms
    return sorted(start for start in starts if low <= start < high)


def within(rows: np.ndarray, start_ms: int | None, end_ms: int | None) -> np.ndarray:
    keep = np.ones(len(rows), dtype=bool)
    if start_ms is not None:
        keep &= rows["ts_ms"] >= start_ms
    if end_ms is not None:
        keep &= rows["ts_ms"] < end_ms
    return rows[keep]
