"""model2 and model3 against their slow reference; invariants every model keeps."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import kernels
from engine.build import build_frame, run_model
from engine.grid import PriceGrid, display_grid, price_grid
from engine.models import MODELS, get_model, model2_spec, model3_spec, model4_spec
from engine.models.margin import BINANCE_BTCUSDT, MarginTable, size_points, tier_multipliers
from engine.models.model2 import Model2Params
from engine.models.model3 import Model3Params
from engine.models.model4 import Model4Params
from engine.series import MarketSeries
from market_strategies import STEP_MS, make_series, markets, model2_params, model3_params, model4_params
from reference_models import reference_multipliers, reference_path_model, reference_sizes

EXAMPLES = settings(max_examples=40, deadline=None)
IMPLEMENTATIONS = [True, False] if kernels.HAVE_NUMBA else [False]


def full_grid(series: MarketSeries, reach: tuple[float, float], rows: int) -> PriceGrid:
    """A grid holding every level (nothing beyond it)."""
    return price_grid(float(series.low.min()), float(series.high.max()), rows=rows, reach=reach)


def columns_for(series: MarketSeries, column_steps: int) -> tuple[np.ndarray, int]:
    column_ms = column_steps * STEP_MS
    first = (int(series.ts_ms[0]) // column_ms - 1) * column_ms
    last = (int(series.ts_ms[-1]) // column_ms) * column_ms
    return np.arange(first, last + column_ms, column_ms, dtype=np.int64), column_ms


def assert_close_usd(actual, expected, scale: float) -> None:
    np.testing.assert_allclose(actual, expected, rtol=1e-6, atol=1e-9 * max(scale, 1.0))


def reference_for(series, grid, starts, column_ms, params):
    common = {
        "leverages": params.leverages,
        "weights": params.weights,
        "brackets": params.margin_table.brackets,
        "min_position": params.min_position_usd,
        "points": params.size_points,
        "flow_weight": params.flow_weight,
    }
    if isinstance(params, Model3Params):
        common.update(new_share=params.leveraged_share, half_life_hours=params.half_life_hours, reopen_share=params.reopen_share)
    return reference_path_model(series, grid, starts, column_ms, **common)


def spec_for(params):
    if isinstance(params, Model4Params):
        return model4_spec(params)
    return model3_spec(params) if isinstance(params, Model3Params) else model2_spec(params)


@pytest.mark.parametrize("use_numba", IMPLEMENTATIONS)
@EXAMPLES
@given(
    series=markets(flow=True),
    params=st.one_of(model2_params(), model3_params()),
    rows=st.integers(5, 60),
    column_steps=st.integers(1, 4),
    narrow=st.booleans(),
)
def test_path_models_match_the_reference(series, params, rows, column_steps, narrow, use_numba):
    starts, column_ms = columns_for(series, column_steps)
    # A narrow grid (the display range) leaves far levels beyond it.
    grid = display_grid(float(series.low.min()), float(series.high.max()), rows=rows) if narrow else full_grid(series, params.reach(), rows)
    fast = run_model(series, spec_for(params), grid, starts, column_ms, use_numba=use_numba)
    slow = reference_for(series, grid, starts, column_ms, params)
    scale = float(np.nansum(np.abs(np.diff(series.open_interest_usd))))
    assert_close_usd(fast.long_usd, slow.long_usd, scale)
    assert_close_usd(fast.short_usd, slow.short_usd, scale)
    assert_close_usd(fast.consumed_long_usd, slow.consumed_long_usd, scale)
    assert_close_usd(fast.consumed_short_usd, slow.consumed_short_usd, scale)
    assert_close_usd(fast.final_long_usd, slow.final_long_usd, scale)
    assert_close_usd(fast.final_short_usd, slow.final_short_usd, scale)
    assert fast.beyond_long_usd == pytest.approx(slow.beyond_long_usd, rel=1e-6, abs=1e-9 * max(scale, 1.0))
    assert fast.beyond_short_usd == pytest.approx(slow.beyond_short_usd, rel=1e-6, abs=1e-9 * max(scale, 1.0))


@settings(max_examples=60, deadline=None)
@given(
    leverage=st.sampled_from([2.0, 5.0, 10.0, 20.0, 25.0, 50.0, 75.0, 100.0, 125.0, 150.0]),
    points=st.integers(1, 4),
    min_position=st.sampled_from([10.0, 1_000.0, 100_000.0]),
)
def test_tiered_margin_matches_the_bracket_arithmetic(leverage, points, min_position):
    table = BINANCE_BTCUSDT
    sizes = size_points(leverage, table, min_position, points)
    np.testing.assert_allclose(sizes, reference_sizes(leverage, table.brackets, min_position, points), rtol=1e-12)
    long_m, short_m = tier_multipliers((leverage,), table, min_position, points)
    for j, size in enumerate(sizes):
        expected = reference_multipliers(leverage, float(size), table.brackets)
        assert (long_m[0, j], short_m[0, j]) == pytest.approx(expected, rel=1e-12)
        # No position sits farther from entry than the smallest bracket (0.4 %, no deduction) puts it.
        assert long_m[0, j] >= (1 - 1 / leverage) / (1 - 0.004) - 1e-12
        assert short_m[0, j] <= (1 + 1 / leverage) / (1 + 0.004) + 1e-12


def test_margin_is_continuous_and_liquidation_prices_move_toward_entry_with_size():
    table = BINANCE_BTCUSDT
    cums = table.deductions()
    for index in range(1, len(table.brackets)):
        floor = table.brackets[index - 1][0]
        below = floor * table.brackets[index - 1][1] - cums[index - 1]
        above = floor * table.brackets[index][1] - cums[index]
        assert above == pytest.approx(below)
    sizes = np.geomspace(1e3, 4.7e8, 200)
    longs = [table.liquidation_multipliers(5.0, float(size))[0] for size in sizes]
    assert np.all(np.diff(longs) >= -1e-12)  # larger positions: liquidated sooner (higher long level)
    with pytest.raises(ValueError):
        MarginTable(((1e6, 0.02, 100.0),))  # 2 % maintenance at 100x is beyond the margin itself


def test_margin_tables_from_rows_compare_by_brackets_and_refuse_what_is_not_a_table():
    table = MarginTable.from_rows(BINANCE_BTCUSDT.to_json(), "somewhere")
    assert table == BINANCE_BTCUSDT and hash(table) == hash(BINANCE_BTCUSDT) and table.source == "somewhere"
    with pytest.raises(ValueError, match=r"\[cap_usd, mmr, max_leverage\] rows"):
        MarginTable.from_rows([[1e6, "x", 100]])
    with pytest.raises(ValueError, match="caps must increase"):
        MarginTable.from_rows([[1e6, 0.004, 125], [5e5, 0.005, 100]])


def per_step(spec, series: MarketSeries, grid: PriceGrid):
    """Inputs and the kernel's book after every single step."""
    inputs = spec.prepare(series, grid)
    run = kernels.run_levels(inputs, np.arange(len(inputs)), grid)
    return inputs, run


