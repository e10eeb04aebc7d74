"""A simulated perpetual-futures venue: 1m candles, open interest and liquidations.

The market is a pure function of ``(seed, symbol, minute)``, so any range can be
produced on its own and every way of chunking it gives the same rows.

Two layers make that possible without replaying history from an anchor:

* **Daily levels** (log price, volatility regime, open interest in coins at
  each day's 00:00 UTC) follow slow mean-reverting AR(1) processes, generated
  from :data:`EPOCH_MS` in fixed 1024-day blocks. A few thousand numbers per
  symbol, built once and cached.
* **Intraday paths** are generated per UTC day from that day's own random
  streams, pinned to the daily levels at both ends (a bridge), so day ``d``
  needs no other intraday day. The only memory across midnight, short-term
  volatility, is rebuilt by replaying the previous day's volatility shocks
  and cascade starts (a 1440-minute warm-up; the AR(1) forgets 2**-32 of its
  start over it).

Intraday dynamics: stochastic log-volatility (AR(1), ~45 min half-life) on top
of the daily regime and a diurnal/weekend activity curve; Student-t shocks;
liquidation cascades arriving more often in high-volatility regimes, each a
sharp move over 2-6 bars that flushes open interest, fires a burst of
same-side liquidations and leaves volatility raised for a while (aftershock).
Open interest (in coins) builds up in quiet periods and trends; in USD it is
coins times price. The funding rate leans with the price's excursion from its
daily path (longs pay when the price runs ahead) and the share of accounts
holding longs leans against it (the crowd fades moves); both are zero-excursion
at midnight, so days join without a step.

**Venues.** A market given a ``venue`` is that venue's share of the one
simulated market: the same price path (a fixed basis of a few basis points
apart), its own share of open interest and volume with a slow venue-specific
wobble, its own liquidation events (their own random streams, sized by its open
interest) and its own funding and account-ratio offsets. So several venues of
one coin trade at about one price and sum to a plausible whole.
"""

from __future__ import annotations

import asyncio
import threading
import zlib
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from service.store.rows import CANDLE_DTYPE, FUNDING_DTYPE, LIQUIDATION_DTYPE, LONG_SHORT_DTYPE, OPEN_INTEREST_DTYPE, SIDE_LONG, SIDE_SHORT
from service.collect.source import Batch
from service.markets import SYNTHETIC_META

MINUTE_MS = 60_000
BARS_PER_DAY = 1440
DAY_MS = BARS_PER_DAY * MINUTE_MS
# First minute of the simulated market (2010-01-01T00:00Z); earlier requests are refused.
EPOCH_MS = 1_262_304_000_000
_EPOCH_WEEKDAY = datetime.fromtimestamp(EPOCH_MS / 1000, UTC).weekday()


@dataclass(frozen=True, slots=True)
class MarketProfile:
    """Scale of one simulated market.

    Attributes
    ----------
    base_price : float
        Price level the market mean-reverts to over months, USD.
    open_interest_usd : float
        Open interest when the price is at ``base_price`` and positioning is
        typical, USD notional of one side.
    daily_vol : float
        Typical standard deviation of daily log returns (0.03 = 3 %).
    """

    base_price: float
    open_interest_usd: float
    daily_vol: float


DEFAULT_PROFILES: dict[str, MarketProfile] = {
    "BTCUSDT": MarketProfile(base_price=77_000.0, open_interest_usd=7.5e9, daily_vol=0.028),
    "ETHUSDT": MarketProfile(base_price=3_000.0, open_interest_usd=2.5e9, daily_vol=0.036),
    "SOLUSDT": MarketProfile(base_price=150.0, open_interest_usd=0.5e9, daily_vol=0.048),
}


def demo_symbols(count: int, seed: int = 7) -> dict[str, float | MarketProfile]:
    """``count`` distinct symbols: BTCUSDT, ETHUSDT and SOLUSDT first, then made-up coins with
    deterministic names and prices (the same for the same ``count`` and ``seed``)."""
    if count < 1:
        raise ValueError(f"need at least one synthetic market, got {count}")
    symbols: dict[str, float | MarketProfile] = dict(list(DEFAULT_PROFILES.items())[:count])
    rng = np.random.default_rng(seed + 1_000_003)
    letters = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
    while len(symbols) < count:
        symbol = "".join(rng.choice(letters, size=int(rng.integers(3, 6)))) + "USDT"
        price = float(f"{10 ** rng.uniform(-1.5, 2.7):.4g}")
        symbols.setdefault(symbol, price)
    return symbols


# Scale of a symbol given only by its price: a mid-cap alt.
_GENERIC_OPEN_INTEREST_USD = 0.3e9
_GENERIC_DAILY_VOL = 0.045

# Daily layer. Half-lives in days; stds of the stationary process in log units.
_PRICE_HALF_LIFE_DAYS = 30.0  # keeps the price within roughly ±25 % of base_price
_REGIME_HALF_LIFE_DAYS = 7.0
_REGIME_STD = 0.35
_COINS_HALF_LIFE_DAYS = 20.0
_COINS_DAILY_STD = 0.03
_DAILY_BLOCK = 1024

