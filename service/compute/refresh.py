"""Keeping a market's frames current: roll-ups, live ranges at every bar, the others as their columns end.

One refresh of a market (a venue market, or a coin's ``all`` market summed over its venues):

1. history of frames whose inputs changed since they were built is dropped (the collectors
   mark where: ``revised_from_ms``), so a listed id always builds to the same bytes;
2. the 1m bars of the last :data:`~service.compute.frames.FINE_LOAD_MS` are read, and every
   roll-up bucket that has ended since the last refresh is written;
3. live ranges (``Settings.is_live``) are built, packed and stored whole as the latest;
4. every other range whose column has ended since it was last listed is built at that
   column's end and recorded in history (its bytes are built again on request);
5. inputs older than they are needed are trimmed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from dataclasses import dataclass

import msgspec
import numpy as np

from engine.ranges import DAY_MS, RANGES
from engine.rollup import INPUT_STEP_MS, roll_up
from service.compute.frames import FINE_LOAD_MS, Built, Inputs, build, is_fine, last_bar_ms, load_inputs, rollup_rows, rollup_step
from service.markets import AGGREGATE_EXCHANGE
from service.metrics import FRAMES_COMPUTED, MARKET_REFRESH_SECONDS
from service.settings import Settings
from service.store.chunks import ROLLUPS
from service.store.writer import Store

log = logging.getLogger(__name__)

# How often a market's old inputs are trimmed.
TRIM_EVERY_MS = 3_600_000


@dataclass(slots=True)
class Refresher:
    """Rebuilds and stores the frames of one market on request (see the module's docstring)."""

    store: Store
    settings: Settings

    def live_ranges(self) -> list[str]:
        return [name for name in self.settings.ranges if self.settings.is_live(name)]

    def column_end_ranges(self) -> list[str]:
        return [name for name in self.settings.ranges if not self.settings.is_live(name)]

    def rollup_retention_ms(self, step_ms: int) -> int:
        """How long roll-ups of one step are needed: the longest range on them, its history and a day."""
        needs = [
            spec.span_ms + (self.settings.history_keep(name) + 1) * spec.column_ms
            for name, spec in RANGES.items()
            if name in self.settings.ranges and not is_fine(name) and rollup_step(name) == step_ms
        ]
        return max(needs, default=0) + DAY_MS

    async def refresh(self, exchange: str, symbol: str, now: int) -> list[str]:
        """Bring one market's frames up to its newest bar; returns the ids of the frames recorded."""
        last = await last_bar_ms(self.store, exchange, symbol)
        if last is None:
            return []
        started = time.perf_counter()
        until = last + INPUT_STEP_MS
        meta = await self.store.market_meta(exchange, symbol)
        revised_from = int(meta["revised_from_ms"]) if "revised_from_ms" in meta else None
        if revised_from is None and until <= int(meta.get("data_until_ms", 0)):
            return []  # its frames rest on these bars already (a job queued twice, or taken over)
        if revised_from is not None:
            dropped = await self.store.delist_frames_after(exchange, symbol, self.settings.models, self.settings.ranges, revised_from)
            log.info("%s:%s: inputs from %d changed; %d frames dropped from history", exchange, symbol, revised_from, dropped)
        fine = await load_inputs(self.store, exchange, symbol, ["24h"], until)
        if fine is None:
            return []
        if exchange == AGGREGATE_EXCHANGE:
            await self.store.add_market(exchange, symbol)
            coverage = fine.sources or {}
            await self.store.set_market_meta(exchange, symbol, venues=",".join(sorted(coverage)), coverage=msgspec.json.encode(coverage).decode())
        rolled_until = await self._roll_up(exchange, symbol, fine, int(meta.get("rolled_until_ms", 0)), revised_from)
        built = await asyncio.to_thread(self._build, fine, exchange, symbol, self.live_ranges(), now)
        built += await self._column_ends(exchange, symbol, fine, until, now)
        for item in built:
            await self.store.put_frame(
                item.record,
                packed=item.packed if item.record.range in self.live_ranges() else None,
                event=item.event,
                keep=self.settings.history_keep(item.record.range),
                column_ms=RANGES[item.record.range].column_ms,
            )
        trimmed_at = await self._trim(exchange, symbol, now, int(meta.get("trimmed_at_ms", 0)))
        values: dict[str, int] = {"last_update_ms": now, "data_until_ms": until, "rolled_until_ms": rolled_until, "trimmed_at_ms": trimmed_at}
        await self.store.set_market_meta(exchange, symbol, **values)
        if revised_from is not None:
            await self.store.clear_market_meta(exchange, symbol, "revised_from_ms", if_value=str(revised_from))
        FRAMES_COMPUTED.labels(exchange).inc(len(built))
        MARKET_REFRESH_SECONDS.observe(time.perf_counter() - started)
        log.info("%s:%s: %d frames up to %d", exchange, symbol, len(built), until)
        return [item.record.id for item in built]

    def _build(self, inputs: Inputs, exchange: str, symbol: str, ranges: list[str], generated_at_ms: int) -> list[Built]:
        if not ranges:
            return []
        return build(
            inputs, exchange=exchange, symbol=symbol, models=self.settings.models, ranges=ranges, rows=self.settings.frame_rows, generated_at_ms=generated_at_ms
        )

    async def _roll_up(self, exchange: str, symbol: str, fine: Inputs, rolled_until: int, revised_from: int | None) -> int:
        """Write the roll-up buckets that ended after ``rolled_until`` (or after the revision); returns the new mark."""
        series = fine.series
        window_start = fine.data_until_ms - FINE_LOAD_MS
        since = rolled_until if revised_from is None else min(rolled_until, revised_from)
        # Only buckets that end after `since` are written: roll up from the widest bucket before it.
        tail_from = since - since % max(ROLLUPS) - max(ROLLUPS)
        if tail_from > int(series.ts_ms[0]):
            series = series.slice(int(np.searchsorted(series.ts_ms, tail_from, side="left")), len(series))
            window_start = max(window_start, tail_from)
        rollups = await asyncio.to_thread(roll_up, series)
        newest = rolled_until
        for step, rollup in rollups.items():
            ts = rollup.series.ts_ms
            # A bucket that began before the bars read may lack some the store has: never written.
            fresh = (ts + step > since) & (ts >= -(-window_start // step) * step)
            if fresh.any():
                await self.store.upsert_rows(ROLLUPS[step], exchange, symbol, rollup_rows(rollup.slice(int(fresh.argmax()), len(rollup))))
            if len(ts):
                newest = max(newest, int(ts[-1]) + step)
        return newest

    async def _column_ends(self, exchange: str, symbol: str, fine: Inputs, until: int, now: int) -> list[Built]:
        """Frames of the column-end ranges whose newest ended column is not recorded yet, built at that column's end."""
        due: dict[int, list[str]] = defaultdict(list)
        for name in self.column_end_ranges():
            end = until - until % RANGES[name].column_ms
            newest = await self.store.newest_record(exchange, symbol, self.settings.models[0], name)
            if newest is None or newest.data_until < end:
                due[end].append(name)
        built: list[Built] = []
        for end, names in sorted(due.items()):
            inputs = fine if end == until and all(is_fine(name) for name in names) else await load_inputs(self.store, exchange, symbol, names, end, sources=fine.sources)
            if inputs is None or inputs.data_until_ms != end:
                continue  # no bar ends exactly there (a gap): the next column's end will be recorded
            built += await asyncio.to_thread(self._build, inputs, exchange, symbol, names, now)
        return built

    async def _trim(self, exchange: str, symbol: str, now: int, trimmed_at: int) -> int:
        """Drop inputs older than they are needed, at most once per :data:`TRIM_EVERY_MS`; returns when it last ran.

        Frames read windows bounded by their own end, never by retention, so rows kept a
        little longer change nothing but memory.
        """
        if now - trimmed_at < TRIM_EVERY_MS:
            return trimmed_at
        if exchange != AGGREGATE_EXCHANGE:
            await self.store.trim(
                exchange,
                symbol,
                candles_before_ms=now - int(self.settings.candle_retention_days * DAY_MS),
                liquidations_before_ms=now - int(self.settings.liquidation_retention_days * DAY_MS),
            )
        for step, kind in ROLLUPS.items():
            await self.store.trim_rows(kind, exchange, symbol, now - self.rollup_retention_ms(step))
        return now