def default_and_random_specs():
    return st.one_of(
        st.sampled_from(list(MODELS.values())),
        model2_params().map(model2_spec),
        model3_params().map(model3_spec),
        model4_params().map(model4_spec),
    )


def specs_opening_only_on_rising_open_interest():
    """Every model but model4, whose book also turns over with volume."""
    return st.one_of(
        st.sampled_from([spec for spec in MODELS.values() if spec.name != "model4"]),
        model2_params().map(model2_spec),
        model3_params().map(model3_spec),
    )


@EXAMPLES
@given(series=markets(min_bars=2, flow=True), spec=default_and_random_specs(), rows=st.integers(20, 80))
def test_no_level_survives_a_step_that_trades_through_it(series, spec, rows):
    grid = full_grid(series, spec.reach, rows)
    inputs, run = per_step(spec, series, grid)
    decay = np.ones(len(inputs)) if inputs.decay is None else inputs.decay
    weight = float(inputs.weights.sum())
    for step in range(len(inputs)):
        crossed_long = np.arange(rows) >= inputs.long_clear_from[step]
        crossed_short = np.arange(rows) < inputs.short_clear_below[step]
        left_long = run.long_usd[step][crossed_long].sum(dtype=np.float64)
        left_short = run.short_usd[step][crossed_short].sum(dtype=np.float64)
        # Only levels opened at this very step (new or reopened) may sit there.
        before_long = run.long_usd[step - 1].sum(dtype=np.float64) if step else 0.0
        before_short = run.short_usd[step - 1].sum(dtype=np.float64) if step else 0.0
        bound_long = inputs.long_new_usd[step] * weight + (1 - decay[step]) * inputs.reopen_share * before_long
        bound_short = inputs.short_new_usd[step] * weight + (1 - decay[step]) * inputs.reopen_share * before_short
        assert left_long <= bound_long * (1 + 1e-5) + 1e-6
        assert left_short <= bound_short * (1 + 1e-5) + 1e-6


