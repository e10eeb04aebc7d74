"""Collectors by venue name (``LIQMAP_SOURCES``)."""

from __future__ import annotations

from service.collectors.base import ExchangeCollector
from service.collectors.binance import BinanceCollector
from service.collectors.bybit import BybitCollector
from service.collectors.okx import OkxCollector
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