# Intraday layer (per minute).
_VOL_HALF_LIFE_MIN = 45.0
_VOL_STD = 0.45
_AFTERSHOCK_HALF_LIFE_MIN = 30.0
_SHOCK_DF = 4.0  # Student-t degrees of freedom: fat tails, finite variance
_WICK_SCALE = 0.6  # typical wick beyond the body, in per-minute sigmas

# Cascades: forced selling (buying) that feeds on itself for a few minutes.
_CASCADES_PER_DAY = 2.0  # at the typical regime and activity
_CASCADE_REGIME_SENSITIVITY = 1.5  # rate ∝ exp(k · regime): crashes come in volatile weeks
_CASCADE_DOWN_PROBABILITY = 0.6  # longs are the crowded side more often
_CASCADE_MIN_BARS, _CASCADE_MAX_BARS = 2, 6
_CASCADE_MAX_MOVE = 0.15  # log units
_FLUSH_PER_MOVE = 1.3  # coins of open interest closed per unit of log move
_LIQUIDATED_SHARE = 0.35  # part of the flushed open interest closed by force
_CASCADE_VOLUME_PER_FLUSH = 3.0  # traded notional per USD of flushed open interest

# Open interest build-up (coins): a few % a day in quiet markets, more in trends.
_BUILD_PER_DAY = 0.02
_TREND_BUILD = 0.5  # extra build per daily sigma of the day's net move
_COINS_NOISE_PER_MIN = 3e-4
# Stops: a bar moving more than _STOP_SIGMAS sigmas closes _STOP_FLUSH coins per unit of excess log move.
_STOP_SIGMAS = 2.0
_STOP_FLUSH = 1.5

# Flow.
_TURNOVER_PER_DAY = 2.0  # traded notional per day / open interest
_BACKGROUND_LIQUIDATIONS_PER_MIN = 0.35  # in a typical, unremarkable minute
_BACKGROUND_MOVE_SENSITIVITY = 0.25  # rate ∝ 1 + k · z², z the bar's move in sigmas
_BACKGROUND_LIQUIDATION_SIZE = 2e-6  # median event, as a fraction of open interest
_CASCADE_LIQUIDATION_SIZE = 2e-5  # mean event in a cascade, as a fraction of open interest
_MAX_CASCADE_EVENTS_PER_BAR = 200

# Funding (per 8 h interval, a fraction) and the long share of accounts, around their typical levels.
_FUNDING_BASE = 0.0001
_FUNDING_INTERVAL_H = 8
_FUNDING_INTERVAL_MS = _FUNDING_INTERVAL_H * 60 * MINUTE_MS
_FUNDING_SWING = 0.0005
_LONG_ACCOUNT_BASE = 0.6
_LONG_ACCOUNT_SWING = 0.12
# Venues publish the account ratio per 5-minute period.
LONG_SHORT_PERIOD_MS = 5 * MINUTE_MS

# Random streams of one day; each draws in a fixed order so days are reproducible.
_STREAM_DAILY, _STREAM_VOL, _STREAM_CASCADES, _STREAM_MOVES, _STREAM_LIQUIDATIONS = range(5)


@dataclass(frozen=True, slots=True)
class VenueFlavour:
    """How one venue's copy of the simulated market differs from the whole.

    Attributes
    ----------
    share : float
        Part of the market's open interest and volume this venue holds.
    basis : float
        Relative price offset from the shared path (0.0002 = 2 basis points).
    funding_offset : float
        Added to the funding rate (a fraction per interval).
    long_account_offset : float
        Added to the share of accounts holding longs.
    """

    share: float
    basis: float
    funding_offset: float
    long_account_offset: float


# The three venues of the demo; their shares sum to one.
VENUE_FLAVOURS: dict[str, VenueFlavour] = {
    "binance": VenueFlavour(share=0.45, basis=0.0, funding_offset=0.0, long_account_offset=0.05),
    "bybit": VenueFlavour(share=0.3, basis=0.0002, funding_offset=0.00002, long_account_offset=-0.02),
    "okx": VenueFlavour(share=0.25, basis=-0.00015, funding_offset=-0.00001, long_account_offset=-0.06),
}
# Periods of the slow wobble of a venue's share of open interest, minutes.
_WOBBLE_PERIODS_MIN = (3 * 1440.0 + 17, 11 * 60.0 + 7)
_WOBBLE_AMPLITUDES = (0.04, 0.015)


def _decay(half_life: float) -> float:
    return float(0.5 ** (1.0 / half_life))


