"""Realized-liquidation bucketing and the map/max-pain reading of a frame, against plain loops."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from service.store.rows import LIQUIDATION_DTYPE
from service.wire.coinglass import coin_markets, largest_level_of_side, liquidation_levels, map_data, tier_levels
from service.wire.schemas import LiquidationMapOut, MaxPainOut, TierBookOut
from service.compute.realized import (
    INTERVALS_MS,
    WEEK_MS,
    BucketWindow,
    bucket_start,
    bucket_totals,
    history_window,
    newest_at_least,
    span_window,
    stack,
    window_totals,
    window_totals_by_group,
)

HOUR = 3_600_000
T0 = 1_780_000_000_000

events_lists = st.lists(
    st.tuples(st.integers(T0, T0 + 48 * HOUR), st.sampled_from([1, -1]), st.floats(1.0, 1e6)),
    max_size=60,
)


def _events(rows: list[tuple[int, int, float]]) -> np.ndarray:
    out = np.zeros(len(rows), dtype=LIQUIDATION_DTYPE)
    for i, (ts, side, usd) in enumerate(rows):
        out[i] = (ts, side, 100.0, usd / 100.0, usd)
    return out


@settings(max_examples=60, deadline=None)
@given(rows=events_lists, interval=st.sampled_from(["1m", "15m", "1h", "4h", "1d"]), first_offset=st.integers(0, 24 * HOUR), count=st.integers(1, 40))
def test_bucket_totals_are_the_events_of_each_bucket(rows: list, interval: str, first_offset: int, count: int) -> None:
    width = INTERVALS_MS[interval]
    window = BucketWindow(first_ms=bucket_start(T0 + first_offset, width), interval_ms=width, count=count)
    starts, long_usd, short_usd = bucket_totals(_events(rows), window)
    assert starts.tolist() == [window.first_ms + k * width for k in range(count)]
    for k, start in enumerate(starts.tolist()):
        expected_long = sum(usd for ts, side, usd in rows if start <= ts < start + width and side == 1)
        expected_short = sum(usd for ts, side, usd in rows if start <= ts < start + width and side == -1)
        assert np.isclose(long_usd[k], expected_long) and np.isclose(short_usd[k], expected_short)


def test_weeks_start_on_monday_and_other_buckets_on_multiples_of_their_width() -> None:
    monday = datetime.fromtimestamp(bucket_start(T0, WEEK_MS) / 1000, UTC)
    assert (monday.weekday(), monday.hour, monday.minute) == (0, 0, 0)
    assert T0 - bucket_start(T0, WEEK_MS) < WEEK_MS
    assert bucket_start(T0 + 5, HOUR) == T0 - T0 % HOUR


@settings(max_examples=60, deadline=None)
@given(start=st.integers(T0, T0 + 48 * HOUR), length=st.integers(1, 48 * HOUR), interval=st.sampled_from(["1m", "15m", "1h", "1w"]), most=st.integers(1, 50))
def test_span_window_holds_the_first_and_last_millisecond_or_the_newest_buckets(start: int, length: int, interval: str, most: int) -> None:
    width = INTERVALS_MS[interval]
    window = span_window(start, start + length, width, most)
    assert 1 <= window.count <= most
    assert window.first_ms <= start + length - 1 < window.end_ms <= start + length - 1 + width  # the last bucket holds the last millisecond
    # The first bucket holds the first millisecond, unless that would make more than ``most``.
    assert window.first_ms == bucket_start(start, width) or (window.first_ms > start and window.count == most)


def test_window_totals_by_group_count_each_market_in_its_group() -> None:
    a = _events([(T0 - 10, 1, 5.0), (T0 - HOUR - 1, 1, 7.0)])
    b = _events([(T0 - 20, -1, 3.0)])
    c = _events([(T0 - 30, 1, 11.0)])
    long_usd, short_usd = window_totals_by_group([a, b, c], [1, 1, 0], 2, T0, [HOUR, 2 * HOUR])
    assert long_usd.tolist() == [[11.0, 11.0], [5.0, 12.0]]
    assert short_usd.tolist() == [[0.0, 0.0], [3.0, 3.0]]


def test_history_window_newest_oldest_and_coverage() -> None:
    end = T0 + 10 * HOUR + 5
    newest = history_window(HOUR, end_ms=end, limit=3, coverage_start_ms=T0)
    assert newest == BucketWindow(first_ms=bucket_start(end, HOUR) - 2 * HOUR, interval_ms=HOUR, count=3)
    oldest = history_window(HOUR, end_ms=end, limit=3, start_ms=T0 + 2 * HOUR + 1, coverage_start_ms=T0)
    assert oldest is not None and oldest.first_ms == bucket_start(T0 + 2 * HOUR, HOUR) and oldest.count == 3
    clipped = history_window(HOUR, end_ms=end, limit=1000, coverage_start_ms=T0 + 7 * HOUR + 1)
    assert clipped is not None and clipped.first_ms == bucket_start(T0 + 7 * HOUR, HOUR) and clipped.end_ms > end
    assert history_window(HOUR, end_ms=end, limit=10, coverage_start_ms=None) is None
    assert history_window(HOUR, end_ms=T0, limit=10, coverage_start_ms=T0 + 5 * HOUR) is None


@settings(max_examples=40, deadline=None)
@given(first=events_lists, second=events_lists, width=st.sampled_from([HOUR, 4 * HOUR, 24 * HOUR]))
def test_window_totals_per_group(first: list, second: list, width: int) -> None:
    events, owner = stack([_events(first), _events(second)])
    now = T0 + 30 * HOUR
    long_usd, short_usd = window_totals(events, owner, 2, now, [width])
    for group, rows in enumerate((first, second)):
        inside = [(side, usd) for ts, side, usd in rows if now - width <= ts <= now]
        assert np.isclose(long_usd[group, 0], sum(usd for side, usd in inside if side == 1))
        assert np.isclose(short_usd[group, 0], sum(usd for side, usd in inside if side == -1))


@settings(max_examples=40, deadline=None)
@given(rows=events_lists, min_usd=st.floats(0, 1e6), limit=st.integers(1, 20))
def test_newest_at_least(rows: list, min_usd: float, limit: int) -> None:
    events = _events(rows)
    chosen = newest_at_least(events, min_usd, limit)
    expected = sorted((ts for ts, _side, usd in rows if usd >= min_usd), reverse=True)[:limit]
    assert events["ts_ms"][chosen].tolist() == expected


def test_a_coins_book_is_its_aggregate_else_its_only_pair() -> None:
    markets = [("all", "BTC"), ("binance", "BTCUSDT"), ("okx", "BTCUSDT"), ("binance", "ETHUSDT"), ("binance", "SOLUSDT"), ("okx", "SOLUSDT")]
    # SOL is on two exchanges and has no aggregate: no single book to read.
    assert coin_markets(markets) == {"BTC": ("all", "BTC"), "ETH": ("binance", "ETHUSDT")}


def test_levels_map_and_max_pain_from_the_last_column() -> None:
    frame = {
        "y": [90.0, 95.0, 100.0, 105.0, 110.0],
        "long": [[9, 9, 9, 9, 9], [5, 30, 0, 0, 0]],
        "short": [[9, 9, 9, 9, 9], [0, 0, 0, 20, 7]],
        "candles": [[0, 100.0, 101.0, 99.0, 100.5, 1.0], [1, None, None, None, None, None]],
        "id": "ignored",
    }
    levels = liquidation_levels(msgspec.msgpack.encode(frame))
    assert levels.price == 100.5
    assert map_data(levels) == {"90": [[90.0, 5.0, None, None]], "95": [[95.0, 30.0, None, None]], "105": [[105.0, 20.0, None, None]], "110": [[110.0, 7.0, None, None]]}
    assert largest_level_of_side(levels, 1) == (30.0, 95.0)
    assert largest_level_of_side(levels, -1) == (20.0, 105.0)
    empty = liquidation_levels(msgspec.msgpack.encode({**frame, "short": [[0] * 5]}))
    assert largest_level_of_side(empty, -1) == (0.0, None)


def test_the_pair_map_has_an_entry_per_tier_with_its_leverage() -> None:
    tier = lambda leverage, long, short: TierBookOut(leverage=leverage, long=long, short=short, cumulative_long=[0] * 4, cumulative_short=[0] * 4)  # noqa: E731
    book = LiquidationMapOut(
        exchange="binance", symbol="BTCUSDT", model="model1", model_version="1.0.0", params_hash="h", range="24h", leverage="all",
        data_until=0, price=100.0, y=[90.0, 95.0, 105.0, 110.0],
        tiers=[tier(10.0, [4, 0, 0, 0], [0, 0, 0, 6]), tier(12.5, [0, 3, 0, 0], [0, 0, 0, 0]), tier(25.0, [2, 0, 0, 0], [0, 0, 8, 0])],
        cumulative_long=[0] * 4, cumulative_short=[0] * 4, beyond_long_usd=0.0, beyond_short_usd=0.0, max_pain=MaxPainOut(long=None, short=None),
    )
    assert map_data(tier_levels(book)) == {
        "90": [[90.0, 4.0, 10, None], [90.0, 2.0, 25, None]],
        "95": [[95.0, 3.0, 12.5, None]],
        "105": [[105.0, 8.0, 25, None]],
        "110": [[110.0, 6.0, 10, None]],
    }
