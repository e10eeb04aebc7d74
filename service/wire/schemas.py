"""Wire shapes (msgspec Structs): what the API sends and the store keeps encoded."""

from __future__ import annotations

from typing import Any, Generic, Literal, TypeVar

import msgspec

T = TypeVar("T")


class Base(msgspec.Struct, kw_only=True, frozen=True):
    pass


class FrameStatsOut(Base):
    total_long_usd: float
    total_short_usd: float
    max_long_usd: float
    max_short_usd: float
    max_cell_usd: float
    out_of_grid_usd: float  # notional of levels outside the price rows, not drawn
    percentiles: dict[str, float]
    # Defaults only so that frames stored before these fields existed still decode.
    beyond_long_usd: float = 0.0  # outstanding longs liquidating below the lowest row (mostly the 5x tier)
    beyond_short_usd: float = 0.0  # outstanding shorts liquidating above the highest row
    consumed_long_usd: float = 0.0  # what the model says was liquidated inside the window
    consumed_short_usd: float = 0.0


class FrameIdentity(Base):
    """What identifies a frame: its id, market, model version and range (every frame shape starts with these)."""

    id: str
    exchange: str
    symbol: str
    model: str
    model_version: str
    params_hash: str  # of the model's parameters
    range: str


class ClusterOut(Base):
    """A magnet zone: a band of price rows of high liquidation intensity on one side of price (USD)."""

    side: Literal["long", "short"]  # longs lie below price, shorts above
    price_low: float
    price_high: float
    peak_price: float  # centre of its fullest row
    usd: float
    share: float  # of the side's notional on its side of price
    distance: float  # band centre's distance from price, signed fraction of price


class FrameOut(FrameIdentity):
    """A heatmap frame as the native API sends it.

    ``long``/``short`` are ``[column][row]`` USD, rounded to whole dollars;
    ``candles`` rows are ``[ts_ms, open, high, low, close, volume_usd]``, with
    ``null`` prices where a column has no bar.
    """

    column_ms: int
    generated_at: int
    data_until: int
    coverage_start: int
    x: list[int]
    y: list[float]
    long: list[list[int]]
    short: list[list[int]]
    candles: list[list[float | None]]
    stats: FrameStatsOut
    clusters: list[ClusterOut]  # of the last column, nearest to price first within each side, longs first
    # Defaults only so that frames stored before these fields existed still decode.
    leverage: str = "all"  # "all", "low", "mid", "high" or a subset of tiers
    tiers: list[float] = []  # leverage of the tiers the frame includes
    sources: dict[str, dict[str, Any]] | None = None  # "all" markets: what each venue covered
    # Models placing levels by the market's maintenance-margin tiers: {"source", "brackets": [[cap_usd, mmr, max_leverage], ...]}
    margin_table: dict[str, Any] | None = None


class FrameSummary(FrameIdentity):
    """A frame without its data: listed in history, published with every new frame."""

    generated_at: int
    data_until: int
    coverage_start: int


class FramePage(Base):
    """One page of frame history, newest first; pass ``next_cursor`` back for the next."""

    items: list[FrameSummary]
    next_cursor: str | None


class MarketOut(Base):
    exchange: str
    symbol: str
    coverage_start: int | None  # first stored bar, epoch ms
    data_until: int | None  # end of the last bar the newest frames rest on, epoch ms
    last_update: int | None  # when frames were last computed, epoch ms
    bars: int
    models: list[str]
    ranges: list[str]
    # Simulated data (the demo's synthetic venues, or an aggregate summing one), not a real market.
    synthetic: bool


class MarketsOut(Base):
    markets: list[MarketOut]


class ModelOut(Base):
    name: str
    version: str
    params_hash: str
    params: dict[str, Any]
    description: str
    doc: str  # markdown: assumptions, parameters, known weaknesses
    tiers: list[float]  # leverage tiers (what `leverage=` filters)
    created: str | None
    score: dict[str, Any] | None  # backtest against realized liquidations, where measured
    calibration: dict[str, Any] | None  # what the fitted parameters were fitted on, where fitted
    margin_table: str = "part of the parameters"  # or "the market's": recorded in each frame


class ModelsOut(Base):
    models: list[ModelOut]


class LiquidationEventOut(Base):
    time: int  # epoch ms
    side: Literal["long", "short"]  # the side of the position that was liquidated
    price: float
    quantity: float  # base units
    usd: float


class LiquidationTotalOut(Base):
    time: int  # bucket start, epoch ms
    long_usd: float
    short_usd: float


class LiquidationsOut(Base):
    exchange: str
    symbol: str
    interval: str
    start: int
    end: int
    events: list[LiquidationEventOut]  # newest first
    totals: list[LiquidationTotalOut]  # oldest first


