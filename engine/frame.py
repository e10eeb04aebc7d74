"""The Frame: one computed heatmap, the engine's output."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from engine.types import Float32Array, Float64Array, Int64Array


@dataclass(frozen=True, slots=True)
class FrameCandles:
    """One candle per heatmap column, shape (columns,) each; NaN where no data."""

    ts_ms: Int64Array
    open: Float64Array
    high: Float64Array
    low: Float64Array
    close: Float64Array
    volume_usd: Float64Array


@dataclass(frozen=True, slots=True)
class FrameStats:
    """Summary numbers of a frame, USD.

    Attributes
    ----------
    total_long_usd, total_short_usd : float
        Outstanding notional of one side summed over rows in the last column
        (the book as it stands at ``data_until_ms``).
    max_long_usd, max_short_usd : float
        Largest single cell of one side over the whole frame.
    max_cell_usd : float
        Largest ``long + short`` cell over the whole frame (the scale of a
        single-layer picture).
    percentiles : dict
        ``"p50"``, ``"p90"``, ``"p99"`` of the non-zero ``long + short`` cells
        (0 when there are none).
    out_of_grid_usd : float
        Notional of all levels opened beyond the price grid over the window
        (both sides), left out of the cells.
    beyond_long_usd, beyond_short_usd : float
        Outstanding notional of levels beyond the grid at ``data_until_ms``:
        what ``total_*_usd`` leaves out. Such levels lie farther from every
        price of the window than the grid's margin, so none of them could
        have been crossed inside it.
    consumed_long_usd, consumed_short_usd : float
        Notional the model saw liquidated (levels crossed) over the window.
    """

    total_long_usd: float
    total_short_usd: float
    max_long_usd: float
    max_short_usd: float
    max_cell_usd: float
    percentiles: dict[str, float]
    out_of_grid_usd: float = 0.0
    beyond_long_usd: float = 0.0
    beyond_short_usd: float = 0.0
    consumed_long_usd: float = 0.0
    consumed_short_usd: float = 0.0


@dataclass(frozen=True, slots=True)
class FrameIdentity:
    """What a computed result is of: one market, one model version, one range.

    Attributes
    ----------
    exchange, symbol : str
        The market (``exchange`` is ``"all"`` for a coin summed over venues).
    model, model_version, params_hash : str
        The model's name, semantic version and the hash of its parameters.
    range : str
        The range's name (see :mod:`engine.ranges`).
    """

    exchange: str
    symbol: str
    model: str
    model_version: str
    params_hash: str
    range: str


IDENTITY_FIELDS = tuple(f.name for f in fields(FrameIdentity))


def identity_fields(result: object) -> dict[str, str]:
    """The :class:`FrameIdentity` fields of a result (a frame, a map, a stored form of one), by name."""
    return {name: getattr(result, name) for name in IDENTITY_FIELDS}


@dataclass(frozen=True, slots=True)
class Frame(FrameIdentity):
    """A heatmap over one range of one market under one model version (identity: :class:`FrameIdentity`).

    Attributes
    ----------
    x_ms : Int64Array, shape (columns,)
        Column start times, epoch ms UTC, oldest first.
    y : Float64Array, shape (rows,)
        Price row centres, ascending, USD.
    long_usd, short_usd : Float32Array, shape (columns, rows)
        Outstanding liquidation notional of long / short positions whose
        estimated liquidation price falls in each row, as it stood at the end
        of each column, USD.
    coverage_start_ms : int
        First input bar the frame rests on (later than ``x_ms[0]`` when the
        data is shorter than the range).
    data_until_ms : int
        End (exclusive) of the last input bar used.
    leverage : str
        The leverage filter the frame shows (``"all"``, ``"low"``, ``"mid"``,
        ``"high"`` or ``"x25_50"``-style subsets; see :mod:`engine.leverage`).
    tiers : tuple of float
        Leverage of the tiers included.
    clusters : list of dict
        Magnet zones of the last column (see :func:`engine.clusters.find_clusters`).
    sources : dict or None
        For a market summed over venues (``exchange == "all"``): per venue,
        what it covered (e.g. ``engine.aggregate.VenueCoverage`` as a dict).
    margin_table : dict or None
        For models that place levels by the market's maintenance-margin
        tiers: ``{"source": str, "brackets": [[cap_usd, mmr, max_leverage], ...]}``,
        the table used; None for models whose tiers are their parameters.
    """

    generated_at_ms: int
    data_until_ms: int
    coverage_start_ms: int
    x_ms: Int64Array
    y: Float64Array
    long_usd: Float32Array
    short_usd: Float32Array
    candles: FrameCandles
    stats: FrameStats
    clusters: list[dict[str, Any]] = field(default_factory=list)
    leverage: str = "all"
    tiers: tuple[float, ...] = ()
    sources: dict[str, dict[str, Any]] | None = None
    margin_table: dict[str, Any] | None = None

    @property
    def frame_id(self) -> str:
        """Stable id: the same inputs, model version and leverage filter give the same id."""
        base = f"{self.model}-{self.params_hash[:8]}-{self.range}-{self.data_until_ms}"
        return base if self.leverage == "all" else f"{base}-{self.leverage}"
