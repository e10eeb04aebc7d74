"""Binance USDⓈ-M leverage brackets shipped with liqmap.

Binance serves its brackets only to signed requests; the keyless web endpoint that
refreshes them sits behind a firewall that may refuse us. This table (per symbol:
notional cap USD, maintenance margin rate, max leverage; floors and ``cum`` follow)
is used whenever no fresher copy could be had.
"""

from __future__ import annotations

from engine.models.margin import BINANCE_BTCUSDT
from service.collect.venues import tiers
from service.collect.venues.tiers import Tier

_CAPS: dict[str, list[tuple[float, float, float]]] = {
    # The engine's model2/model3 use the same table: one copy, kept there.
    "BTCUSDT": [tuple(map(float, bracket)) for bracket in BINANCE_BTCUSDT.brackets],
    "ETHUSDT": [
        (300_000, 0.004, 125),
        (800_000, 0.005, 100),
        (3_000_000, 0.0065, 75),
        (12_000_000, 0.01, 50),
        (50_000_000, 0.02, 25),
        (65_000_000, 0.025, 20),
        (150_000_000, 0.05, 10),
        (320_000_000, 0.1, 5),
        (400_000_000, 0.125, 4),
        (530_000_000, 0.15, 3),
        (800_000_000, 0.25, 2),
        (1_200_000_000, 0.5, 1),
    ],
    "SOLUSDT": [
        (50_000, 0.005, 100),
        (250_000, 0.0065, 75),
        (1_000_000, 0.01, 50),
        (5_000_000, 0.02, 25),
        (10_000_000, 0.025, 20),
        (25_000_000, 0.05, 10),
        (50_000_000, 0.1, 5),
        (62_500_000, 0.125, 4),
        (100_000_000, 0.15, 3),
        (150_000_000, 0.25, 2),
        (250_000_000, 0.5, 1),
    ],
}
# Any other symbol: a mid-cap alt's brackets.
_GENERIC: list[tuple[float, float, float]] = [
    (5_000, 0.01, 75),
    (25_000, 0.015, 50),
    (100_000, 0.02, 25),
    (500_000, 0.05, 10),
    (2_000_000, 0.1, 5),
    (5_000_000, 0.125, 4),
    (10_000_000, 0.15, 3),
    (20_000_000, 0.25, 2),
    (50_000_000, 0.5, 1),
]


def default_tiers(symbol: str) -> list[Tier]:
    return tiers.from_caps(_CAPS.get(symbol, _GENERIC))
