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
