"""The range grid: how wide a column is and how many columns a range shows."""

from __future__ import annotations

from dataclasses import dataclass

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS


@dataclass(frozen=True, slots=True)
class RangeSpec:
    """A heatmap range: ``columns`` columns of ``column_ms`` each."""

    name: str
    column_ms: int
    columns: int

    @property
    def span_ms(self) -> int:
        return self.column_ms * self.columns


RANGES: dict[str, RangeSpec] = {
    spec.name: spec
    for spec in (
        RangeSpec("12h", 5 * MINUTE_MS, 144),
        RangeSpec("24h", 5 * MINUTE_MS, 288),
        RangeSpec("3d", 15 * MINUTE_MS, 288),
        RangeSpec("7d", 30 * MINUTE_MS, 336),
        RangeSpec("30d", 2 * HOUR_MS, 360),
        RangeSpec("90d", 6 * HOUR_MS, 360),
        RangeSpec("180d", 12 * HOUR_MS, 360),
        RangeSpec("1y", DAY_MS, 365),
    )
}

# Ranges longer than this run on a base coarser than the input bars: a year of
# 1m bars is half a million steps, and a column of a long range is hours wide,
# so finer steps would cost much and show little.
FULL_RESOLUTION_SPAN_MS = 7 * DAY_MS
# Base steps per column for the longer ranges (30d: 10m, 90d: 30m, 180d: 1h, 1y: 2h).
BASE_STEPS_PER_COLUMN = 12


def base_step_ms(spec: RangeSpec, series_step_ms: int) -> int:
    """Step the model runs at for a range, given the input bar width.

    Ranges up to 7d use the input bars as they are. Longer ranges use the
    largest multiple of the input step that divides the column width and is at
    most ``column_ms / 12``, or the input step where that is finer already.
    """
    if spec.span_ms <= FULL_RESOLUTION_SPAN_MS:
        return series_step_ms
    target = spec.column_ms // BASE_STEPS_PER_COLUMN
    for multiple in range(target // series_step_ms, 1, -1):
        candidate = multiple * series_step_ms
        if spec.column_ms % candidate == 0:
            return candidate
    return series_step_ms