def ar1(noise: np.ndarray, decay: float, start: float = 0.0) -> np.ndarray:
    """``x[t] = decay * x[t-1] + noise[t]`` with ``x[-1] = start``, vectorised.

    Within a chunk ``x[t] = decay**(t+1) * (start + cumsum(noise / decay**(s+1)))``;
    chunks are kept short enough that ``decay**-len`` stays below 1e4, so the
    rescaled cumulative sum loses no meaningful precision.

    Parameters
    ----------
    noise : ndarray of float, shape (n,)
        Innovations.
    decay : float
        Persistence, in (0, 1).
    start : float
        State before the first innovation.

    Returns
    -------
    ndarray of float64, shape (n,)
    """
    noise = np.asarray(noise, dtype=np.float64)
    out = np.empty_like(noise)
    chunk = max(1, int(np.log(1e4) / -np.log(decay)))
    powers = decay ** np.arange(1, min(chunk, len(noise)) + 1, dtype=np.float64)
    state = float(start)
    for lo in range(0, len(noise), chunk):
        part = noise[lo : lo + chunk]
        scale = powers[: len(part)]
        values = scale * (state + np.cumsum(part / scale))
        out[lo : lo + len(part)] = values
        state = float(values[-1])
    return out


def _activity(day: int) -> np.ndarray:
    """Trading activity per minute of a UTC day, mean ~1: US hours busy, weekends quiet."""
    weekend = (day + _EPOCH_WEEKDAY) % 7 >= 5
    return _WEEKEND_ACTIVITY if weekend else _WEEKDAY_ACTIVITY


def _diurnal_activity() -> np.ndarray:
    hour = np.arange(BARS_PER_DAY) / 60.0
    # US cash open (13:30-16:00 UTC) and the Asian morning carry most of the flow.
    curve = 0.8 + 0.55 * np.exp(-(((hour - 14.5) / 2.0) ** 2)) + 0.2 * np.exp(-(((hour - 1.5) / 1.5) ** 2))
    return curve / curve.mean()


_WEEKDAY_ACTIVITY = _diurnal_activity()
_WEEKEND_ACTIVITY = 0.7 * _WEEKDAY_ACTIVITY


def _tick(price: float) -> float:
    """Price increment of a market at this price: ~1e-6 relative (BTC 0.1, ETH 0.01, SOL 0.001)."""
    return float(10.0 ** (np.floor(np.log10(price)) - 5))


def _lot(price: float) -> float:
    """Quantity increment: the power of ten worth about 1-10 USD."""
    return float(10.0 ** np.floor(np.log10(10.0 / price)))


@dataclass(slots=True)
class _DailyLevels:
    """Per-day levels at 00:00 UTC of day ``d`` (days since :data:`EPOCH_MS`), log units.

    ``price`` is the log price minus log ``base_price``; ``regime`` the log
    volatility regime; ``coins`` the log open interest in coins minus its
    typical level.
    """

    price: np.ndarray
    regime: np.ndarray
    coins: np.ndarray


@dataclass(slots=True)
class _Cascades:
    """Per-minute effects of the day's cascades.

    ``jump``: signed log return added to the bar; ``flush``: log fraction of
    coins closed in the bar; ``direction``: -1/+1 for bars inside a down/up
    cascade, 0 elsewhere; ``aftershock``: log-volatility impulse at each start.
    """

    jump: np.ndarray
    flush: np.ndarray
    direction: np.ndarray
    aftershock: np.ndarray

    @classmethod
    def quiet(cls) -> _Cascades:
        return cls(
            np.zeros(BARS_PER_DAY),
            np.zeros(BARS_PER_DAY),
            np.zeros(BARS_PER_DAY, dtype=np.int8),
            np.zeros(BARS_PER_DAY),
        )


@dataclass(frozen=True, slots=True)
class _DayRows:
    candles: np.ndarray
    open_interest: np.ndarray
    liquidations: np.ndarray
    funding: np.ndarray  # one observation per bar close, like open interest
    long_short: np.ndarray  # one per 5-minute period end


