"""Clusters ("magnet zones"): price bands of high liquidation intensity on each side of price."""

from __future__ import annotations

from typing import Any

import numpy as np

from engine.types import Float32Array, Float64Array

# A row belongs to a cluster when its smoothed intensity is in the top
# (1 - CLUSTER_QUANTILE) of the side's non-empty rows.
CLUSTER_QUANTILE = 0.9
# Rows averaged when smoothing (odd), so that a one-row gap does not split a band.
SMOOTHING_ROWS = 3
MAX_CLUSTERS_PER_SIDE = 5


def find_clusters(
    y: Float64Array,
    long_usd: Float32Array | Float64Array,
    short_usd: Float32Array | Float64Array,
    price: float,
    *,
    quantile: float = CLUSTER_QUANTILE,
    max_per_side: int = MAX_CLUSTERS_PER_SIDE,
) -> list[dict[str, Any]]:
    """Bands of high intensity below price (longs) and above price (shorts).

    On each side, the book is smoothed over ``SMOOTHING_ROWS`` rows; rows whose
    smoothed notional reaches the side's ``quantile`` (over its non-empty
    rows) are marked, and each run of marked rows is a band. The
    ``max_per_side`` bands holding the most notional are kept.

    Parameters
    ----------
    y : Float64Array, shape (rows,)
        Evenly spaced, ascending price row centres, USD.
    long_usd, short_usd : array, shape (rows,)
        Outstanding notional per row, USD (one column of a frame).
    price : float
        The current price, USD: long bands lie in rows below it, short bands above.
    quantile : float
        In (0, 1).
    max_per_side : int

    Returns
    -------
    list of dict
        Nearest to price first within each side, longs first. Keys: ``side``
        (``"long"``/``"short"``), ``price_low``/``price_high`` (band edges,
        USD), ``peak_price`` (centre of its fullest row), ``usd`` (notional
        in the band), ``share`` (of the side's notional on its side of
        price), ``distance`` (band centre's distance from price as a signed
        fraction of price, negative below).
    """
    if len(y) < 2:
        return []
    half_row = (y[1] - y[0]) / 2.0
    out: list[dict[str, Any]] = []
    for side, values, on_side in (
        ("long", np.asarray(long_usd, dtype=np.float64), y < price),
        ("short", np.asarray(short_usd, dtype=np.float64), y > price),
    ):
        profile = np.where(on_side, values, 0.0)
        total = float(profile.sum())
        if total <= 0:
            continue
        kernel = np.ones(SMOOTHING_ROWS) / SMOOTHING_ROWS
        half = SMOOTHING_ROWS // 2
        smooth = np.convolve(np.pad(profile, half), kernel, mode="valid")
        smooth = np.where(on_side, smooth, 0.0)
        # The quantile by hand (linear, as np.quantile): a sort of a few hundred rows is cheap, np.quantile's overhead is not.
        ordered = np.sort(smooth[smooth > 0])
        rank = (ordered.size - 1) * quantile
        lower = int(np.floor(rank))
        upper = min(lower + 1, ordered.size - 1)
        threshold = float(ordered[lower] + (ordered[upper] - ordered[lower]) * (rank - lower))
        marked = (smooth >= threshold) & (smooth > 0)
        edges = np.diff(np.concatenate(([0], marked.astype(np.int8), [0])))
        starts = np.flatnonzero(edges == 1)
        stops = np.flatnonzero(edges == -1)
        bands = []
        for start, stop in zip(starts.tolist(), stops.tolist(), strict=True):
            usd = float(profile[start:stop].sum())
            if usd <= 0:
                continue
            peak = start + int(np.argmax(profile[start:stop]))
            low, high = float(y[start] - half_row), float(y[stop - 1] + half_row)
            bands.append(
                {
                    "side": side,
                    "price_low": low,
                    "price_high": high,
                    "peak_price": float(y[peak]),
                    "usd": usd,
                    "share": usd / total,
                    "distance": ((low + high) / 2.0 - price) / price,
                }
            )
        bands.sort(key=lambda band: -band["usd"])
        kept = bands[:max_per_side]
        kept.sort(key=lambda band: abs(band["distance"]))
        out.extend(kept)
    return out


def clusters(frame: Any, **options: Any) -> list[dict[str, Any]]:
    """Clusters of a frame's last column around its last close (see :func:`find_clusters`).

    Parameters
    ----------
    frame : engine.frame.Frame
    **options
        ``quantile``, ``max_per_side``.
    """
    closes = frame.candles.close[~np.isnan(frame.candles.close)]
    if not closes.size or not frame.long_usd.size:
        return []
    return find_clusters(frame.y, frame.long_usd[-1], frame.short_usd[-1], float(closes[-1]), **options)
