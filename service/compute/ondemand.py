"""Frames and maps a serving process makes when a client asks, from the store and the engine pool.

Live ranges are kept whole in the store (the refresher packs them); every other frame, of
history, of a long range or with a leverage filter, is built again from its inputs
(:mod:`service.compute.frames`) in the engine pool and must match the digest its record
holds. Each result is computed once per process (concurrent askers wait for the same work)
and the newest few are kept.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from engine.book import liquidation_map
from engine.clusters import find_clusters
from engine.frame import Frame
from engine.leverage import select_tiers
from engine.models import find_version, get_model
from service.compute.frames import Inputs, build, load_inputs
from service.compute.pool import EnginePool
from service.settings import Settings
from service.store.reader import StoreReader
from service.store.records import FrameRecord, digest
from service.wire.codec import encode_field, plain
from service.wire.levels import levels_out
from service.wire.packed import unpack_frame
from service.wire.schemas import LevelsOut

T = TypeVar("T")


class FrameGone(Exception):
    """A listed frame whose rebuild no longer gives its bytes (its model version is gone, or its inputs)."""


def check_leverage(model: str, leverage: str | None) -> str | None:
    """The leverage filter as the engine takes it (None for all tiers); ValueError names what is allowed."""
    selection = select_tiers(get_model(model).tiers, leverage)
    return None if selection.label == "all" else leverage


@dataclass(frozen=True, slots=True)
class FrameId:
    """What a frame id says: ``<model>-<params hash, 8>-<range>-<data until ms>[-<leverage>]``."""

    model: str
    params_hash8: str
    range: str
    data_until_ms: int
    leverage: str

    @classmethod
    def parse(cls, frame_id: str) -> FrameId | None:
        parts = frame_id.split("-")
        if len(parts) not in (4, 5) or not parts[3].isdigit():
            return None
        return cls(parts[0], parts[1], parts[2], int(parts[3]), parts[4] if len(parts) == 5 else "all")


def _rebuild(inputs: Inputs, record: FrameRecord, leverage: str | None) -> bytes:
    """In the engine pool: the stored form of a recorded frame (with a leverage filter: of its filtered variant)."""
    built = build(
        inputs,
        exchange=record.exchange,
        symbol=record.symbol,
        models=[find_version(record.model, record.params_hash) or record.model],
        ranges=[record.range],
        rows=record.rows,
        generated_at_ms=record.generated_at if leverage is None else record.data_until,
        leverage=leverage,
    )
    return built[0].packed


def _levels(inputs: Inputs, record: FrameRecord, leverage: str | None) -> LevelsOut:
    """In the engine pool: the liquidation map by tier, its largest rows and clusters at a recorded frame's end."""
    book = liquidation_map(
        inputs.series,
        model=record.model,
        range_name=record.range,
        exchange=record.exchange,
        symbol=record.symbol,
        rows=record.rows,
        leverage=leverage,
        rollups=inputs.rollups or None,
        margin_table=inputs.margin_table,
    )
    bands = find_clusters(book.y, book.long_usd.sum(axis=0), book.short_usd.sum(axis=0), book.price)
    return levels_out(record.id, book, bands)


