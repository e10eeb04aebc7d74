"""Tiered maintenance margin: a venue's brackets and the liquidation prices they give.

A bracket applies to positions with notional in ``[floor, cap)`` (floor = the
previous bracket's cap): maintenance margin = notional × ``mmr`` − ``cum``, at
most ``max_leverage``×. The deduction ``cum`` makes the margin continuous at
each floor (``cum_i = cum_{i-1} + floor_i · (mmr_i − mmr_{i-1})``), as the
venues compute it.

An isolated position of notional ``N = q·e`` at leverage ``L`` has margin
``N/L`` and is liquidated where its equity meets the maintenance margin of
its notional at the mark price, ``x = q·p``:

- long:  ``N/L + x − N = x·mmr − cum``  →  ``x = (N·(1 − 1/L) − cum) / (1 − mmr)``
- short: ``N/L + N − x = x·mmr − cum``  →  ``x = (N·(1 + 1/L) + cum) / (1 + mmr)``

with ``mmr`` and ``cum`` those of the bracket ``x`` falls in (a long's
notional shrinks as price falls toward liquidation, a short's grows). The
liquidation price is ``p = e·x/N``; to first order ``e·(1 ∓ 1/L ± mmr)``,
the flat form model1 uses.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np

from engine.types import Float64Array


@dataclass(frozen=True, slots=True)
class MarginTable:
    """A venue's maintenance-margin brackets.

    Attributes
    ----------
    brackets : tuple of (cap_usd, mmr, max_leverage)
        Ascending caps; the first bracket's floor is 0. Positions at or above
        the last cap use the last bracket.
    source : str
        Where the table comes from (e.g. ``"bybit risk-limit"``); not part of
        equality or hashing: two tables with the same brackets are the same
        table.
    """

    brackets: tuple[tuple[float, float, float], ...]
    source: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if not self.brackets:
            raise ValueError("a margin table needs at least one bracket")
        previous_cap = 0.0
        for cap, mmr, max_leverage in self.brackets:
            if not cap > previous_cap:
                raise ValueError(f"bracket caps must increase, got {cap} after {previous_cap}")
            if not max_leverage >= 1:
                raise ValueError(f"max leverage must be at least 1, got {max_leverage}")
            if not 0 <= mmr < 1 / max_leverage:
                raise ValueError(f"mmr {mmr} must lie in [0, 1/max leverage) for {max_leverage}x")
            previous_cap = cap

    def to_json(self) -> list[list[float]]:
        return [[float(cap), float(mmr), float(leverage)] for cap, mmr, leverage in self.brackets]

    @classmethod
    def from_rows(cls, rows: Any, source: str = "") -> MarginTable:
        """A table from ``[cap_usd, mmr, max_leverage]`` rows (what :meth:`to_json` gives).

        Raises
        ------
        ValueError
            Rows that are not triples of numbers, or brackets that break the
            rules of :class:`MarginTable` (the message says which).
        """
        try:
            brackets = tuple((float(cap), float(mmr), float(leverage)) for cap, mmr, leverage in rows)
        except (TypeError, ValueError):
            raise ValueError(f"margin brackets must be [cap_usd, mmr, max_leverage] rows of numbers, got {rows!r}") from None
        return cls(brackets, source)

    def deductions(self) -> list[float]:
        """``cum`` of each bracket, USD."""
        out: list[float] = []
        floor = cum = previous_mmr = 0.0
        for cap, mmr, _ in self.brackets:
            cum += floor * (mmr - previous_mmr)
            out.append(cum)
            floor, previous_mmr = cap, mmr
        return out

    def bracket_of(self, notional_usd: float) -> int:
        """Index of the bracket a position of this notional falls in."""
        for index, (cap, _, _) in enumerate(self.brackets):
            if notional_usd < cap:
                return index
        return len(self.brackets) - 1

    def max_notional(self, leverage: float) -> float:
        """Largest notional a position may have at this leverage, USD.

        The cap of the last bracket allowing ``leverage``; leverage above every
        bracket's maximum (offered by other venues) is taken to be limited
        like the first bracket.
        """
        allowed = [cap for cap, _, max_leverage in self.brackets if max_leverage >= leverage]
        return allowed[-1] if allowed else self.brackets[0][0]

    def liquidation_multipliers(self, leverage: float, notional_usd: float) -> tuple[float, float]:
        """Long and short liquidation price over entry price for one position (see the module docstring)."""
        deductions = self.deductions()
        long_target = notional_usd * (1.0 - 1.0 / leverage)
        short_target = notional_usd * (1.0 + 1.0 / leverage)
        long_x = short_x = math.nan
        floor = 0.0
        last = len(self.brackets) - 1
        # Equity minus maintenance is monotonic in the mark notional, so
        # exactly one bracket holds its own solution.
        for index, (cap, mmr, _) in enumerate(self.brackets):
            top = math.inf if index == last else cap
            candidate = (long_target - deductions[index]) / (1.0 - mmr)
            if math.isnan(long_x) and floor <= candidate < top:
                long_x = candidate
            candidate = (short_target + deductions[index]) / (1.0 + mmr)
            if math.isnan(short_x) and floor <= candidate < top:
                short_x = candidate
            floor = cap
        return long_x / notional_usd, short_x / notional_usd


# Binance USDⓈ-M BTCUSDT brackets as model2 2.0.0 and model3 3.0.0 fixed them
# (part of their parameters, so frozen here; the dated shipped tables are in
# binance_brackets.json).
BINANCE_BTCUSDT = MarginTable(
    (
        (300_000, 0.004, 125),
        (800_000, 0.005, 100),
        (3_000_000, 0.0065, 75),
        (12_000_000, 0.01, 50),
        (70_000_000, 0.02, 25),
        (100_000_000, 0.025, 20),
        (230_000_000, 0.05, 10),
        (480_000_000, 0.1, 5),
        (600_000_000, 0.125, 4),
        (800_000_000, 0.15, 3),
        (1_200_000_000, 0.25, 2),
        (1_800_000_000, 0.5, 1),
    )
)


SHIPPED_BINANCE_FILE = "binance_brackets.json"
# Quotes a market symbol may end in; a bare coin (``BTC``, an ``all`` market) means its USDT perpetual.
QUOTES = ("USDT", "USDC", "USD")


@lru_cache(maxsize=1)
def shipped_binance_document() -> dict[str, Any]:
    """The dated Binance bracket tables shipped in the package (``binance_brackets.json``)."""
    text = resources.files("engine.models").joinpath(SHIPPED_BINANCE_FILE).read_text(encoding="utf-8")
    document: dict[str, Any] = json.loads(text)
    return document


def binance_symbol(symbol: str) -> str:
    """The Binance USDⓈ-M symbol a market's table is looked up by: ``ETH`` → ``ETHUSDT``, pairs as they are."""
    upper = symbol.upper()
    return upper if upper.endswith(QUOTES) else upper + "USDT"


