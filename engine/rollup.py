"""Roll-ups: the coarse bars the long ranges run on, kept instead of months of 1m bars.

Ranges longer than 7 days run on a base coarser than the input bars (see
:func:`engine.ranges.base_step_ms`: 30d on 10m, 90d on 30m, 180d on 1h, 1y on 2h).
The engine makes those bases in two steps: 1m bars into :data:`COMMON_STEP_MS`
bars, those into each range's base. A roll-up is one such base series, made the
same way, so a frame built from roll-ups equals one built from the 1m bars bar
for bar and bit for bit, as long as every roll-up bar is complete (its bucket
ends at or before the frame's data end). Pure numpy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from engine.ranges import MINUTE_MS, RANGES, base_step_ms
from engine.resample import aggregate_bars
from engine.series import MarketSeries
from engine.types import Int64Array

# Input bars of every market (the collectors' candles).
INPUT_STEP_MS = MINUTE_MS


# Steps of the long ranges' bases, and the step every one of them is made from.
ROLLUP_STEPS_MS: tuple[int, ...] = tuple(sorted({base_step_ms(spec, INPUT_STEP_MS) for spec in RANGES.values()} - {INPUT_STEP_MS}))
COMMON_STEP_MS: int = math.gcd(*ROLLUP_STEPS_MS)


@dataclass(frozen=True, slots=True)
class Rollup:
    """Bars at one coarse step made from 1m bars.

    Attributes
    ----------
    series : MarketSeries
        The coarse bars (open interest of each bucket's last input bar).
    first_input_ms : Int64Array, shape (n,)
        Open time of the first input bar inside each coarse bar (a frame's
        coverage starts at the first input bar it rests on).
    """

    series: MarketSeries
    first_input_ms: Int64Array

    def __len__(self) -> int:
        return len(self.series)

    def slice(self, start: int, stop: int) -> Rollup:
        return Rollup(self.series.slice(start, stop), self.first_input_ms[start:stop])


def _coarser(rollup: Rollup, step_ms: int) -> Rollup:
    merged = aggregate_bars(rollup.series, step_ms)
    bucket = rollup.series.ts_ms // step_ms * step_ms
    first = np.flatnonzero(np.concatenate(([True], bucket[1:] != bucket[:-1]))) if len(bucket) else np.zeros(0, dtype=np.int64)
    return Rollup(merged, rollup.first_input_ms[first].astype(np.int64))


def roll_up(series: MarketSeries, steps_ms: tuple[int, ...] = ROLLUP_STEPS_MS) -> dict[int, Rollup]:
    """Every roll-up of a 1m series, complete buckets only.

    Parameters
    ----------
    series : MarketSeries
        1m input bars (``step_ms == INPUT_STEP_MS``), open interest aligned.
    steps_ms : tuple of int
        Roll-up steps, each a multiple of :data:`COMMON_STEP_MS`.

    Returns
    -------
    dict
        ``{step_ms: Rollup}``; a bucket is kept only when the input covers it to
        its end (the last input bar ends at or after the bucket's end), so a
        bucket still filling is never stored as if it were whole.
    """
    if series.step_ms != INPUT_STEP_MS:
        raise ValueError(f"roll-ups are made from {INPUT_STEP_MS} ms bars, got {series.step_ms} ms")
    if not len(series):
        return {}
    end = int(series.ts_ms[-1]) + series.step_ms
    complete = series.slice(0, int(np.searchsorted(series.ts_ms, end - end % COMMON_STEP_MS, side="left")))
    common = _coarser(Rollup(complete, complete.ts_ms), COMMON_STEP_MS)
    out: dict[int, Rollup] = {}
    for step in steps_ms:
        if step % COMMON_STEP_MS:
            raise ValueError(f"roll-up step {step} ms is not a multiple of {COMMON_STEP_MS} ms")
        whole = common.slice(0, int(np.searchsorted(common.series.ts_ms, end - end % step, side="left")))
        out[step] = whole if step == COMMON_STEP_MS else _coarser(whole, step)
    return out


def rollup_base(rollups: Mapping[int, Rollup], step_ms: int, start_ms: int, end_ms: int) -> Rollup | None:
    """The bars of roll-up ``step_ms`` opening in ``[start_ms, end_ms)``, or None without that roll-up."""
    rollup = rollups.get(step_ms)
    if rollup is None:
        return None
    ts = rollup.series.ts_ms
    return rollup.slice(int(np.searchsorted(ts, start_ms, side="left")), int(np.searchsorted(ts, end_ms, side="left")))