@EXAMPLES
@given(series=markets(flow=True), spec=st.sampled_from(list(MODELS.values())), power=st.integers(-6, 10), rows=st.integers(10, 60))
def test_scaling_every_price_by_a_power_of_two_scales_the_rows_and_nothing_else(series, spec, power, rows):
    # Powers of two scale floating-point numbers exactly, so every level lands in the same row.
    k = 2.0**power
    scaled = MarketSeries(
        series.step_ms,
        series.ts_ms,
        series.open * k,
        series.high * k,
        series.low * k,
        series.close * k,
        series.volume_usd,
        series.taker_buy_usd,
        series.open_interest_usd,
    )
    options = {"model": spec.name, "range_name": "24h", "exchange": "x", "symbol": "y", "generated_at_ms": 0, "rows": rows}
    plain = build_frame(series, **options)
    big = build_frame(scaled, **options)
    np.testing.assert_array_equal(big.y, plain.y * k)
    np.testing.assert_array_equal(big.long_usd, plain.long_usd)
    np.testing.assert_array_equal(big.short_usd, plain.short_usd)
    assert big.stats == plain.stats
    assert [c["usd"] for c in big.clusters] == [c["usd"] for c in plain.clusters]
    assert [c["price_low"] for c in big.clusters] == [c["price_low"] * k for c in plain.clusters]


@EXAMPLES
@given(series=markets(flow=True), params=st.one_of(model2_params(), model3_params(), model4_params()), power=st.integers(-6, 10), rows=st.integers(10, 60))
def test_price_scaling_with_random_parameters(series, params, power, rows):
    k = 2.0**power
    scaled = MarketSeries(series.step_ms, series.ts_ms, series.open * k, series.high * k, series.low * k, series.close * k, series.volume_usd, series.taker_buy_usd, series.open_interest_usd)
    starts, column_ms = columns_for(series, 2)
    spec = spec_for(params)
    plain = run_model(series, spec, display_grid(float(series.low.min()), float(series.high.max()), rows=rows), starts, column_ms)
    big = run_model(scaled, spec, display_grid(float(scaled.low.min()), float(scaled.high.max()), rows=rows), starts, column_ms)
    np.testing.assert_array_equal(big.long_usd, plain.long_usd)
    np.testing.assert_array_equal(big.short_usd, plain.short_usd)
    np.testing.assert_array_equal(big.consumed_long_usd, plain.consumed_long_usd)
    assert big.beyond_short_usd == plain.beyond_short_usd


@EXAMPLES
@given(series=markets(oi_moves=st.floats(-0.3, 0.0), flow=True), spec=specs_opening_only_on_rising_open_interest(), rows=st.integers(2, 60))
def test_no_new_open_interest_adds_nothing(series, spec, rows):
    starts, column_ms = columns_for(series, 1)
    run = run_model(series, spec, display_grid(float(series.low.min()), float(series.high.max()), rows=rows), starts, column_ms)
    assert not run.long_usd.any() and not run.short_usd.any()
    assert not run.consumed_long_usd.any() and not run.consumed_short_usd.any()
    assert run.beyond_long_usd == run.beyond_short_usd == run.out_of_grid_usd == 0.0


