"""model1 and the level kernel against the slow reference, plus invariants."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import kernels
from engine.build import run_model
from engine.grid import price_grid
from engine.models import MODELS, get_model, model1_spec
from engine.models.model1 import Model1Params, prepare
from engine.series import MarketSeries
from market_strategies import STEP_MS, make_series, markets
from market_strategies import model1_params as model_params
from reference_models import reference_model1

EXAMPLES = settings(max_examples=60, deadline=None)


def window_grid(series: MarketSeries, params: Model1Params, rows: int):
    return price_grid(float(series.low.min()), float(series.high.max()), rows=rows, reach=params.reach())


@dataclass
class StepRun:
    """A kernel run with consumption summed over tiers."""

    long_usd: np.ndarray
    short_usd: np.ndarray
    consumed_long_usd: np.ndarray
    consumed_short_usd: np.ndarray


def per_step_run(series: MarketSeries, params: Model1Params, rows: int, use_numba: bool | None = None):
    """The book after every single step (snapshot column t = state after step t)."""
    grid = window_grid(series, params, rows)
    run = kernels.run_levels(prepare(series, grid, params), np.arange(len(series)), grid, use_numba=use_numba)
    return grid, StepRun(run.long_usd, run.short_usd, run.consumed_long_usd.sum(axis=1), run.consumed_short_usd.sum(axis=1))


def new_open_interest(series: MarketSeries) -> np.ndarray:
    """max(ΔOI, 0) per bar, computed plainly."""
    oi = series.open_interest_usd
    out = np.zeros(len(series))
    for t in range(1, len(series)):
        change = oi[t] - oi[t - 1]
        if np.isfinite(change) and change > 0:
            out[t] = change
    return out


def assert_close_usd(actual, expected, scale: float) -> None:
    np.testing.assert_allclose(actual, expected, rtol=1e-6, atol=1e-9 * max(scale, 1.0))


@pytest.mark.parametrize("use_numba", [True, False] if kernels.HAVE_NUMBA else [False])
@EXAMPLES
@given(
    series=markets(),
    params=model_params(),
    rows=st.integers(5, 80),
    column_steps=st.integers(1, 5),
    extra_columns=st.integers(0, 3),
    narrow_grid=st.booleans(),
)
def test_kernel_matches_reference(series, params, rows, column_steps, extra_columns, narrow_grid, use_numba):
    column_ms = column_steps * STEP_MS
    first = (int(series.ts_ms[0]) // column_ms - extra_columns) * column_ms
    last = (int(series.ts_ms[-1]) // column_ms) * column_ms
    column_starts = np.arange(first, last + column_ms, column_ms, dtype=np.int64)
    if narrow_grid:
        # Only the traded range: most levels fall off the grid and are dropped.
        grid = price_grid(float(series.low.min()), float(series.high.max()), rows=rows)
    else:
        grid = window_grid(series, params, rows)

    fast = run_model(series, model1_spec(params), grid, column_starts, column_ms, use_numba=use_numba)
    slow = reference_model1(
        series,
        grid,
        column_starts,
        column_ms,
        leverages=params.leverages,
        weights=params.weights,
        mmr=params.mmr,
        long_share=params.long_share,
    )

    scale = float(np.nansum(new_open_interest(series)))
    assert fast.long_usd.dtype == np.float32 and fast.long_usd.shape == (len(column_starts), rows)
    assert_close_usd(fast.long_usd, slow.long_usd, scale)
    assert_close_usd(fast.short_usd, slow.short_usd, scale)
    assert_close_usd(fast.consumed_long_usd, slow.consumed_long_usd, scale)
    assert_close_usd(fast.consumed_short_usd, slow.consumed_short_usd, scale)
    assert fast.out_of_grid_usd == pytest.approx(slow.out_of_grid_usd, rel=1e-9, abs=1e-9)


@pytest.mark.skipif(not kernels.HAVE_NUMBA, reason="numba not installed")
@EXAMPLES
@given(series=markets(), params=model_params(), rows=st.integers(2, 60))
def test_numba_and_numpy_kernels_agree(series, params, rows):
    _, compiled = per_step_run(series, params, rows, use_numba=True)
    _, interpreted = per_step_run(series, params, rows, use_numba=False)
    scale = float(np.nansum(new_open_interest(series)))
    assert_close_usd(compiled.long_usd, interpreted.long_usd, scale)
    assert_close_usd(compiled.short_usd, interpreted.short_usd, scale)
    assert_close_usd(compiled.consumed_long_usd, interpreted.consumed_long_usd, scale)
    assert_close_usd(compiled.consumed_short_usd, interpreted.consumed_short_usd, scale)


@EXAMPLES
@given(series=markets(min_bars=2), params=model_params(), rows=st.integers(5, 80))
def test_no_level_survives_a_bar_that_trades_through_it(series, params, rows):
    grid, run = per_step_run(series, params, rows)
    new = new_open_interest(series)
    for t in range(len(series)):
        crossed_long = grid.centres >= series.low[t]
        crossed_short = grid.centres <= series.high[t]
        left_long = run.long_usd[t][crossed_long].sum(dtype=np.float64)
        left_short = run.short_usd[t][crossed_short].sum(dtype=np.float64)
        # Only levels opened in this very bar may sit there (they are checked from the next bar on).
        assert left_long <= new[t] * params.long_share * (1 + 1e-6) + 1e-9
        assert left_short <= new[t] * (1 - params.long_share) * (1 + 1e-6) + 1e-9
        if new[t] == 0:
            assert left_long == 0 and left_short == 0


@EXAMPLES
@given(
    n=st.integers(1, 40),
    price=st.floats(1e-2, 1e6),
    start_oi=st.floats(0.0, 1e9),
    increments=st.lists(st.floats(0.0, 1e7), min_size=40, max_size=40),
    rows=st.integers(100, 400),
)
def test_rising_oi_without_crossings_conserves_notional(n, price, start_oi, increments, rows):
    # Flat price: with >= 100 rows a row is ~0.4 % of price, less than the
    # distance of the nearest (100x) level, so nothing is ever crossed.
    oi = start_oi + np.cumsum(increments[:n])
    series = make_series(np.arange(n) * STEP_MS, [price] * n, [price] * n, [price] * n, [price] * n, oi)
    params = Model1Params()
    _, run = per_step_run(series, params, rows)
    added = oi - oi[0]
    totals = run.long_usd.sum(axis=1, dtype=np.float64) + run.short_usd.sum(axis=1, dtype=np.float64)
    assert_close_usd(totals, added, float(added[-1]))
    assert_close_usd(run.long_usd.sum(axis=1, dtype=np.float64), added * params.long_share, float(added[-1]))
    assert not run.consumed_long_usd.any() and not run.consumed_short_usd.any()


@EXAMPLES
@given(series=markets(oi_moves=st.floats(-0.3, 0.0)), params=model_params(), rows=st.integers(2, 80))
def test_no_new_open_interest_adds_nothing(series, params, rows):
    _, run = per_step_run(series, params, rows)
    assert not run.long_usd.any() and not run.short_usd.any()
    assert not run.consumed_long_usd.any() and not run.consumed_short_usd.any()


@EXAMPLES
@given(
    n=st.integers(2, 40),
    price=st.floats(1.0, 1e5),
    moves=st.lists(st.floats(-0.5, 0.5), min_size=40, max_size=40),
    rows=st.integers(100, 300),
)
def test_falling_open_interest_scales_the_book(n, price, moves, rows):
    oi = 1e6 * np.cumprod(1.0 + np.asarray(moves[:n]))
    series = make_series(np.arange(n) * STEP_MS, [price] * n, [price] * n, [price] * n, [price] * n, oi)
    _, run = per_step_run(series, Model1Params(), rows)
    book = 0.0
    for t in range(1, n):
        if oi[t] < oi[t - 1]:
            ratio = oi[t] / oi[t - 1]
            book *= ratio
            # Every row shrinks by the same ratio (flat price: nothing is crossed).
            np.testing.assert_allclose(run.long_usd[t], run.long_usd[t - 1] * ratio, rtol=1e-6, atol=1e-6)
            np.testing.assert_allclose(run.short_usd[t], run.short_usd[t - 1] * ratio, rtol=1e-6, atol=1e-6)
        else:
            book += oi[t] - oi[t - 1]
        total = run.long_usd[t].sum(dtype=np.float64) + run.short_usd[t].sum(dtype=np.float64)
        assert total == pytest.approx(book, rel=1e-6, abs=1e-6)


def test_level_survives_its_own_bar_and_goes_with_the_next():
    # Bar 1 adds 1,000 USD at entry (110 + 90 + 100) / 3 = 100 with one 10x tier:
    # long level 100 * (1 - 0.1) = 90, short 110. Bar 1's own range (90..110)
    # touches both, yet they stand after it. Bar 2 dips to 80 (longs go, 500 USD)
    # but stays below 110 (shorts stay).
    params = Model1Params(leverages=(10.0,), weights=(1.0,), mmr=0.0, long_share=0.5)
    series = make_series(
        [0, STEP_MS, 2 * STEP_MS],
        [100, 100, 100],
        [100, 110, 100],
        [100, 90, 80],
        [100, 100, 90],
        [5_000, 6_000, 6_000],
    )
    _, run = per_step_run(series, params, rows=400)
    assert run.long_usd[1].sum() == pytest.approx(500)
    assert run.short_usd[1].sum() == pytest.approx(500)
    assert run.consumed_long_usd.tolist() == pytest.approx([0, 0, 500])
    assert run.consumed_short_usd.tolist() == pytest.approx([0, 0, 0])
    assert run.long_usd[2].sum() == 0
    assert run.short_usd[2].sum() == pytest.approx(500)


def test_registry_metadata():
    spec = get_model("model1")
    assert list(MODELS) == ["model1", "model2", "model3", "model4"] and MODELS["model1"] is spec
    assert spec.tiers == (5.0, 10.0, 25.0, 50.0, 100.0)
    assert re.fullmatch(r"\d+\.\d+\.\d+", spec.version)
    canonical = json.dumps(spec.params, sort_keys=True, separators=(",", ":"))
    assert spec.params_hash == hashlib.sha256(canonical.encode()).hexdigest()
    assert [tier["leverage"] for tier in spec.params["tiers"]] == [5, 10, 25, 50, 100]
    assert sum(tier["weight"] for tier in spec.params["tiers"]) == pytest.approx(1.0)
    assert spec.params["mmr"] == 0.004 and spec.params["long_share"] == 0.5
    assert spec.reach == pytest.approx((1 - 1 / 5 + 0.004, 1 + 1 / 5 - 0.004))
    assert "Known weaknesses" in spec.doc and spec.description


def test_params_hash_follows_params():
    changed = model1_spec(Model1Params(mmr=0.005))
    assert changed.params_hash != get_model("model1").params_hash
    assert model1_spec(Model1Params()).params_hash == get_model("model1").params_hash


@pytest.mark.parametrize("name", ["model9", "", "MODEL1"])
def test_unknown_model_names_the_allowed_ones(name):
    with pytest.raises(KeyError, match="model1"):
        get_model(name)
    with pytest.raises(ValueError, match="model1"):
        get_model(name)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"weights": (0.5, 0.5, 0.5, 0.5, 0.5)},
        {"leverages": (1.0, 10.0, 25.0, 50.0, 100.0)},
        {"mmr": 0.02},
        {"long_share": 1.5},
        {"leverages": (5.0,), "weights": (0.5, 0.5)},
    ],
)
def test_bad_params_are_refused(kwargs):
    with pytest.raises(ValueError):
        Model1Params(**kwargs)


@st.composite
def step_inputs(draw):
    """Arbitrary kernel inputs: any cuts, scale and decay factors down to 0, levels on and off the grid, reopening."""
    n = draw(st.integers(1, 30))
    rows = draw(st.integers(2, 20))
    k = draw(st.integers(1, 4))
    tiers = draw(st.integers(1, k))

    def floats(low, high, size):
        return np.asarray(draw(st.lists(st.floats(low, high), min_size=size, max_size=size)), dtype=np.float64)

    def ints(low, high, size):
        return np.asarray(draw(st.lists(st.integers(low, high), min_size=size, max_size=size)), dtype=np.int64)

    scale = draw(st.lists(st.one_of(st.sampled_from([0.0, 1e-60, 1.0]), st.floats(0.0, 1.0)), min_size=n, max_size=n))
    decay = draw(st.lists(st.one_of(st.just(1.0), st.floats(1e-3, 1.0)), min_size=n, max_size=n))
    column_tier = np.concatenate((np.arange(tiers), ints(0, tiers - 1, k - tiers))).astype(np.int64)
    inputs = kernels.StepInputs(
        long_clear_from=ints(0, rows, n),
        short_clear_below=ints(0, rows, n),
        scale=np.asarray(scale, dtype=np.float64),
        entry_price=floats(50.0, 150.0, n),
        long_new_usd=floats(0.0, 1e9, n),
        short_new_usd=floats(0.0, 1e9, n),
        # Grid: 100 USD in rows of 100 / rows from 50; multipliers reach off it on both ends.
        long_multipliers=floats(0.3, 1.0, k),
        short_multipliers=floats(1.0, 3.0, k),
        weights=floats(0.0, 1.0, k),
        column_tier=column_tier,
        tier_leverage=np.arange(1, tiers + 1, dtype=np.float64) * 5.0,
        decay=np.asarray(decay, dtype=np.float64),
        reopen_share=draw(st.sampled_from([0.0, 0.5, 1.0])),
    )
    snapshot_step = np.sort(ints(-1, n - 1, draw(st.integers(0, 8))))
    snapshot_tiers = np.asarray(draw(st.lists(st.booleans(), min_size=tiers, max_size=tiers)))
    return inputs, snapshot_step, rows, snapshot_tiers


@pytest.mark.skipif(not kernels.HAVE_NUMBA, reason="numba not installed")
@EXAMPLES
@given(case=step_inputs())
def test_kernels_agree_on_arbitrary_inputs(case):
    inputs, snapshot_step, rows, snapshot_tiers = case
    grid = price_grid(50.0, 150.0, rows=rows, margin=0.0)
    compiled = kernels.run_levels(inputs, snapshot_step, grid, snapshot_tiers=snapshot_tiers, use_numba=True)
    interpreted = kernels.run_levels(inputs, snapshot_step, grid, snapshot_tiers=snapshot_tiers, use_numba=False)
    scale = float((inputs.long_new_usd.sum() + inputs.short_new_usd.sum()) * max(inputs.weights.sum(), 1.0))
    assert compiled.long_usd.shape == (len(snapshot_step), rows)
    assert compiled.consumed_long_usd.shape == (len(inputs), inputs.tiers)
    for name in (
        "long_usd",
        "short_usd",
        "consumed_long_usd",
        "consumed_short_usd",
        "final_long_usd",
        "final_short_usd",
        "beyond_long_usd",
        "beyond_short_usd",
        "added_beyond_usd",
    ):
        assert_close_usd(getattr(compiled, name), getattr(interpreted, name), scale)


@pytest.mark.parametrize("use_numba", [True, False] if kernels.HAVE_NUMBA else [False])
def test_open_interest_vanishing_or_collapsing_matches_reference(use_numba):
    # OI drops to zero (the book empties), then to a vanishing fraction many
    # times over (scale factors far below 1e-100 in product), rising in between.
    oi = [1e9, 2e9, 0.0, 0.0, 5e8, 6e8, 1e-200, 7e8, 1e-150, 8e8, 1e-120, 1e9, 9e8]
    n = len(oi)
    rng = np.random.default_rng(3)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.002, n)))
    high, low = close * 1.001, close * 0.999
    series = make_series(np.arange(n) * STEP_MS, close, high, low, close, oi)
    params = Model1Params()
    grid = window_grid(series, params, 200)
    starts = np.arange(n, dtype=np.int64) * STEP_MS
    fast = run_model(series, model1_spec(params), grid, starts, STEP_MS, use_numba=use_numba)
    slow = reference_model1(series, grid, starts, STEP_MS)
    assert_close_usd(fast.long_usd, slow.long_usd, 1e9)
    assert_close_usd(fast.short_usd, slow.short_usd, 1e9)
    assert_close_usd(fast.consumed_long_usd, slow.consumed_long_usd, 1e9)
    assert not fast.long_usd[2].any() and not fast.long_usd[3].any()
    assert fast.long_usd[-1].sum() > 0


def test_engine_works_without_numba():
    # A fresh interpreter where importing numba fails: the numpy kernel takes over.
    script = (
        "import sys; sys.modules['numba'] = None\n"
        "import numpy as np\n"
        "from engine import kernels\n"
        "from engine.build import build_frame\n"
        "from engine.series import MarketSeries\n"
        "assert not kernels.HAVE_NUMBA\n"
        "n = 50; ts = np.arange(n, dtype=np.int64) * 60_000; p = np.full(n, 100.0)\n"
        "oi = np.linspace(1e6, 2e6, n)\n"
        "s = MarketSeries(60_000, ts, p, p, p, p, p, p, oi)\n"
        "f = build_frame(s, model='model1', range_name='12h', exchange='x', symbol='y', generated_at_ms=0, rows=100)\n"
        "st = f.stats\n"
        "assert abs(st.total_long_usd + st.total_short_usd + st.beyond_long_usd + st.beyond_short_usd - 1e6) < 1e-3 * 1e6\n"
        "assert st.beyond_long_usd > 0 and st.total_long_usd > 0\n"
        "from engine.build import build_frames\n"
        "from engine.book import liquidation_map\n"
        "frames = build_frames(s, models=['model1', 'model2', 'model3'], ranges=['12h', '30d'], exchange='x', symbol='y', generated_at_ms=0, rows=50)\n"
        "assert len(frames) == 6 and all(fr.stats.percentiles['p99'] >= fr.stats.percentiles['p50'] > 0 for fr in frames)\n"
        "assert liquidation_map(s, model='model3', range_name='12h', exchange='x', symbol='y', rows=50).long_usd.any()\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