def shipped_binance_table(symbol: str | None = None) -> MarginTable:
    """Binance's brackets for ``symbol`` from the shipped tables, or their documented default.

    ``None`` (no market known) gives the default. The table's ``source``
    names the symbol (or the default) and the date of the tables.
    """
    document = shipped_binance_document()
    as_of = document["as_of"]
    if symbol is None:
        return MarginTable.from_rows(document["default"]["brackets"], f"binance shipped default table as of {as_of}")
    key = binance_symbol(symbol)
    rows = document["symbols"].get(key)
    if rows is not None:
        return MarginTable.from_rows(rows, f"binance {key} shipped table as of {as_of}")
    return MarginTable.from_rows(document["default"]["brackets"], f"binance shipped default table as of {as_of} ({key} not listed)")


def size_points(leverage: float, table: MarginTable, min_position_usd: float, points: int) -> Float64Array:
    """Representative position sizes of one leverage tier, USD, shape (points,).

    Sizes are taken log-uniform between ``min_position_usd`` and the largest
    notional the table allows at ``leverage``; the points are that
    distribution's quantiles ``(i + 0.5) / points``, each standing for an
    equal share of the tier's notional.
    """
    cap = table.max_notional(leverage)
    if not 0 < min_position_usd < cap:
        raise ValueError(f"min position {min_position_usd} must lie in (0, {cap}) for {leverage}x")
    quantiles = (np.arange(points, dtype=np.float64) + 0.5) / points
    return min_position_usd * (cap / min_position_usd) ** quantiles


def tier_multipliers(
    leverages: tuple[float, ...],
    table: MarginTable,
    min_position_usd: float,
    points: int,
) -> tuple[Float64Array, Float64Array]:
    """Liquidation multipliers of every (tier, size point), shape (tiers, points) each.

    Raises
    ------
    ValueError
        Where a multiplier would put a liquidation on the wrong side of entry.
    """
    long_out = np.empty((len(leverages), points))
    short_out = np.empty((len(leverages), points))
    for i, leverage in enumerate(leverages):
        for j, notional in enumerate(size_points(leverage, table, min_position_usd, points)):
            long_multiplier, short_multiplier = table.liquidation_multipliers(leverage, float(notional))
            if not (0 < long_multiplier < 1 < short_multiplier and math.isfinite(short_multiplier)):
                raise ValueError(f"{leverage}x at {notional:.0f} USD has no valid liquidation price under this table")
            long_out[i, j] = long_multiplier
            short_out[i, j] = short_multiplier
    return long_out, short_out