class _Memo:
    """Results by key, computed once (concurrent callers share the work), the newest ``size`` kept."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._done: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
        self._running: dict[tuple[Any, ...], asyncio.Future[Any]] = {}

    async def get(self, key: tuple[Any, ...], make: Callable[[], Awaitable[T]]) -> T:
        if key in self._done:
            self._done.move_to_end(key)
            return self._done[key]  # type: ignore[no-any-return]
        if key in self._running:
            return await asyncio.shield(self._running[key])  # type: ignore[no-any-return]
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._running[key] = future
        try:
            value = await make()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning when nobody else waits
            raise
        finally:
            del self._running[key]
        future.set_result(value)
        if value is not None:
            self._done[key] = value
            while len(self._done) > self.size:
                self._done.popitem(last=False)
        return value

    def drop(self, keep: Callable[[tuple[Any, ...]], bool]) -> None:
        """Forget the results whose key ``keep`` refuses."""
        for key in [key for key in self._done if not keep(key)]:
            del self._done[key]

    def __len__(self) -> int:
        return len(self._done)


class FrameService:
    """Every frame a client may ask for, as served bytes, from the store (kept whole) or the engine pool (built again)."""

    def __init__(self, store: StoreReader, settings: Settings, pool: EnginePool, max_entries: int = 64) -> None:
        self.store = store
        self.settings = settings
        self.pool = pool
        self._frames = _Memo(max_entries)
        self._fields = _Memo(max_entries * 2)
        self._levels = _Memo(max_entries)
        # The newest frame of each market, model and range served from its latest copy: its
        # results are dropped once a newer frame is announced (clients move on to that one), so
        # the memos hold one generation of newest frames, not two across each bar's close.
        self._newest: dict[tuple[str, str, str, str], str] = {}

    async def newest_record(self, exchange: str, symbol: str, model: str, range_name: str) -> FrameRecord | None:
        return await self.store.newest_record(exchange, symbol, model, range_name)

    async def frame(self, exchange: str, symbol: str, frame_id: str) -> Frame | None:
        """A listed frame (None if ``frame_id`` is not in history); :class:`FrameGone` if it no longer builds to its bytes."""
        parsed = FrameId.parse(frame_id)
        if parsed is None:
            return None

        async def make() -> Frame | None:
            if parsed.leverage != "all":
                return await self._filtered(exchange, symbol, parsed, frame_id)
            if self.settings.is_live(parsed.range) and parsed.range in self.settings.ranges:
                latest = await self.store.latest_packed(exchange, symbol, parsed.model, parsed.range)
                if latest is not None and latest[0] == frame_id:
                    self._newest[(exchange, symbol, parsed.model, parsed.range)] = frame_id
                    return await asyncio.to_thread(unpack_frame, latest[1])
            record = (await self.store.records(exchange, symbol, parsed.model, parsed.range, [frame_id]))[0]
            if record is None:
                return None
            packed = await self._rebuilt(record, None)
            if digest(packed) != record.digest:
                raise FrameGone(f"frame {frame_id} no longer builds to the bytes it was listed with")
            return await asyncio.to_thread(unpack_frame, packed)

        return await self._frames.get((exchange, symbol, frame_id), make)

    def superseded(self, exchange: str, symbol: str, model: str, range_name: str, frame_id: str) -> None:
        """A newer frame ``frame_id`` was announced: forget what was kept of the newest before it
        (its forms, leverage variants and levels). Frames asked for by id stay kept as they were."""
        previous = self._newest.get((exchange, symbol, model, range_name))
        if previous is None or previous == frame_id:
            return
        del self._newest[(exchange, symbol, model, range_name)]

        def keep(key: tuple[Any, ...]) -> bool:
            return key[:2] != (exchange, symbol) or (key[2] != previous and not key[2].startswith(previous + "-"))

        for memo in (self._frames, self._fields, self._levels):
            memo.drop(keep)

    def kept(self) -> int:
        """How many results the memos hold."""
        return len(self._frames) + len(self._fields) + len(self._levels)

    async def _rebuilt(self, record: FrameRecord, leverage: str | None) -> bytes:
        if find_version(record.model, record.params_hash) is None:
            raise FrameGone(f"frame {record.id} was built by {record.model} {record.model_version}, which this build no longer computes")
        inputs = await load_inputs(self.store, record.exchange, record.symbol, [record.range], record.data_until, sources=record.sources, margin_table=record.margin_table)
        if inputs is None or inputs.data_until_ms != record.data_until:
            raise FrameGone(f"the inputs of frame {record.id} are no longer stored")
        return await self.pool.run(_rebuild, inputs, record, leverage)

    async def _filtered(self, exchange: str, symbol: str, parsed: FrameId, frame_id: str) -> Frame | None:
        base_id = frame_id.rsplit("-", 1)[0]
        record = (await self.store.records(exchange, symbol, parsed.model, parsed.range, [base_id]))[0]
        if record is None:
            return None
        # The id holds the filter's label: a group name, or "x25_50" for the tiers 25,50.
        wanted = parsed.leverage[1:].replace("_", ",") if parsed.leverage.startswith("x") else parsed.leverage
        try:
            leverage = check_leverage(parsed.model, wanted)
        except ValueError:
            return None
        packed = await self._rebuilt(record, leverage)
        frame = await asyncio.to_thread(unpack_frame, packed)
        return frame if frame.frame_id == frame_id else None

    async def field(self, exchange: str, symbol: str, frame_id: str, field: str) -> bytes | None:
        """One served form (compressed where stored so) of a listed frame, or None."""

        async def make() -> bytes | None:
            frame = await self.frame(exchange, symbol, frame_id)
            return None if frame is None else await asyncio.to_thread(encode_field, frame, field)

        return await self._fields.get((exchange, symbol, frame_id, field), make)

    async def newest_id(self, exchange: str, symbol: str, model: str, range_name: str, leverage: str | None = None) -> str | None:
        """Id of the newest frame of a market, model and range (with a leverage filter: of its variant)."""
        if leverage is None and self.settings.is_live(range_name):
            latest = await self.store.latest_packed(exchange, symbol, model, range_name)
            if latest is not None:
                self._newest[(exchange, symbol, model, range_name)] = latest[0]
                return latest[0]
        record = await self.store.newest_record(exchange, symbol, model, range_name)
        if record is None:
            return None
        return record.id if leverage is None else f"{record.id}-{select_tiers(get_model(model).tiers, leverage).label}"

    async def newest_plain(self, exchange: str, symbol: str, model: str, range_name: str, field: str) -> bytes | None:
        """One form of the newest frame as a client reads it (decompressed), or None without one."""
        frame_id = await self.newest_id(exchange, symbol, model, range_name)
        stored = None if frame_id is None else await self.field(exchange, symbol, frame_id, field)
        return None if stored is None else plain(field, stored)

    async def levels(self, exchange: str, symbol: str, model: str, range_name: str, leverage: str | None) -> LevelsOut | None:
        """The liquidation map by tier, its largest rows and clusters at the newest frame's end (None without a frame)."""
        record = await self.store.newest_record(exchange, symbol, model, range_name)
        if record is None:
            return None
        self._newest[(exchange, symbol, model, range_name)] = record.id

        async def make() -> LevelsOut:
            inputs = await load_inputs(self.store, exchange, symbol, [range_name], record.data_until, sources=record.sources, margin_table=record.margin_table)
            if inputs is None:
                raise FrameGone(f"the inputs of frame {record.id} are no longer stored")
            return await self.pool.run(_levels, inputs, record, leverage)

        return await self._levels.get((exchange, symbol, record.id, leverage or "all"), make)

