"""Collectors by venue name (``LIQMAP_SOURCES``)."""

from __future__ import annotations

import asyncio

from service.clock import Clock, Sleep, now_ms
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


def build_collector(
    venue: str, settings: Settings, symbols: list[str] | None = None, *, clock: Clock = now_ms, sleep: Sleep = asyncio.sleep
) -> ExchangeCollector:
    try:
        return COLLECTORS[venue](settings, symbols, clock=clock, sleep=sleep)
    except KeyError:
        raise ValueError(f"unknown exchange {venue!r}; available: {', '.join(COLLECTORS)}") from None
