"""The parameters the API routes share and their checks: each failure says what is allowed."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Annotated

from litestar.params import QueryParameter

from engine.models import MODELS
from engine.ranges import RANGES
from service.api.errors import BadRequest, NotFound, shown
from service.compute.ondemand import check_leverage
from service.markets import AGGREGATE_EXCHANGE, coin_of
from service.wire.coinglass import exchange_name
from service.settings import Settings
from service.store.reader import StoreReader

Markets = Sequence[tuple[str, str]]


# For the OpenAPI document: the values a parameter may take (what this build can compute;
# an operator may configure fewer, and the route then says which).
MODEL_ENUM = {"enum": sorted(MODELS)}
# The groups; a comma-separated list of a model's own tiers ("25,50") is accepted too, but
# which tiers exist depends on the model, so the document lists the groups only.
LEVERAGE_GROUPS = ["all", "low", "mid", "high"]
LEVERAGE_PATTERN = r"^(all|low|mid|high|[0-9]+(\.[0-9]+)?(,[0-9]+(\.[0-9]+)?)*)$"
LEVERAGE_SCHEMA = {"pattern": LEVERAGE_PATTERN, "examples": ["high", "25,50"]}
RANGE_ENUM = {"enum": list(RANGES)}

ModelParam = Annotated[str, QueryParameter(description="Model name, e.g. model1 (see /v1/models)", schema_extra=MODEL_ENUM)]
RangeParam = Annotated[str, QueryParameter(name="range", description="12h, 24h, 3d, 7d, 30d, 90d, 180d or 1y", schema_extra=RANGE_ENUM)]
LeverageParam = Annotated[
    str | None,
    QueryParameter(
        description="Leverage filter: all (default), low (≤10x), mid (between), high (≥50x), or a comma-separated list of the model's tiers such as 25,50 (see /v1/models)",
        schema_extra=LEVERAGE_SCHEMA,
    ),
]


def require(name: str, value: str | None, example: str) -> str:
    if value is None or not value.strip():
        raise BadRequest(f"{name} is required, e.g. {name}={example}")
    return value.strip()


def check_model(settings: Settings, model: str) -> str:
    return check_offered("model", model, MODELS, settings.models)


def check_range(settings: Settings, range_name: str) -> str:
    return check_offered("range", range_name, RANGES, settings.ranges)


def check_offered(name: str, value: str, known: Iterable[str], offered: Sequence[str]) -> str:
    """``value`` if this deployment offers it: 400 if it is no such thing, 404 if it is one this deployment does not compute.

    Both messages list what is offered.
    """
    if value not in known:
        raise BadRequest(f"{name} must be one of {', '.join(offered)}; got {shown(value)}", allowed=list(offered))
    if value not in offered:
        raise NotFound(f"{name} {value} is not computed by this deployment; it computes {', '.join(offered)}", allowed=list(offered))
    return value


def check_leverage_filter(model: str, leverage: str | None) -> str | None:
    """The leverage filter as the engine takes it (None for every tier); 400 naming what is allowed."""
    if leverage is None or leverage == "all":
        return None
    if re.fullmatch(LEVERAGE_PATTERN, leverage) is None:
        raise BadRequest(
            f"leverage: {shown(leverage)} is not a filter; allowed: all, low, mid, high, or a comma-separated list of the model's tiers such as 25,50 (see /v1/models)",
            allowed=LEVERAGE_GROUPS,
        )
    try:
        return check_leverage(model, leverage)
    except ValueError as exc:
        raise BadRequest(f"leverage: {exc}") from None


def canonical_market(exchange: str, symbol: str) -> tuple[str, str]:
    """Markets are named by lowercase exchange and uppercase symbol, whatever the client sent."""
    return exchange.strip().lower(), symbol.strip().upper()


async def check_market(store: StoreReader, exchange: str, symbol: str) -> tuple[str, str]:
    """Canonical (lowercase exchange, uppercase symbol) of a market the store knows, else 404."""
    return market_in(await store.markets(), exchange, symbol)


def market_in(markets: Markets, exchange: str, symbol: str) -> tuple[str, str]:
    """Canonical (lowercase exchange, uppercase symbol) of one of ``markets``, else 404 naming the known exchanges or symbols."""
    exchange, symbol = canonical_market(exchange, symbol)
    if (exchange, symbol) in markets:
        return exchange, symbol
    exchanges = sorted({ex for ex, _ in markets})
    if exchange not in exchanges:
        raise NotFound(f"unknown exchange {shown(exchange)}; known exchanges: {', '.join(exchanges) or 'none yet'}", allowed=exchanges)
    symbols = sorted(sym for ex, sym in markets if ex == exchange)
    raise NotFound(f"unknown symbol {shown(symbol)} on {exchange}; known symbols: {', '.join(symbols)}", allowed=symbols)


def check_choice(name: str, value: str, allowed: Iterable[str]) -> str:
    """``value`` if it is one of ``allowed``, else 400 listing them."""
    choices = list(allowed)
    if value not in choices:
        raise BadRequest(f"{name} must be one of {', '.join(choices)}; got {shown(value)}", allowed=choices)
    return value


def check_int_range(name: str, value: int | None, low: int, high: int, default: int) -> int:
    """``value`` (``default`` when absent) if ``low <= value <= high``, else 400."""
    if value is None:
        return default
    if not low <= value <= high:
        raise BadRequest(f"{name} must be {low}..{high}; got {value}")
    return value


# A USD amount given as text (Coinglass sends some as strings): digits, optionally a fraction.
AMOUNT_PATTERN = r"^[0-9]+(\.[0-9]+)?$"


def check_amount(name: str, value: str) -> float:
    """A USD amount written as :data:`AMOUNT_PATTERN` says, else 400."""
    if re.fullmatch(AMOUNT_PATTERN, value) is None:
        raise BadRequest(f"{name} must be a USD amount >= 0 in digits, e.g. {name}=10000; got {shown(value)}")
    return float(value)


# 2100-01-01T00:00Z: later "epoch milliseconds" are a unit mistake (micro- or nanoseconds).
MAX_EPOCH_MS = 4_102_444_800_000
EPOCH_MS_RANGE = f"epoch milliseconds, 0..{MAX_EPOCH_MS} (1970-01-01 to 2100-01-01 UTC)"


def epoch_ms_param(description: str, *, name: str | None = None) -> QueryParameter:
    """A time query parameter: the document states its bounds, :func:`check_epoch_ms` enforces them with a message naming them."""
    return QueryParameter(name=name, description=description, schema_extra={"minimum": 0, "maximum": MAX_EPOCH_MS})


def check_epoch_ms(name: str, value: int | None) -> int | None:
    """``value`` if it is epoch milliseconds between 1970 and 2100 (or absent), else 400 naming the range."""
    if value is not None and not 0 <= value <= MAX_EPOCH_MS:
        raise BadRequest(f"{name} must be {EPOCH_MS_RANGE}; got {shown(str(value), quote=False)}")
    return value


def check_time_span(start_ms: int | None, end_ms: int | None, names: tuple[str, str] = ("start_time", "end_time"), *, strict: bool = False) -> None:
    """Both ends as :func:`check_epoch_ms` wants them, the start not after the end (``strict``: before it), else 400."""
    check_epoch_ms(names[0], start_ms)
    check_epoch_ms(names[1], end_ms)
    if start_ms is not None and end_ms is not None and (start_ms >= end_ms if strict else start_ms > end_ms):
        relation = "earlier than" if strict else "later than"
        verb = "must be" if strict else "must not be"
        raise BadRequest(f"{names[0]} ({start_ms}) {verb} {relation} {names[1]} ({end_ms})")


def exchanges_of(markets: Markets) -> list[str]:
    """Exchange ids with markets of their own (the per-coin aggregate ``all`` is not one)."""
    return sorted({exchange for exchange, _ in markets if exchange != AGGREGATE_EXCHANGE})


def check_exchange(markets: Markets, exchange: str) -> str:
    """StoreReader id of an exchange given in any case (``Binance`` → ``binance``), else 404 naming the known ones."""
    wanted = exchange.strip().lower()
    known = exchanges_of(markets)
    if wanted not in known:
        names = [exchange_name(ex) for ex in known]
        raise NotFound(f"unknown exchange {shown(exchange.strip())}; known exchanges: {', '.join(names) or 'none yet'}", allowed=names)
    return wanted


def check_exchange_list(markets: Markets, exchange_list: str) -> list[str]:
    """StoreReader ids of a comma-separated list of exchanges (``Binance,OKX``), each known, else 400/404."""
    names = [part for part in (piece.strip() for piece in exchange_list.split(",")) if part]
    if not names:
        raise BadRequest("exchange_list must name at least one exchange, e.g. exchange_list=Binance,OKX,Bybit")
    return sorted({check_exchange(markets, name) for name in names})


def check_coin(markets: Markets, coin: str, exchanges: Sequence[str] | None = None) -> str:
    """A coin (``btc`` → ``BTC``) with pairs on ``exchanges`` (default: any), else 404 naming the coins there are."""
    wanted = coin.strip().upper()
    coins = sorted({coin_of(sym) for ex, sym in markets if ex != AGGREGATE_EXCHANGE and (exchanges is None or ex in exchanges)})
    if wanted not in coins:
        where = f" on {', '.join(exchange_name(ex) for ex in exchanges)}" if exchanges is not None else ""
        raise NotFound(f"no pairs of coin {shown(coin.strip())}{where}; coins: {', '.join(coins) or 'none yet'}", allowed=coins)
    return wanted


def pairs_of(markets: Markets, exchanges: Sequence[str], coin: str | None = None) -> list[tuple[str, str]]:
    """Markets on ``exchanges`` (of ``coin`` when given)."""
    return [(ex, sym) for ex, sym in markets if ex in exchanges and (coin is None or coin_of(sym) == coin)]