class LevelsClustersOut(Base):
    above: list[ClusterOut]  # shorts
    below: list[ClusterOut]  # longs


class LargestLevelOut(Base):
    """The price row holding the most notional of one side, over the tiers shown."""

    price: float  # row centre
    usd: float
    distance: float  # from the last close, signed fraction of it


class MaxPainOut(Base):
    long: LargestLevelOut | None  # None: the side holds nothing
    short: LargestLevelOut | None


class TierBookOut(Base):
    """One leverage tier's outstanding notional by row of ``y``, whole USD."""

    leverage: float
    long: list[int]
    short: list[int]
    cumulative_long: list[int]  # below price: longs liquidated if price falls to the row
    cumulative_short: list[int]  # above price: shorts liquidated if price rises to the row


class LiquidationMapOut(Base):
    """The book at the end of the data, per tier (what the newest frame's last column sums over tiers)."""

    exchange: str
    symbol: str
    model: str
    model_version: str
    params_hash: str
    range: str
    leverage: str
    data_until: int
    price: float  # last close
    y: list[float]  # price row centres
    tiers: list[TierBookOut]
    cumulative_long: list[int]
    cumulative_short: list[int]
    beyond_long_usd: float  # outstanding beyond the rows
    beyond_short_usd: float
    max_pain: MaxPainOut


class LevelsOut(Base):
    """Price ranges with intensity metrics for the newest frame's data."""

    frame_id: str  # the newest frame these levels rest on
    exchange: str
    symbol: str
    model: str
    model_version: str
    range: str
    leverage: str
    data_until: int
    price: float  # last close
    clusters: LevelsClustersOut
    max_pain: MaxPainOut
    map: LiquidationMapOut


class CoinglassHeatmap(Base):
    y_axis: list[float]
    liquidation_leverage_data: list[list[float]]
    price_candlesticks: list[list[int | str]]


class CoinglassPairHistory(Base):
    """Realized liquidations of one pair in one interval; USD as strings, like Coinglass."""

    time: int  # bucket start, epoch ms
    long_liquidation_usd: str
    short_liquidation_usd: str


class CoinglassCoinHistory(Base):
    """Realized liquidations of a coin over several exchanges in one interval; USD as numbers, like Coinglass."""

    time: int  # bucket start, epoch ms
    aggregated_long_liquidation_usd: float
    aggregated_short_liquidation_usd: float


class CoinglassCoinTotals(Base):
    """Realized liquidations of one coin on one exchange over the last 24h, 12h, 4h and 1h, USD."""

    symbol: str
    liquidation_usd_24h: float
    long_liquidation_usd_24h: float
    short_liquidation_usd_24h: float
    liquidation_usd_12h: float
    long_liquidation_usd_12h: float
    short_liquidation_usd_12h: float
    liquidation_usd_4h: float
    long_liquidation_usd_4h: float
    short_liquidation_usd_4h: float
    liquidation_usd_1h: float
    long_liquidation_usd_1h: float
    short_liquidation_usd_1h: float


class CoinglassExchangeTotals(Base):
    """Realized liquidations on one exchange (or ``All``) over the requested range, USD."""

    exchange: str
    liquidation_usd: float
    long_liquidation_usd: float
    short_liquidation_usd: float


class CoinglassLiquidationOrder(Base):
    """One realized liquidation.

    ``side`` follows Coinglass's REST convention, the liquidation order's
    direction: 1 = Buy (a short was liquidated), 2 = Sell (a long was
    liquidated). ``position_side`` says the same in words.
    """

    exchange_name: str
    symbol: str
    base_asset: str
    price: float
    usd_value: float
    side: int
    time: int  # epoch ms
    position_side: str  # "long" or "short": the position that was liquidated


class CoinglassPair(Base):
    """A pair liqmap has data for; fields liqmap does not know are null."""

    instrument_id: str
    base_asset: str
    quote_asset: str
    settlement_currency: str | None = None
    max_leverage: float | None = None
    funding_interval: float | None = None
    price_tick_size: float | None = None


class CoinglassLiquidationMap(Base):
    """Levels by price: ``{"<price>": [[price, usd, leverage or null, null], ...]}``."""

    data: dict[str, list[list[float | None]]]


class CoinglassMaxPain(Base):
    """The largest outstanding liquidation level of each side of a coin, and the price it stands against.

    ``long_*``: longs, liquidated if the price falls to ``long_max_pain_liq_price``;
    ``short_*``: shorts, liquidated if it rises to ``short_max_pain_liq_price``.
    ``range`` is the frame the book comes from (48h and 14d are answered by 3d and 30d).
    """

    symbol: str
    price: float | None
    long_max_pain_liq_level: float
    long_max_pain_liq_price: float | None
    short_max_pain_liq_level: float
    short_max_pain_liq_price: float | None
    range: str