@EXAMPLES
@given(series=markets(flow=True), params=model3_params(), rows=st.integers(10, 60))
def test_decay_only_shrinks(series, params, rows):
    starts, column_ms = columns_for(series, 1)
    grid = full_grid(series, params.reach(), rows)
    fields = {name: getattr(params, name) for name in Model3Params.__dataclass_fields__}
    decaying = run_model(series, model3_spec(Model3Params(**{**fields, "reopen_share": 0.0})), grid, starts, column_ms)
    lasting = run_model(series, model3_spec(Model3Params(**{**fields, "reopen_share": 0.0, "half_life_hours": 1e15})), grid, starts, column_ms)
    assert np.all(decaying.long_usd <= lasting.long_usd * (1 + 1e-6) + 1e-6)
    assert np.all(decaying.short_usd <= lasting.short_usd * (1 + 1e-6) + 1e-6)
    assert np.all(decaying.consumed_long_usd <= lasting.consumed_long_usd * (1 + 1e-6) + 1e-6)
    assert np.all(decaying.consumed_short_usd <= lasting.consumed_short_usd * (1 + 1e-6) + 1e-6)


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(2, 40),
    increments=st.lists(st.floats(0.0, 1e7), min_size=40, max_size=40),
    half_life=st.floats(0.01, 10.0),
)
def test_reopening_keeps_the_book_size_when_nothing_is_crossed(n, increments, half_life):
    # Flat price: nothing is crossed; rising open interest. With reopen_share 1
    # decay moves notional but the book's total equals what was opened.
    oi = 1e6 + np.cumsum(increments[:n])
    price = [100.0] * n
    series = make_series(np.arange(n) * STEP_MS, price, price, price, price, oi)
    params = Model3Params(half_life_hours=half_life, reopen_share=1.0, leveraged_share=0.5)
    starts, column_ms = columns_for(series, 1)
    grid = full_grid(series, params.reach(), 400)
    run = run_model(series, model3_spec(params), grid, starts, column_ms)
    opened = (oi[-1] - oi[0]) * 0.5
    total = run.long_usd[-1].sum(dtype=np.float64) + run.short_usd[-1].sum(dtype=np.float64)
    assert total == pytest.approx(opened, rel=1e-5, abs=1e-3)
    assert not run.consumed_long_usd.any()


@EXAMPLES
@given(series=markets(flow=True), params=st.one_of(model2_params(), model3_params(), model4_params()), rows=st.integers(5, 50), data=st.data())
def test_tiers_never_mix_and_scale_with_their_weight(series, params, rows, data):
    starts, column_ms = columns_for(series, 2)
    grid = display_grid(float(series.low.min()), float(series.high.max()), rows=rows)
    spec = spec_for(params)
    full = run_model(series, spec, grid, starts, column_ms)
    keep = data.draw(st.lists(st.sampled_from(params.leverages), min_size=1, unique=True))
    filtered = run_model(series, spec, grid, starts, column_ms, leverage=keep)
    mask = np.isin(np.asarray(params.leverages), keep)
    scale = float(np.nansum(np.abs(np.diff(series.open_interest_usd))))
    # The filter's last column is the kept tiers' final book.
    assert_close_usd(filtered.long_usd[-1], full.final_long_usd[mask].sum(axis=0), scale)
    assert_close_usd(filtered.consumed_long_usd, full.consumed_long_by_tier[:, mask].sum(axis=1), scale)
    # A model holding only the kept tiers, re-weighted to sum to 1, is the filtered run divided by their weight.
    kept_weight = float(np.asarray(params.weights)[mask].sum())
    fields = {name: getattr(params, name) for name in type(params).__dataclass_fields__}
    fields["leverages"] = tuple(np.asarray(params.leverages)[mask].tolist())
    fields["weights"] = tuple((np.asarray(params.weights)[mask] / kept_weight).tolist())
    alone = run_model(series, spec_for(type(params)(**fields)), grid, starts, column_ms)
    assert_close_usd(alone.long_usd * kept_weight, filtered.long_usd, scale)
    assert_close_usd(alone.short_usd * kept_weight, filtered.short_usd, scale)


