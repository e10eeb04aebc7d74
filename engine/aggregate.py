"""Summing several venues' series of one coin into one (the ``all`` markets).

Open interest and volumes add up across venues; prices are a volume-weighted
average of the venues trading in each bar. Pure numpy: no IO.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from engine.series import MarketSeries
from engine.types import Float64Array


@dataclass(frozen=True, slots=True)
class VenueCoverage:
    """What one venue contributed to an aggregated series.

    Attributes
    ----------
    first_bar_ms, last_bar_ms : int
        Open times of its first and last bar, epoch ms.
    bars : int
        Bars it has in the aggregated window.
    open_interest_from_ms : int or None
        Open time of its first bar with open interest (None: it has none).
    volume_usd : float
        Its traded notional over the window, USD (its price weight).
    """

    first_bar_ms: int
    last_bar_ms: int
    bars: int
    open_interest_from_ms: int | None
    volume_usd: float


@dataclass(frozen=True, slots=True)
class AggregatedSeries:
    """An aggregated series and, per venue, what it contributed."""

    series: MarketSeries
    coverage: dict[str, VenueCoverage]


def _on_grid(values: Float64Array, index: np.ndarray, n: int) -> Float64Array:
    out = np.full(n, np.nan)
    out[index] = values
    return out


def _carried(open_interest: Float64Array) -> Float64Array:
    """Forward-filled, and before the first observation held at it (so it adds no change there)."""
    finite = np.isfinite(open_interest)
    last_seen = np.maximum.accumulate(np.where(finite, np.arange(len(open_interest)), -1))
    first = int(np.argmax(finite))
    return open_interest[np.where(last_seen >= 0, last_seen, first)]


def aggregate_series(parts: Mapping[str, MarketSeries]) -> AggregatedSeries:
    """One coin's series over several venues.

    Parameters
    ----------
    parts : mapping of venue name to MarketSeries
        Each venue's bars at the same ``step_ms``; any lengths and gaps.

    Returns
    -------
    AggregatedSeries
        Bars on the union of the venues' bar times. Per bar:

        * ``open``/``high``/``low``/``close``: the average over venues with that bar,
          weighted by each venue's total volume over the window (fixed weights, so a
          venue's basis does not make the price jump with its per-bar volume; equal
          weights if no venue has volume);
        * ``volume_usd``: the sum over venues with the bar;
        * ``taker_buy_usd``: the volume times the taker-buy share of the venues that
          report it (NaN where none does);
        * ``open_interest_usd``: the sum over venues of each venue's open interest,
          carried forward over its gaps and held at its first observation before it,
          so that a venue joining or pausing adds no change of open interest;
          NaN before the first bar where any venue has open interest.

    Raises
    ------
    ValueError
        No venues, an empty series, or differing steps.
    """
    if not parts:
        raise ValueError("nothing to aggregate: no venues given")
    steps = {series.step_ms for series in parts.values()}
    if len(steps) != 1:
        raise ValueError(f"venues must share one step, got {sorted(steps)}")
    if any(len(series) == 0 for series in parts.values()):
        empty = [venue for venue, series in parts.items() if len(series) == 0]
        raise ValueError(f"empty series for {', '.join(empty)}")
    step_ms = steps.pop()
    ts = np.unique(np.concatenate([series.ts_ms for series in parts.values()]))
    n = len(ts)

    price_sum = {name: np.zeros(n) for name in ("open", "high", "low", "close")}
    weight_sum = np.zeros(n)
    volume = np.zeros(n)
    known_taker = np.zeros(n)
    known_taker_volume = np.zeros(n)
    open_interest = np.zeros(n)
    has_open_interest = np.zeros(n, dtype=bool)
    coverage: dict[str, VenueCoverage] = {}
    totals = {venue: float(np.nansum(series.volume_usd)) for venue, series in parts.items()}
    use_volume_weights = sum(totals.values()) > 0

    for venue, series in parts.items():
        index = np.searchsorted(ts, series.ts_ms)
        weight = totals[venue] if use_volume_weights else 1.0
        for name in price_sum:
            price_sum[name][index] += weight * getattr(series, name)
        weight_sum[index] += weight
        bar_volume = np.nan_to_num(series.volume_usd)
        volume[index] += bar_volume
        taker = series.taker_buy_usd
        reports = np.isfinite(taker)
        known_taker[index[reports]] += taker[reports]
        known_taker_volume[index[reports]] += bar_volume[reports]

        venue_oi = _on_grid(series.open_interest_usd, index, n)
        observed = np.isfinite(venue_oi)
        oi_from = None
        if observed.any():
            first = int(np.argmax(observed))
            oi_from = int(ts[first])
            open_interest += _carried(venue_oi)
            has_open_interest[first:] = True
        coverage[venue] = VenueCoverage(
            first_bar_ms=int(series.ts_ms[0]),
            last_bar_ms=int(series.ts_ms[-1]),
            bars=len(series),
            open_interest_from_ms=oi_from,
            volume_usd=totals[venue],
        )

    with np.errstate(invalid="ignore", divide="ignore"):
        prices = {name: total / weight_sum for name, total in price_sum.items()}
        taker_buy = np.where(known_taker_volume > 0, known_taker / known_taker_volume * volume, np.nan)
    # Weighted averages keep each bar consistent; rounding must not break low <= open, close <= high.
    high = np.maximum.reduce([prices["high"], prices["open"], prices["close"]])
    low = np.minimum.reduce([prices["low"], prices["open"], prices["close"]])
    series = MarketSeries(
        step_ms=step_ms,
        ts_ms=ts.astype(np.int64),
        open=prices["open"],
        high=high,
        low=low,
        close=prices["close"],
        volume_usd=volume,
        taker_buy_usd=taker_buy,
        open_interest_usd=np.where(has_open_interest, open_interest, np.nan),
    )
    return AggregatedSeries(series, coverage)