class CoinglassPushedLiquidation(Base):
    """One liquidation as Coinglass's websocket pushes it (field names as it spells them).

    ``side`` follows Coinglass's websocket convention, the position liquidated:
    1 = a long, 2 = a short (its REST ``/order`` route uses the opposite numbers).
    """

    baseAsset: str  # noqa: N815
    exName: str  # noqa: N815
    price: float
    side: int
    symbol: str
    time: int  # epoch ms
    volUsd: float  # noqa: N815


class CoinglassPush(Base):
    """A message of a websocket channel: ``{"channel": "liquidationOrders", "data": [...]}``."""

    channel: str
    data: list[CoinglassPushedLiquidation]


class CoinglassSocketReply(Base):
    """liqmap's answer to a websocket request (Coinglass documents none): ``code`` "0" on success,
    else the HTTP status the same mistake gets over HTTP, and ``msg`` saying what is allowed."""

    method: str | None
    channels: list[str]
    code: str
    msg: str


class CoinglassOhlc(Base):
    """One interval of a series as Coinglass sends it: its start (epoch ms) and four numbers as strings."""

    time: int
    open: str
    high: str
    low: str
    close: str


class CoinglassPriceOhlc(CoinglassOhlc):
    """One interval of price bars: OHLC and the traded USD, as strings."""

    volume_usd: str


class CoinglassTakerVolume(Base):
    """Taker buy and sell volume of one pair in one interval, USD as strings."""

    time: int
    taker_buy_volume_usd: str
    taker_sell_volume_usd: str


class CoinglassAccountRatio(Base):
    """Share of accounts net long and net short at the end of one interval (percent), and long / short."""

    time: int
    global_account_long_percent: float
    global_account_short_percent: float
    global_account_long_short_ratio: float


class CoinglassOpenInterestExchange(Base):
    """Open interest of a coin on one exchange (or ``All``) now, and its change over trailing windows (%).

    liqmap collects USDⓈ-margined perpetuals only: the coin-margined part is 0 and the
    stablecoin-margined part is the whole. A change over a window without an observation
    that far back is null.
    """

    exchange: str
    symbol: str
    open_interest_usd: float
    open_interest_quantity: float
    open_interest_by_stable_coin_margin: float
    open_interest_quantity_by_coin_margin: float
    open_interest_quantity_by_stable_coin_margin: float
    open_interest_change_percent_5m: float | None
    open_interest_change_percent_15m: float | None
    open_interest_change_percent_30m: float | None
    open_interest_change_percent_1h: float | None
    open_interest_change_percent_4h: float | None
    open_interest_change_percent_24h: float | None


class CoinglassFundingExchange(Base):
    """The current funding rate of a coin's pair on one exchange: percent per interval, the interval in hours."""

    exchange: str
    funding_rate_interval: int | None  # whole hours (venues fund every 1, 2, 4 or 8)
    funding_rate: float
    next_funding_time: int | None


class CoinglassFundingCoin(Base):
    """Current funding rates of one coin per exchange, stablecoin-margined and coin-margined (none here)."""

    symbol: str
    stablecoin_margin_list: list[CoinglassFundingExchange]
    token_margin_list: list[CoinglassFundingExchange]


class OpenInterestVenueOut(Base):
    """One venue's open interest of a coin: now, and its close per interval (oldest first)."""

    exchange: str
    symbol: str
    open_interest_usd: float | None  # the newest observation, USD
    observed_at: int | None  # when it was observed, epoch ms
    history: list[list[float]]  # [[interval start (epoch ms), close USD], ...]


class OpenInterestOut(Base):
    """Open interest of a coin on every venue in one answer, and their sum."""

    coin: str
    interval: str
    synthetic: bool  # simulated data (the demo's venues)
    total_usd: float | None  # sum of the venues' newest observations
    venues: list[OpenInterestVenueOut]
    total_history: list[list[float]]  # [[interval start, close USD summed over venues], ...]


class Envelope(Base, Generic[T]):
    """Coinglass's response envelope; ``code`` is a string, "0" on success."""

    code: str
    msg: str
    data: T | None = None


class ErrorBody(Base):
    status: int
    error: str
    message: str
    allowed: list[str] | None = None


class ErrorOut(Base):
    """The one error shape of the native API."""

    error: ErrorBody


class Health(Base):
    status: str  # "ok" while the process serves
    store: str  # "reachable" or "unreachable"
    schema_version: int | None  # None while the store is unreachable


class Readiness(Base):
    status: str  # "ready" or "not_ready"
    markets: int
    problems: list[str]