class _Simulator:
    """One symbol's market: daily levels plus per-day generation. Not thread-safe."""

    def __init__(self, seed: int, symbol: str, profile: MarketProfile, venue: str | None = None) -> None:
        self.flavour = None if venue is None else VENUE_FLAVOURS.get(venue, VenueFlavour(1.0 / 3, 0.0, 0.0, 0.0))
        if self.flavour is not None:
            profile = MarketProfile(profile.base_price * (1 + self.flavour.basis), profile.open_interest_usd, profile.daily_vol)
        self.profile = profile
        self._entropy = (seed % 2**64, zlib.crc32(symbol.encode()))
        # Streams a venue draws on its own (its liquidations); the shared ones keep the market's entropy.
        self._venue_entropy = self._entropy if venue is None else (*self._entropy, zlib.crc32(venue.encode()))
        self._levels = _DailyLevels(np.zeros(0), np.zeros(0), np.zeros(0))
        self._tick = _tick(profile.base_price)
        self._lot = _lot(profile.base_price)

    def _rng(self, stream: int, index: int) -> np.random.Generator:
        return np.random.default_rng([*self._entropy, stream, index])

    def _venue_rng(self, stream: int, index: int) -> np.random.Generator:
        return np.random.default_rng([*self._venue_entropy, stream, index])

    def _venue_scale(self, ts_ms: np.ndarray) -> np.ndarray:
        """The venue's share of open interest and volume at each time (1 for the whole market)."""
        if self.flavour is None:
            return np.ones(len(ts_ms))
        phases = np.random.default_rng([*self._venue_entropy, 99]).uniform(0, 2 * np.pi, len(_WOBBLE_PERIODS_MIN))
        minutes = (ts_ms - EPOCH_MS) / MINUTE_MS
        wobble = sum(a * np.sin(2 * np.pi * minutes / p + f) for a, p, f in zip(_WOBBLE_AMPLITUDES, _WOBBLE_PERIODS_MIN, phases, strict=True))
        return self.flavour.share * (1.0 + wobble)

    def levels(self, days: int) -> _DailyLevels:
        """Daily levels covering at least days ``0..days-1``."""
        while len(self._levels.price) < days:
            self._extend_levels()
        return self._levels

    def _extend_levels(self) -> None:
        levels = self._levels
        block = len(levels.price) // _DAILY_BLOCK
        z_regime, z_price, z_coins = self._rng(_STREAM_DAILY, block).standard_normal((3, _DAILY_BLOCK))
        a_regime = _decay(_REGIME_HALF_LIFE_DAYS)
        a_price = _decay(_PRICE_HALF_LIFE_DAYS)
        a_coins = _decay(_COINS_HALF_LIFE_DAYS)
        last_regime = levels.regime[-1] if block else 0.0
        regime = ar1(z_regime * _REGIME_STD * np.sqrt(1 - a_regime**2), a_regime, last_regime)
        # The move from day d-1 to d is scaled by the regime over that day.
        day_regime = 0.5 * (np.concatenate([[last_regime], regime[:-1]]) + regime)
        day_sigma = self.profile.daily_vol * np.exp(day_regime - _REGIME_STD**2)
        price = ar1(day_sigma * z_price, a_price, levels.price[-1] if block else 0.0)
        coins = ar1(_COINS_DAILY_STD * z_coins, a_coins, levels.coins[-1] if block else 0.0)
        self._levels = _DailyLevels(
            np.concatenate([levels.price, price]),
            np.concatenate([levels.regime, regime]),
            np.concatenate([levels.coins, coins]),
        )

    def _regime_path(self, day: int) -> np.ndarray:
        """Volatility regime per minute, interpolated between the day's two ends."""
        regime = self.levels(day + 2).regime
        return regime[day] + (regime[day + 1] - regime[day]) * (np.arange(BARS_PER_DAY) / BARS_PER_DAY)

    def _cascades(self, day: int) -> _Cascades:
        rng = self._rng(_STREAM_CASCADES, day)
        regime = self._regime_path(day)
        rate = _CASCADES_PER_DAY / BARS_PER_DAY * np.exp(_CASCADE_REGIME_SENSITIVITY * regime) * _activity(day)
        starts = np.flatnonzero(rng.random(BARS_PER_DAY) < rate)
        count = len(starts)
        lengths = rng.integers(_CASCADE_MIN_BARS, _CASCADE_MAX_BARS + 1, count)
        directions = np.where(rng.random(count) < _CASCADE_DOWN_PROBABILITY, -1, 1)
        day_sigma = self.profile.daily_vol * np.exp(regime[starts])
        moves = np.minimum(day_sigma * (0.3 + 0.25 * rng.pareto(2.5, count)), _CASCADE_MAX_MOVE)
        cascades = _Cascades.quiet()
        for start, length, direction, move in zip(starts, lengths, directions, moves, strict=True):
            bars = np.arange(start, min(start + length, BARS_PER_DAY))
            # Front-loaded: the first minutes, when stops are densest, move most.
            weights = np.exp(-0.5 * np.arange(len(bars)))
            weights /= weights.sum()
            cascades.jump[bars] += direction * move * weights
            cascades.flush[bars] += _FLUSH_PER_MOVE * move * weights
            cascades.direction[bars] = direction
            cascades.aftershock[start] += min(0.6 + 10.0 * move, 1.5)
        return cascades

    def _log_vol(self, day: int, cascades: _Cascades) -> np.ndarray:
        """Short-term log volatility per minute, continuous across midnight (warm-up on day-1)."""
        shocks = self._rng(_STREAM_VOL, day).standard_normal(BARS_PER_DAY)
        impulses = cascades.aftershock
        if day > 0:
            shocks = np.concatenate([self._rng(_STREAM_VOL, day - 1).standard_normal(BARS_PER_DAY), shocks])
            impulses = np.concatenate([self._cascades(day - 1).aftershock, impulses])
        a_vol = _decay(_VOL_HALF_LIFE_MIN)
        stochastic = ar1(shocks * _VOL_STD * np.sqrt(1 - a_vol**2), a_vol)
        aftershock = ar1(impulses, _decay(_AFTERSHOCK_HALF_LIFE_MIN))
        return (stochastic + aftershock)[-BARS_PER_DAY:]

    def day(self, day: int) -> _DayRows:
        """All rows of one UTC day (days since :data:`EPOCH_MS`)."""
        profile = self.profile
        levels = self.levels(day + 2)
        day_start_ms = EPOCH_MS + day * DAY_MS
        activity = _activity(day)
        regime = self._regime_path(day)
        cascades = self._cascades(day)
        log_vol = self._log_vol(day, cascades)
        # How agitated the market is (mean ~1); the -std² terms keep the mean variance near daily_vol².
        agitation = activity * np.exp(regime - _REGIME_STD**2 + log_vol - _VOL_STD**2)
        sigma = profile.daily_vol / np.sqrt(BARS_PER_DAY) * agitation  # per-minute log-return std

        rng = self._rng(_STREAM_MOVES, day)
        shocks = rng.standard_t(_SHOCK_DF, BARS_PER_DAY) / np.sqrt(_SHOCK_DF / (_SHOCK_DF - 2))
        returns = sigma * shocks + cascades.jump
        # Bridge to the next day's level, spread where the market is already moving.
        day_move = levels.price[day + 1] - levels.price[day]
        returns += (day_move - returns.sum()) * sigma**2 / np.sum(sigma**2)
        log_price = levels.price[day] + np.cumsum(returns)
        log_price[-1] = levels.price[day + 1]

        price_of = self._price
        close = price_of(log_price)
        open_ = np.concatenate([price_of(levels.price[day : day + 1]), close[:-1]])
        body_high, body_low = np.maximum(open_, close), np.minimum(open_, close)
        wick_up = sigma * _WICK_SCALE * np.abs(rng.standard_normal(BARS_PER_DAY))
        wick_down = sigma * _WICK_SCALE * np.abs(rng.standard_normal(BARS_PER_DAY))
        # Forced orders sweep the book beyond where the bar settles.
        overshoot = np.abs(cascades.jump) * 0.5 * rng.random(BARS_PER_DAY)
        wick_up += np.where(cascades.jump > 0, overshoot, 0.0)
        wick_down += np.where(cascades.jump < 0, overshoot, 0.0)
        high = np.maximum(body_high, np.round(body_high * np.exp(wick_up) / self._tick) * self._tick)
        low = np.minimum(body_low, np.round(body_low * np.exp(-wick_down) / self._tick) * self._tick)
        bar_return = np.log(close / open_)
        standardized = bar_return / sigma

        # Open interest in coins: builds when quiet or trending, flushes in cascades and
        # when a big bar runs through stops, pinned daily.
        day_sigma = profile.daily_vol * np.exp(regime)
        trend = np.abs(day_move) / day_sigma
        stopped_out = _STOP_FLUSH * sigma * np.maximum(np.abs(shocks) - _STOP_SIGMAS, 0.0)
        coins_step = (
            _BUILD_PER_DAY / BARS_PER_DAY * np.exp(-log_vol) * (1 + _TREND_BUILD * trend)
            + _COINS_NOISE_PER_MIN * rng.standard_normal(BARS_PER_DAY)
            - cascades.flush
            - stopped_out
        )
        coins_move = levels.coins[day + 1] - levels.coins[day]
        coins_step += (coins_move - coins_step.sum()) / BARS_PER_DAY
        log_coins = levels.coins[day] + np.cumsum(coins_step)
        ts_ms = day_start_ms + MINUTE_MS * np.arange(BARS_PER_DAY, dtype=np.int64)
        venue_scale = self._venue_scale(ts_ms + MINUTE_MS)
        open_interest = profile.open_interest_usd * np.exp(log_coins + log_price) * venue_scale
        open_interest_before = np.concatenate(
            [[profile.open_interest_usd * np.exp(levels.coins[day] + levels.price[day]) * self._venue_scale(ts_ms[:1])[0]], open_interest[:-1]]
        )

        volume = (
            _TURNOVER_PER_DAY / BARS_PER_DAY * open_interest_before
            * agitation
            * (0.5 + 0.5 * np.abs(shocks))
            * np.exp(0.3 * rng.standard_normal(BARS_PER_DAY) - 0.045)
            + _CASCADE_VOLUME_PER_FLUSH * cascades.flush * open_interest_before
        )
        # Takers push the price: buy share leans with the bar's standardized move.
        buy_share = np.clip(
            0.5 + 0.38 * np.tanh(0.7 * standardized) + 0.04 * rng.standard_normal(BARS_PER_DAY), 0.03, 0.97
        )

        candles = np.empty(BARS_PER_DAY, dtype=CANDLE_DTYPE)
        candles["ts_ms"] = ts_ms
        candles["open"] = open_
        candles["high"] = high
        candles["low"] = low
        candles["close"] = close
        candles["volume_usd"] = volume
        candles["taker_buy_usd"] = volume * buy_share
        oi_rows = np.empty(BARS_PER_DAY, dtype=OPEN_INTEREST_DTYPE)
        # Open interest is stamped when it was observed: at the bar's close.
        oi_rows["ts_ms"] = ts_ms + MINUTE_MS
        oi_rows["open_interest_usd"] = open_interest

        liquidations = self._liquidations(
            day,
            candles,
            cascades,
            agitation=agitation,
            standardized=standardized,
            open_interest_before=open_interest_before,
        )
        # Excursion from the day's straight path in daily sigmas: zero at both midnights.
        straight = levels.price[day] + day_move * (np.arange(1, BARS_PER_DAY + 1) / BARS_PER_DAY)
        excursion = np.tanh(2.0 * (log_price - straight) / day_sigma)
        return _DayRows(candles, oi_rows, liquidations, self._funding(ts_ms + MINUTE_MS, excursion), self._long_short(ts_ms + MINUTE_MS, excursion))

    def _funding(self, close_ms: np.ndarray, excursion: np.ndarray) -> np.ndarray:
        """The funding rate observed at each bar close: longs pay more as the price runs ahead."""
        offset = 0.0 if self.flavour is None else self.flavour.funding_offset
        rows = np.empty(len(close_ms), dtype=FUNDING_DTYPE)
        rows["ts_ms"] = close_ms
        rows["funding_rate"] = np.round(_FUNDING_BASE + offset + _FUNDING_SWING * excursion, 8)
        return rows

    def _long_short(self, close_ms: np.ndarray, excursion: np.ndarray) -> np.ndarray:
        """The share of accounts long and short at each 5-minute period end: the crowd fades the move."""
        offset = 0.0 if self.flavour is None else self.flavour.long_account_offset
        ends = np.flatnonzero(close_ms % LONG_SHORT_PERIOD_MS == 0)
        long_share = np.round(np.clip(_LONG_ACCOUNT_BASE + offset - _LONG_ACCOUNT_SWING * excursion[ends], 0.05, 0.95), 4)
        rows = np.empty(len(ends), dtype=LONG_SHORT_DTYPE)
        rows["ts_ms"] = close_ms[ends]
        rows["long_account"] = long_share
        rows["short_account"] = np.round(1.0 - long_share, 4)
        return rows

    def _price(self, log_price: np.ndarray) -> np.ndarray:
        return np.round(self.profile.base_price * np.exp(log_price) / self._tick) * self._tick

    def _liquidations(
        self,
        day: int,
        candles: np.ndarray,
        cascades: _Cascades,
        *,
        agitation: np.ndarray,
        standardized: np.ndarray,
        open_interest_before: np.ndarray,
    ) -> np.ndarray:
        """Liquidation events of one day, sorted by time.

        Background: a trickle of small events whose side follows the bar's
        move. Cascades: bursts on the cascade's side whose notional is the
        forced part of the open interest flushed in the bar.

        Parameters
        ----------
        candles : structured array of CANDLE_DTYPE, shape (1440,)
        agitation : shape (1440,)
            Volatility × activity multiplier, mean ~1.
        standardized : shape (1440,)
            The bar's log return in per-minute sigmas.
        open_interest_before : shape (1440,)
            Open interest at each bar's open, USD.
        """
        rng = self._venue_rng(_STREAM_LIQUIDATIONS, day)
        bars = np.arange(BARS_PER_DAY)
        ts_ms = candles["ts_ms"]

        # Big bars reach more stops even without a cascade.
        rate = _BACKGROUND_LIQUIDATIONS_PER_MIN * agitation * (1 + _BACKGROUND_MOVE_SENSITIVITY * standardized**2)
        background_bar = np.repeat(bars, rng.poisson(rate))
        long_probability = 1.0 / (1.0 + np.exp(1.5 * standardized[background_bar]))
        background_side = np.where(rng.random(len(background_bar)) < long_probability, SIDE_LONG, SIDE_SHORT)
        background_usd = (
            open_interest_before[background_bar]
            * _BACKGROUND_LIQUIDATION_SIZE
            * np.exp(1.2 * rng.standard_normal(len(background_bar)))
        )

        forced_usd = _LIQUIDATED_SHARE * cascades.flush * open_interest_before
        mean_events = np.minimum(
            forced_usd / (_CASCADE_LIQUIDATION_SIZE * open_interest_before), _MAX_CASCADE_EVENTS_PER_BAR
        )
        counts = np.where(forced_usd > 0, 1 + rng.poisson(mean_events), 0)
        cascade_bar = np.repeat(bars, counts)
        raw_size = np.exp(rng.standard_normal(len(cascade_bar)))
        cascade_usd = raw_size / np.bincount(cascade_bar, raw_size, BARS_PER_DAY)[cascade_bar] * forced_usd[cascade_bar]
        # A down cascade (direction -1) liquidates longs (+1).
        cascade_side = -cascades.direction[cascade_bar]

        bar = np.concatenate([background_bar, cascade_bar])
        side = np.concatenate([background_side, cascade_side]).astype(np.int8)
        usd = np.concatenate([background_usd, cascade_usd])
        low, high = candles["low"][bar], candles["high"][bar]
        # Longs are liquidated near the bar's low, shorts near its high.
        depth = (high - low) * rng.random(len(bar)) ** 2
        price = np.where(side == SIDE_LONG, low + depth, high - depth)
        price = np.clip(np.round(price / self._tick) * self._tick, low, high)
        quantity = np.maximum(np.round(usd / price / self._lot), 1.0) * self._lot
        event_ts = ts_ms[bar] + rng.integers(0, MINUTE_MS, len(bar))

        order = np.argsort(event_ts, kind="stable")
        rows = np.empty(len(bar), dtype=LIQUIDATION_DTYPE)
        rows["ts_ms"] = event_ts[order]
        rows["side"] = side[order]
        rows["price"] = price[order]
        rows["quantity"] = quantity[order]
        rows["usd"] = quantity[order] * price[order]
        return rows


