"""Validation of the parameters every heatmap route shares."""

from __future__ import annotations

from service.api.errors import BadRequest, NotFound
from service.settings import Settings
from service.store import Store


def require(name: str, value: str | None, example: str) -> str:
    if value is None or not value.strip():
        raise BadRequest(f"{name} is required, e.g. {name}={example}")
    return value.strip()


def check_model(settings: Settings, model: str) -> str:
    if model not in settings.models:
        raise BadRequest(f"model must be one of {', '.join(settings.models)}; got {model!r}", allowed=list(settings.models))
    return model


def check_range(settings: Settings, range_name: str) -> str:
    if range_name not in settings.ranges:
        raise BadRequest(f"range must be one of {', '.join(settings.ranges)}; got {range_name!r}", allowed=list(settings.ranges))
    return range_name


async def check_market(store: Store, exchange: str, symbol: str) -> tuple[str, str]:
    """Canonical (lowercase exchange, uppercase symbol) of a market the store knows, else 404."""
    exchange, symbol = exchange.strip().lower(), symbol.strip().upper()
    markets = await store.markets()
    if (exchange, symbol) in markets:
        return exchange, symbol
    exchanges = sorted({ex for ex, _ in markets})
    if exchange not in exchanges:
        raise NotFound(f"unknown exchange {exchange!r}; known exchanges: {', '.join(exchanges) or 'none yet'}", allowed=exchanges)
    symbols = sorted(sym for ex, sym in markets if ex == exchange)
    raise NotFound(f"unknown symbol {symbol!r} on {exchange}; known symbols: {', '.join(symbols)}", allowed=symbols)