def test_a_level_opened_on_the_way_down_goes_on_the_way_up():
    # One rising bar 100 → 90 → 106 → 105 after a quiet one, with new open interest on
    # the rising bar: the first segment (100 → 90) opens a 10x short at entry 95
    # (liquidated near 95 · 1.1 = 104.5), which the second (90 → 106) crosses; the
    # second's own short (entry 98, near 107.8) survives the third (106 → 105).
    params = Model2Params(leverages=(10.0,), weights=(1.0,), size_points=1, flow_weight=0.0)
    series = make_series([0, STEP_MS], [100, 100], [100, 106], [100, 90], [100, 105], [1e6, 1e6 + 3e5])
    starts, column_ms = columns_for(series, 1)
    run = run_model(series, model2_spec(params), full_grid(series, params.reach(), 2000), starts, column_ms)
    # A third of 300k opens on each segment; half of it short. The first segment's short goes in the same bar.
    assert run.consumed_short_usd[1] == pytest.approx(50_000, rel=1e-9)
    assert run.consumed_long_usd[1] == 0.0
    # model1 on the same bar sees nothing consumed: levels survive the bar they open in.
    model1 = run_model(series, get_model("model1"), full_grid(series, get_model("model1").reach, 2000), starts, column_ms)
    assert not model1.consumed_short_usd.any()


def test_taker_flow_tilts_new_positions():
    params = Model2Params(leverages=(10.0,), weights=(1.0,), size_points=1, flow_weight=1.0)
    price = [100.0, 100.0]
    series = make_series([0, STEP_MS], price, price, price, price, [1e6, 2e6], volume=[1e6, 1e6], taker_buy=[5e5, 8e5])
    starts, column_ms = columns_for(series, 1)
    run = run_model(series, model2_spec(params), full_grid(series, params.reach(), 400), starts, column_ms)
    assert run.long_usd[-1].sum() == pytest.approx(8e5, rel=1e-6)
    assert run.short_usd[-1].sum() == pytest.approx(2e5, rel=1e-6)


def test_model_metadata_and_versions():
    for name, spec in MODELS.items():
        assert spec.name == name and spec.version.split(".")[0] == name[-1]
        assert "Known weaknesses" in spec.doc and "## Parameters" in spec.doc and spec.description
        assert spec.created and len(spec.params_hash) == 64
        assert spec.metadata()["params_hash"] == spec.params_hash
    model3 = MODELS["model3"]
    assert model3.calibration is not None and model3.calibration["until"] < "2026-05-26"
    assert model3.params["half_life_hours"] > 0 and 0 < model3.params["leveraged_share"] <= 1
    assert model2_spec(Model2Params(flow_weight=0.5)).params_hash != MODELS["model2"].params_hash
    fields = {name: getattr(Model3Params(), name) for name in Model3Params.__dataclass_fields__}
    refit = model3_spec(Model3Params(**{**fields, "half_life_hours": fields["half_life_hours"] * 2}))
    assert refit.params_hash != model3.params_hash


@pytest.mark.parametrize(
    "kwargs",
    [
        {"weights": (0.5, 0.5, 0.5, 0.5, 0.5)},
        {"leverages": (1.0, 10.0, 25.0, 50.0, 100.0)},
        {"size_points": 0},
        {"flow_weight": 1.5},
        {"min_position_usd": 1e9},
        {"leverages": (300.0,), "weights": (1.0,)},  # 1/300 is below the first bracket's 0.4 %
    ],
)
def test_bad_model2_params_are_refused(kwargs):
    with pytest.raises(ValueError):
        Model2Params(**kwargs)


@pytest.mark.parametrize("kwargs", [{"half_life_hours": 0.0}, {"reopen_share": 1.5}, {"leveraged_share": 0.0}])
def test_bad_model3_params_are_refused(kwargs):
    with pytest.raises(ValueError):
        Model3Params(**kwargs)
