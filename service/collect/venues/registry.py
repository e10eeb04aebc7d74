"""Collectors by venue name (``LIQMAP_SOURCES``)."""

from __future__ import annotations

from service.collect.venues.base import ExchangeCollector
from service.collect.venues.binance import BinanceCollector
from service.collect.venues.bybit import BybitCollector
from service.collect.venues.okx import OkxCollector
from service.settings import Settings

COLLECTORS: dict[str, type[ExchangeCollector]] = {
    "binance": BinanceCollector,
    "bybit": BybitCollector,
    "okx": OkxCollector,
}


def build_collector(venue: str, settings: Settings, symbols: list[str] | None = None) -> ExchangeCollector:
    try:
        return COLLECTORS[venue](settings, symbols)
    except KeyError:
        raise ValueError(f"unknown exchange {venue!r}; available: {', '.join(COLLECTORS)}") from None
