"""What the engine hands the service besides the heatmap: clusters, the liquidation map, leverage filters, build_frames."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.build import build_frame, build_frames
from engine.clusters import clusters, find_clusters
from engine.leverage import LEVERAGE_PATTERN, select_tiers
from engine.book import cumulative_curves, largest_row_per_side, liquidation_map
from engine.models import MODELS
from engine.ranges import MINUTE_MS, RANGES
from test_build import synthetic_series

GENERATED_AT = 1_700_000_000_000


def test_clusters_are_the_dense_bands_on_each_side_of_price():
    y = np.arange(100, dtype=np.float64) + 0.5  # rows [i, i+1)
    long_usd = np.zeros(100)
    short_usd = np.zeros(100)
    long_usd[20:23] = 100.0  # smoothed: rows 19..23 at 33, 67, 100, 67, 33
    long_usd[39:42] = 60.0  # smoothed: rows 38..42 at 20, 40, 60, 40, 20
    short_usd[70:75] = 30.0
    short_usd[30] = 999.0  # a short below price: not a short cluster
    long_usd[80] = 999.0  # a long above price: not a long cluster
    # The 0.3 quantile of the ten smoothed long rows is 33.3: rows 19..23 and 39..41 make it.
    bands = find_clusters(y, long_usd, short_usd, price=55.0, quantile=0.3)
    longs = [b for b in bands if b["side"] == "long"]
    shorts = [b for b in bands if b["side"] == "short"]
    assert [(b["price_low"], b["price_high"]) for b in longs] == [(39.0, 42.0), (19.0, 24.0)]  # nearest first
    assert longs[1]["usd"] == pytest.approx(300.0) and longs[1]["peak_price"] == 20.5
    assert longs[0]["usd"] == pytest.approx(180.0)
    assert longs[1]["share"] == pytest.approx(300.0 / 480.0)
    assert longs[1]["distance"] == pytest.approx((21.5 - 55.0) / 55.0)
    assert len(shorts) == 1 and (shorts[0]["price_low"], shorts[0]["price_high"]) == (70.0, 75.0)
    assert shorts[0]["usd"] == pytest.approx(150.0) and shorts[0]["share"] == pytest.approx(1.0)
    assert find_clusters(y, np.zeros(100), np.zeros(100), 50.0) == []
    only_one = find_clusters(y, long_usd, short_usd, 55.0, quantile=0.3, max_per_side=1)
    assert [(b["side"], b["usd"]) for b in only_one] == [("long", pytest.approx(300.0)), ("short", pytest.approx(150.0))]


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), model=st.sampled_from(list(MODELS)))
def test_frame_clusters_are_bands_of_the_last_column(seed, model):
    frame = build_frame(synthetic_series(600, 5 * MINUTE_MS, seed=seed), model=model, range_name="24h", exchange="x", symbol="y", generated_at_ms=0, rows=120)
    assert frame.clusters == clusters(frame)
    price = float(frame.candles.close[~np.isnan(frame.candles.close)][-1])
    for band in frame.clusters:
        inside = (frame.y > band["price_low"]) & (frame.y < band["price_high"])
        book = frame.long_usd[-1] if band["side"] == "long" else frame.short_usd[-1]
        assert band["usd"] == pytest.approx(float(book[inside].sum(dtype=np.float64)), rel=1e-6)
        assert (band["price_high"] <= price + 1e-9) if band["side"] == "long" else (band["price_low"] >= price - 1e-9)
        assert 0 < band["share"] <= 1 + 1e-9


def test_leverage_groups_and_subsets():
    tiers = (5.0, 10.0, 25.0, 50.0, 100.0)
    assert select_tiers(tiers, None).label == "all" and select_tiers(tiers, "ALL").mask.all()
    assert select_tiers(tiers, "low").leverages == (5.0, 10.0)
    assert select_tiers(tiers, "mid").leverages == (25.0,)
    assert select_tiers(tiers, "high").leverages == (50.0, 100.0)
    assert select_tiers(tiers, "100,25x").leverages == (25.0, 100.0) and select_tiers(tiers, "100,25x").label == "x25_100"
    assert select_tiers(tiers, [50, 50.0]).label == "x50"
    assert not select_tiers((50.0, 100.0), "low").mask.any()
    for bad in ("huge", "7", "5,abc", [3.0], []):
        with pytest.raises(ValueError, match="allowed: all, low, mid, high"):
            select_tiers(tiers, bad)
    # The request pattern admits exactly the strings the parser reads (tier or not).
    for text in ("all", "low", "mid", "high", "25", "25x", "5,10", "100x,25", "7", "2.5x"):
        assert re.fullmatch(LEVERAGE_PATTERN, text)
    for text in ("huge", "5,abc", "", "#ah", ",5", "5,", "x5"):
        assert not re.fullmatch(LEVERAGE_PATTERN, text)


def test_leverage_filtered_frames_split_the_whole():
    series = synthetic_series(1440, MINUTE_MS, seed=4)
    options = {"model": "model2", "range_name": "24h", "exchange": "x", "symbol": "y", "generated_at_ms": 0, "rows": 100}
    whole = build_frame(series, **options)
    parts = [build_frame(series, leverage=group, **options) for group in ("low", "mid", "high")]
    np.testing.assert_allclose(sum(p.long_usd.astype(np.float64) for p in parts), whole.long_usd, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(sum(p.short_usd.astype(np.float64) for p in parts), whole.short_usd, rtol=1e-5, atol=1e-3)
    assert sum(p.stats.consumed_long_usd for p in parts) == pytest.approx(whole.stats.consumed_long_usd)
    assert [p.leverage for p in parts] == ["low", "mid", "high"] and parts[2].tiers == (50.0, 100.0)
    ids = {whole.frame_id, *(p.frame_id for p in parts)}
    assert len(ids) == 4 and parts[2].frame_id == f"{whole.frame_id}-high"
    with pytest.raises(ValueError, match="not a tier"):
        build_frame(series, leverage=[20.0], **options)


def test_build_frames_equals_build_frame_for_every_pair():
    # 5m bars for 40 days: every range, the long ones through the shared resampling.
    series = synthetic_series(40 * 288, 5 * MINUTE_MS, seed=9)
    sources = {"binance": {"first_bar_ms": 1, "bars": 10}, "okx": {"first_bar_ms": 2, "bars": 5}}
    frames = build_frames(series, models=list(MODELS), ranges=list(RANGES), exchange="all", symbol="BTC", generated_at_ms=GENERATED_AT, rows=80, sources=sources)
    assert [(f.model, f.range) for f in frames] == [(m, r) for m in MODELS for r in RANGES]
    for frame in frames:
        single = build_frame(series, model=frame.model, range_name=frame.range, exchange="all", symbol="BTC", generated_at_ms=GENERATED_AT, rows=80, sources=sources)
        assert single.frame_id == frame.frame_id
        np.testing.assert_array_equal(single.long_usd, frame.long_usd)
        np.testing.assert_array_equal(single.y, frame.y)
        np.testing.assert_array_equal(single.candles.close, frame.candles.close)
        # Exactly equal but for model4's consumed totals: it reads volumes, which a shared
        # resample adds up in another order (the last bits of a float64 sum).
        for name in frame.stats.__dataclass_fields__:
            assert getattr(single.stats, name) == pytest.approx(getattr(frame.stats, name), rel=1e-12), (frame.model, frame.range, name)
        assert single.clusters == frame.clusters
        assert frame.sources == sources and frame.sources is not sources
    # Models share the grid of a range: their frames line up row for row.
    by_range = {}
    for frame in frames:
        by_range.setdefault(frame.range, []).append(frame.y)
    for ys in by_range.values():
        assert all(np.array_equal(ys[0], y) for y in ys)


@pytest.mark.parametrize("model", list(MODELS))
def test_liquidation_map_is_the_frames_last_column_split_by_tier(model):
    series = synthetic_series(3 * 1440, MINUTE_MS, seed=2)
    frame = build_frame(series, model=model, range_name="24h", exchange="x", symbol="y", generated_at_ms=0, rows=150)
    the_map = liquidation_map(series, model=model, range_name="24h", exchange="x", symbol="y", rows=150)
    assert the_map.tiers == MODELS[model].tiers and the_map.long_usd.shape == (len(the_map.tiers), 150)
    np.testing.assert_array_equal(the_map.y, frame.y)
    np.testing.assert_allclose(the_map.long_usd.sum(axis=0), frame.long_usd[-1], rtol=1e-5, atol=1e-2)
    np.testing.assert_allclose(the_map.short_usd.sum(axis=0), frame.short_usd[-1], rtol=1e-5, atol=1e-2)
    assert the_map.beyond_long_usd == pytest.approx(frame.stats.beyond_long_usd)
    price = the_map.price
    long_total = the_map.long_usd.sum(axis=0)
    short_total = the_map.short_usd.sum(axis=0)
    for row in range(0, 150, 7):
        if the_map.y[row] < price:
            assert the_map.cumulative_long_usd[row] == pytest.approx(long_total[row:].sum())
        else:
            assert the_map.cumulative_long_usd[row] == 0
        if the_map.y[row] > price:
            assert the_map.cumulative_short_usd[row] == pytest.approx(short_total[: row + 1].sum())
        else:
            assert the_map.cumulative_short_usd[row] == 0
    np.testing.assert_allclose(the_map.cumulative_long_by_tier_usd.sum(axis=0), the_map.cumulative_long_usd, rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(the_map.cumulative_short_by_tier_usd.sum(axis=0), the_map.cumulative_short_usd, rtol=1e-9, atol=1e-6)
    longs, shorts = largest_row_per_side(the_map)
    assert longs is not None and shorts is not None
    assert longs.usd == pytest.approx(long_total.max()) and longs.price == the_map.y[np.argmax(long_total)]
    assert shorts.usd == pytest.approx(short_total.max()) and shorts.price == the_map.y[np.argmax(short_total)]
    assert longs.distance == pytest.approx((longs.price - price) / price)
    high = liquidation_map(series, model=model, range_name="24h", exchange="x", symbol="y", rows=150, leverage="high")
    mask = select_tiers(MODELS[model].tiers, "high").mask
    np.testing.assert_allclose(high.long_usd, the_map.long_usd[mask])
    assert high.leverage == "high"


def test_cumulative_curves_and_an_empty_map():
    y = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    long_usd = np.array([1.0, 2.0, 0.0, 0.0, 0.0])
    short_usd = np.array([0.0, 0.0, 0.0, 3.0, 4.0])
    cumulative_long, cumulative_short = cumulative_curves(y, long_usd, short_usd, price=3.0)
    assert cumulative_long.tolist() == [3.0, 2.0, 0.0, 0.0, 0.0]
    assert cumulative_short.tolist() == [0.0, 0.0, 0.0, 3.0, 7.0]
    flat = synthetic_series(50, MINUTE_MS)
    flat.open_interest_usd[:] = 1e9
    empty = liquidation_map(flat, model="model1", range_name="12h", exchange="x", symbol="y", rows=20)
    assert largest_row_per_side(empty) == (None, None)
