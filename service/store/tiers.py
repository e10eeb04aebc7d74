"""Maintenance-margin tiers in one shape for every venue, kept in a market's metadata as JSON.

A tier applies to positions with notional in ``[floor_usd, cap_usd)``: maintenance
margin = notional × ``mmr`` − ``deduction_usd`` (Binance's ``cum``, Bybit's
``mmDeduction``), at most ``max_leverage``×. Venues that size tiers in contracts
(OKX) are converted at the mark price of the refresh.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import msgspec

from engine.models.margin import MarginTable

META_FIELD = "mm_tiers"
META_SOURCE_FIELD = "mm_tiers_source"


class Tier(msgspec.Struct, frozen=True, array_like=True):
    floor_usd: float
    cap_usd: float
    mmr: float
    deduction_usd: float
    max_leverage: float


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(list[Tier])


def encode(tiers: Sequence[Tier]) -> str:
    return _encoder.encode(list(tiers)).decode()


def decode(text: str) -> list[Tier]:
    return _decoder.decode(text)


def from_bands(bands: Sequence[tuple[float, float, float, float]], stated: Sequence[float | None] | None = None) -> list[Tier]:
    """Tiers from ``(floor_usd, cap_usd, mmr, max_leverage)`` in ascending order.

    Deductions are the venue's where ``stated`` gives one, else derived so that the
    margin is continuous at each floor (``d_i = d_{i-1} + floor_i · (mmr_i − mmr_{i-1})``),
    as the venues compute them.
    """
    tiers: list[Tier] = []
    deduction = previous_mmr = 0.0
    for index, (floor, cap, mmr, leverage) in enumerate(bands):
        deduction += floor * (mmr - previous_mmr)
        given = stated[index] if stated is not None else None
        tiers.append(Tier(float(floor), float(cap), float(mmr), round(deduction if given is None else float(given), 8), float(leverage)))
        previous_mmr = mmr
    return tiers


def from_caps(caps: Sequence[tuple[float, float, float]]) -> list[Tier]:
    """Tiers from ``(cap_usd, mmr, max_leverage)`` rows in ascending cap order; floors are the previous cap."""
    floors = [0.0, *(cap for cap, _, _ in caps[:-1])]
    return from_bands([(floor, cap, mmr, leverage) for floor, (cap, mmr, leverage) in zip(floors, caps, strict=True)])


def to_margin_table(found: Sequence[Tier], source: str) -> MarginTable:
    """The engine's table of these tiers (caps, rates and leverage; deductions follow from continuity).

    Raises
    ------
    ValueError
        Tiers the engine cannot use (no tiers, caps not increasing, a rate at or above 1/leverage).
    """
    return MarginTable.from_rows([[tier.cap_usd, tier.mmr, tier.max_leverage] for tier in found], source)


def margin_table_of(meta: Mapping[str, str], exchange: str) -> MarginTable | None:
    """The margin table stored in a market's metadata, or None where there is none or it is unusable."""
    text = meta.get(META_FIELD)
    if not text:
        return None
    source = meta.get(META_SOURCE_FIELD) or "tiers"
    if not source.startswith(exchange):
        source = f"{exchange} {source}"
    try:
        return to_margin_table(decode(text), source)
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError):
        return None
