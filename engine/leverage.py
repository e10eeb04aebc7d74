"""Leverage filters: which of a model's tiers a frame or map shows."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from engine.types import BoolArray

# Groups by leverage, after the vendors' low / medium / high views:
# low up to 10x, mid above 10x and below 50x, high 50x and above.
LOW_UP_TO = 10.0
HIGH_FROM = 50.0
LEVERAGE_GROUPS = ("low", "mid", "high")


def _group_mask(name: str, levels: np.ndarray) -> BoolArray:
    if name == "low":
        return levels <= LOW_UP_TO
    if name == "mid":
        return (levels > LOW_UP_TO) & (levels < HIGH_FROM)
    return levels >= HIGH_FROM
ALL = "all"
# Every string select_tiers can parse (after lower-casing and stripping), for
# request schemas: a group, or a comma-separated list of leverages with an
# optional "x". A parsable list may still name a tier the model lacks.
LEVERAGE_PATTERN = r"^(all|low|mid|high|[0-9]+(\.[0-9]+)?x?(,[0-9]+(\.[0-9]+)?x?)*)$"

LeverageSpec = str | Iterable[float] | None


@dataclass(frozen=True, slots=True)
class LeverageSelection:
    """The tiers a filter keeps.

    Attributes
    ----------
    label : str
        ``"all"``, a group name, or ``"x"`` followed by the kept leverages
        joined with ``_`` (e.g. ``"x25_50"``); part of frame ids.
    mask : BoolArray, shape (g,)
        True for every kept tier of the model.
    leverages : tuple of float
        The kept tiers' leverages.
    """

    label: str
    mask: BoolArray
    leverages: tuple[float, ...]


def _format(leverage: float) -> str:
    return f"{leverage:g}"


def select_tiers(tiers: tuple[float, ...], leverage: LeverageSpec = None) -> LeverageSelection:
    """The tiers of a model a leverage filter keeps.

    Parameters
    ----------
    tiers : tuple of float
        The model's tier leverages.
    leverage : None, str or iterable of float
        None or ``"all"``: every tier. ``"low"`` (≤ 10x), ``"mid"`` (above
        10x, below 50x) or ``"high"`` (≥ 50x): the tiers in that group (possibly
        none). A comma-separated string such as ``"25,50"`` or an iterable of
        numbers: exactly those tiers, each of which must be one of the model's.

    Raises
    ------
    ValueError
        Unknown group, unparsable list, or a leverage that is not a tier of the
        model (the message lists the groups and the model's tiers).
    """
    levels = np.asarray(tiers, dtype=np.float64)
    allowed = f"allowed: all, low, mid, high, or a subset of {', '.join(_format(t) for t in tiers)}"
    if leverage is None or (isinstance(leverage, str) and leverage.strip().lower() in ("", ALL)):
        return LeverageSelection(ALL, np.ones(len(tiers), dtype=np.bool_), tuple(tiers))
    if isinstance(leverage, str):
        name = leverage.strip().lower()
        if name in LEVERAGE_GROUPS:
            mask = _group_mask(name, levels)
            return LeverageSelection(name, mask, tuple(float(v) for v in levels[mask]))
        try:
            wanted = [float(part.strip().removesuffix("x")) for part in name.split(",")]
        except ValueError:
            raise ValueError(f"unknown leverage filter {leverage!r}; {allowed}") from None
    else:
        wanted = [float(v) for v in leverage]
    if not wanted:
        raise ValueError(f"empty leverage filter; {allowed}")
    for value in wanted:
        if not np.any(levels == value):
            raise ValueError(f"{_format(value)}x is not a tier of this model; {allowed}")
    mask = np.isin(levels, wanted)
    kept = tuple(float(v) for v in levels[mask])
    return LeverageSelection("x" + "_".join(_format(v) for v in sorted(set(kept))), mask, kept)