def _profile(symbol: str, spec: float | MarketProfile) -> MarketProfile:
    if isinstance(spec, MarketProfile):
        return spec
    known = DEFAULT_PROFILES.get(symbol)
    if known is None:
        return MarketProfile(float(spec), _GENERIC_OPEN_INTEREST_USD, _GENERIC_DAILY_VOL)
    # Open interest scales with price at a fixed coin count.
    return MarketProfile(float(spec), known.open_interest_usd * float(spec) / known.base_price, known.daily_vol)


def _closed_bars(start_ms: int, end_ms: int) -> tuple[int, int]:
    """Open times ``[first, stop)`` of the bars opening at/after start and closed by end."""
    first = -(-start_ms // MINUTE_MS) * MINUTE_MS
    stop = end_ms // MINUTE_MS * MINUTE_MS
    return first, max(first, stop)


class SyntheticMarket:
    """A simulated venue implementing :class:`~service.collect.source.MarketSource`.

    Parameters
    ----------
    seed : int
        Selects the market's history; the same seed gives the same rows.
    symbols : mapping of str to float or MarketProfile, optional
        Symbols and their base price, USD (or a full profile). Known symbols
        keep their open interest scale (rescaled to the price) and volatility.
        Defaults to BTCUSDT, ETHUSDT and SOLUSDT.
    exchange : str
        Venue name used in keys and URLs.
    venue : str, optional
        Make this one venue's share of the market (see :data:`VENUE_FLAVOURS`): the
        same seed gives several venues one price path and their own open interest,
        volume, liquidations, funding and account ratios. None: the whole market.
    cache_days : int
        Days of generated rows kept in memory per market (poll reuses them).
    """

    step_ms = MINUTE_MS

    def __init__(
        self,
        seed: int = 7,
        symbols: Mapping[str, float | MarketProfile] | None = None,
        exchange: str = "synthetic",
        *,
        venue: str | None = None,
        cache_days: int = 8,
    ) -> None:
        self.exchange = exchange
        self.seed = seed
        self.venue = venue
        specs = symbols if symbols is not None else DEFAULT_PROFILES
        self._simulators = {symbol: _Simulator(seed, symbol, _profile(symbol, spec), venue) for symbol, spec in specs.items()}
        self._cache: OrderedDict[tuple[str, int], _DayRows] = OrderedDict()
        self._cache_limit = cache_days * len(self._simulators)
        # Backfills run in a worker thread while polls run on the event loop.
        self._lock = threading.Lock()
        self._next_bar_ms: dict[str, int] = {}

    def symbols(self) -> list[str]:
        return list(self._simulators)

    def profile(self, symbol: str) -> MarketProfile:
        return self._simulator(symbol).profile

    async def backfill(self, symbol: str, start_ms: int, end_ms: int) -> Batch:
        """Bars opening in ``[start_ms, end_ms)`` and closed by ``end_ms`` (it acts as "now").

        Generation runs in a thread (a year of 1m bars takes ~0.7 s).
        Later polls continue after the last bar returned here.
        """
        batch = await asyncio.to_thread(self.rows, symbol, start_ms, end_ms)
        _, stop = _closed_bars(0, end_ms)
        self._next_bar_ms[symbol] = max(self._next_bar_ms.get(symbol, stop), stop)
        batch.meta.update(_state(stop))
        return batch

    async def poll(self, symbol: str, now_ms: int) -> Batch:
        """Bars closed by ``now_ms`` and not yet returned; the last closed bar on a first call."""
        self._simulator(symbol)
        _, stop = _closed_bars(0, now_ms)
        first = self._next_bar_ms.get(symbol, stop - MINUTE_MS)
        if first >= stop:
            return Batch()
        if stop - first > DAY_MS:
            # After a long pause (a laptop asleep) catching up is backfill-sized work.
            batch = await asyncio.to_thread(self.rows, symbol, first, stop)
        else:
            batch = self.rows(symbol, first, stop)
        self._next_bar_ms[symbol] = stop
        batch.meta.update(_state(stop))
        return batch

    def rows(self, symbol: str, start_ms: int, end_ms: int) -> Batch:
        """Rows of the bars with ``start_ms <= open`` and ``open + 60 s <= end_ms``.

        Synchronous, and leaves the poll position alone.
        """
        simulator = self._simulator(symbol)
        first, stop = _closed_bars(start_ms, end_ms)
        if first < EPOCH_MS:
            raise ValueError(f"the synthetic market starts at {EPOCH_MS} ms (2010-01-01), asked for {first}")
        if stop <= first:
            return Batch()
        first_day, last_day = (first - EPOCH_MS) // DAY_MS, (stop - 1 - EPOCH_MS) // DAY_MS
        parts = [self._day(symbol, simulator, day) for day in range(first_day, last_day + 1)]
        return _slice(parts, first, stop)

    def _simulator(self, symbol: str) -> _Simulator:
        try:
            return self._simulators[symbol]
        except KeyError:
            known = ", ".join(self._simulators)
            raise KeyError(f"unknown symbol {symbol!r}; the synthetic market has {known}") from None

    def _day(self, symbol: str, simulator: _Simulator, day: int) -> _DayRows:
        key = (symbol, day)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return cached
            # Simulators share mutable daily levels, so generation is serialised too.
            rows = simulator.day(day)
            self._cache[key] = rows
            while len(self._cache) > self._cache_limit:
                self._cache.popitem(last=False)
            return rows


def _state(now_ms: int) -> dict[str, str | int | float]:
    """Market metadata a poll reports: simulated data, funded every 8 hours (UTC), the next funding time."""
    return {SYNTHETIC_META: 1, "funding_interval_h": _FUNDING_INTERVAL_H, "next_funding_ms": now_ms - now_ms % _FUNDING_INTERVAL_MS + _FUNDING_INTERVAL_MS}


def _slice(parts: list[_DayRows], first_ms: int, stop_ms: int) -> Batch:
    """Rows of whole days cut to bars ``[first_ms, stop_ms)``."""
    candles = np.concatenate([part.candles for part in parts])
    open_interest = np.concatenate([part.open_interest for part in parts])
    liquidations = np.concatenate([part.liquidations for part in parts])
    funding = np.concatenate([part.funding for part in parts])
    long_short = np.concatenate([part.long_short for part in parts])
    lo, hi = np.searchsorted(candles["ts_ms"], [first_ms, stop_ms])
    liq_lo, liq_hi = np.searchsorted(liquidations["ts_ms"], [first_ms, stop_ms])
    # Ratios are stamped at period ends: those of the bars' closes.
    ratio_lo = np.searchsorted(long_short["ts_ms"], first_ms + MINUTE_MS, side="left")
    ratio_hi = np.searchsorted(long_short["ts_ms"], stop_ms, side="right")
    return Batch(
        candles[lo:hi].copy(),
        open_interest[lo:hi].copy(),
        liquidations[liq_lo:liq_hi].copy(),
        funding=funding[lo:hi].copy(),
        long_short=long_short[ratio_lo:ratio_hi].copy(),
    )


def synthetic_batch(
    start_ms: int,
    end_ms: int,
    symbol: str = "BTCUSDT",
    seed: int = 7,
    profile: float | MarketProfile | None = None,
) -> Batch:
    """Canonical rows of bars opening in ``[start_ms, end_ms)``, without asyncio or state.

    ``profile`` is a base price (USD) or a full :class:`MarketProfile`;
    by default the symbol's default profile.
    """
    if profile is None:
        profile = DEFAULT_PROFILES.get(symbol, MarketProfile(100.0, _GENERIC_OPEN_INTEREST_USD, _GENERIC_DAILY_VOL))
    return SyntheticMarket(seed, {symbol: profile}, cache_days=1).rows(symbol, start_ms, end_ms)


def synthetic_series(
    start_ms: int,
    end_ms: int,
    symbol: str = "BTCUSDT",
    seed: int = 7,
    profile: float | MarketProfile | None = None,
) -> dict[str, np.ndarray]:
    """Per-bar columns (the fields of ``engine.series.MarketSeries`` but ``step_ms``).

    Returns ``ts_ms`` (bar open, epoch ms), ``open``/``high``/``low``/``close``
    (USD), ``volume_usd``, ``taker_buy_usd`` and ``open_interest_usd`` (at
    the bar's close, USD), each shape (bars,).
    """
    batch = synthetic_batch(start_ms, end_ms, symbol, seed, profile)
    columns = {name: np.ascontiguousarray(batch.candles[name]) for name in CANDLE_DTYPE.names}
    columns["open_interest_usd"] = np.ascontiguousarray(batch.open_interest["open_interest_usd"])
    return columns
