"""Binance USDⓈ-M leverage brackets shipped with liqmap.

Binance serves its brackets only to signed requests; the keyless web endpoint that
refreshes them sits behind a firewall that may refuse us. The dated tables in
``engine/models/binance_brackets.json`` (per symbol: notional cap USD, maintenance
margin rate, max leverage; floors and ``cum`` follow) are used whenever no fresher
copy could be had. ``liqmap brackets`` refreshes them
(:mod:`service.collect.venues.binance_refresh`).
"""

from __future__ import annotations

from engine.models.margin import shipped_binance_table
from service.store import tiers
from service.store.tiers import Tier


def default_tiers(symbol: str) -> list[Tier]:
    """The shipped table of ``symbol`` (or the shipped default) as tiers."""
    return tiers.from_caps(shipped_binance_table(symbol).brackets)


