"""Which market sources a collecting process runs, from its settings (no IO: synthetic sources only)."""

from __future__ import annotations

import pytest

from service.roles import build_sources
from service.settings import Settings


def test_the_synthetic_source_runs_as_three_venues_of_one_market_by_default() -> None:
    settings = Settings.from_env({}, defaults={"sources": ("synthetic",)}, synthetic_markets=2)
    sources = build_sources(settings)
    assert [(s.exchange, s.venue, s.symbols()) for s in sources] == [  # type: ignore[attr-defined]
        ("binance", "binance", ["BTCUSDT", "ETHUSDT"]),
        ("bybit", "bybit", ["BTCUSDT", "ETHUSDT"]),
        ("okx", "okx", ["BTCUSDT", "ETHUSDT"]),
    ]


def test_an_empty_venue_list_runs_the_single_synthetic_venue() -> None:
    settings = Settings.from_env({"LIQMAP_SOURCES": "synthetic", "LIQMAP_SYNTHETIC_VENUES": ""})
    assert [(s.exchange, s.venue) for s in build_sources(settings)] == [("synthetic", None)]  # type: ignore[attr-defined]


def test_a_venue_both_live_and_synthetic_is_refused() -> None:
    settings = Settings.from_env({"LIQMAP_SOURCES": "synthetic,okx", "LIQMAP_SYNTHETIC_VENUES": "okx"})
    with pytest.raises(SystemExit, match="collects okx live and as a synthetic venue"):
        build_sources(settings)
