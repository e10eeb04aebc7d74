"""model3's and model4's calibrations: deterministic, blind to bars after their cutoffs, and what is stored matches the code."""

from __future__ import annotations

import json
from dataclasses import replace
from importlib import resources

import numpy as np
import pytest

from engine.backtest import RealizedLiquidations
from engine.calibrate import CalibrationMarket, calibrate_model3, calibrate_model4
from engine.models import MODELS
from engine.models.margin import shipped_binance_table
from engine.models.model3 import Model3Params
from engine.series import MarketSeries
from real_data import BTC_SET, REAL, needs_real_data
from service.compute.calibration import CALIBRATION_FILE, CALIBRATION_FROM, CALIBRATION_UNTIL, CASES, MODEL4_FROM, MODEL4_UNTIL, fit_model4
from service.compute.scoring import parse_time, read_candles, read_liquidations

HOUR_MS = 3_600_000


def synthetic_market(n: int, seed: int = 3, volume: bool = False) -> tuple[MarketSeries, RealizedLiquidations]:
    """Hourly bars whose realized liquidations grow with the move through fresh price territory."""
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.006, n)))
    open_ = np.concatenate(([100.0], close[:-1]))
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 0.003, n)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 0.003, n)))
    oi = 1e9 * np.exp(np.cumsum(rng.normal(0.0002, 0.004, n)))
    ts = np.arange(n, dtype=np.int64) * HOUR_MS
    traded = oi * rng.uniform(0.02, 0.2, n) if volume else np.full(n, np.nan)
    series = MarketSeries(HOUR_MS, ts, open_, high, low, close, traded, np.full(n, np.nan), oi)
    long_usd = np.maximum(open_ - low, 0) / open_ * oi * rng.uniform(0.5, 1.5, n)
    short_usd = np.maximum(high - open_, 0) / open_ * oi * rng.uniform(0.5, 1.5, n)
    return series, RealizedLiquidations(HOUR_MS, ts, long_usd, short_usd)


def test_calibration_is_deterministic_and_ignores_bars_after_the_cutoff():
    series, realized = synthetic_market(600)
    options = {"from_ms": 48 * HOUR_MS, "until_ms": 400 * HOUR_MS, "half_lives_hours": (6.0, 48.0)}
    first = calibrate_model3(series, realized, **options)
    again = calibrate_model3(series, realized, **options)
    assert first.fitted_params() == again.fitted_params() and first.objective == again.objective
    # Scramble everything at and after the cutoff: the fit must not move.
    late = realized.ts_ms >= options["until_ms"]
    scrambled = RealizedLiquidations(HOUR_MS, realized.ts_ms, np.where(late, 1.0, realized.long_usd), np.where(late, 7.0, realized.short_usd))
    later_series = replace(series, close=np.where(series.ts_ms >= options["until_ms"], series.close * 1.01, series.close))
    blind = calibrate_model3(later_series, scrambled, **options)
    assert blind.fitted_params() == first.fitted_params()
    assert first.bars == 352 and first.from_ms == options["from_ms"] and first.until_ms == options["until_ms"]
    params = first.params
    assert abs(sum(params.weights) - 1) < 1e-9 and all(w > 0 for w in params.weights)
    assert set(params.leverages) <= {5.0, 10.0, 20.0, 25.0, 50.0, 75.0, 100.0, 125.0}
    assert params.half_life_hours in (6.0, 48.0) and 0 < params.leveraged_share <= 1
    # The scale makes predicted and realized totals meet (geometric mean of the sides) where it can.
    if params.leveraged_share < 1:
        ratio = (first.predicted_to_realized_long * first.predicted_to_realized_short) ** 0.5
        assert ratio == pytest.approx(1.0, rel=2e-3)
    # Fitting can only help on the bars it was fitted on: at least as good as equal weights.
    assert first.objective >= max(c["objective"] for c in first.candidates) - 2e-3


def test_calibration_refuses_an_empty_span():
    series, realized = synthetic_market(50)
    with pytest.raises(ValueError, match="no liquidation bar"):
        calibrate_model3(series, realized, from_ms=10**15, until_ms=10**16)


def test_stored_fit_is_the_registered_model3():
    fit = json.loads(resources.files("engine.models").joinpath("model3_fit.json").read_text())
    spec = MODELS["model3"]
    assert spec.version == fit["version"] and spec.created == fit["created"]
    assert [tier["leverage"] for tier in spec.params["tiers"]] == fit["params"]["leverages"]
    assert [tier["weight"] for tier in spec.params["tiers"]] == fit["params"]["weights"]
    for key in ("half_life_hours", "reopen_share", "leveraged_share"):
        assert spec.params[key] == fit["params"][key]
    calibration = fit["calibration"]
    assert calibration["file"] == CALIBRATION_FILE
    assert calibration["until_ms"] == parse_time(CALIBRATION_UNTIL) and calibration["from_ms"] == parse_time(CALIBRATION_FROM)


def test_stored_fit_is_the_registered_model4():
    fit = json.loads(resources.files("engine.models").joinpath("model4_fit.json").read_text())
    spec = MODELS["model4"]
    assert spec.version == fit["version"] and spec.created == fit["created"] and spec.calibration == fit["calibration"]
    assert [tier["leverage"] for tier in spec.params["tiers"]] == fit["params"]["leverages"]
    assert [tier["weight"] for tier in spec.params["tiers"]] == fit["params"]["weights"]
    for key in ("turnover_rate", "turnover_per_hour_unknown", "leveraged_share", "volatility_exponent", "volatility_half_life_hours"):
        assert spec.params[key] == fit["params"][key]
    calibration = fit["calibration"]
    assert calibration["from_ms"] == parse_time(MODEL4_FROM) and calibration["until_ms"] == parse_time(MODEL4_UNTIL)
    assert set(calibration["markets"]) == {"BTC", "ETH", "SOL"}


def test_every_model_carries_the_score_of_its_own_version():
    scores = json.loads(resources.files("engine.models").joinpath("scores.json").read_text())
    assert set(scores) == set(MODELS)
    for name, spec in MODELS.items():
        assert scores[name]["version"] == spec.version and scores[name]["params_hash"] == spec.params_hash, (
            f"{name}: stored score is for another version; rerun `liqmap calibrate`"
        )
        assert spec.score == scores[name]["score"]
        for case in CASES:
            row = spec.score["cases"][case.name]
            assert row["model"] == name and row["version"] == spec.version and row["bars"] > 0
            assert (row["data_set"], row["coin"]) == (case.data_set, case.coin)
            calibration = spec.calibration
            # Each row says truthfully whether it overlaps the fit and whether it comes after it.
            if calibration is None:
                assert row["walk_forward"] and not row["overlaps_calibration"]
            else:
                assert row["walk_forward"] == (calibration["until_ms"] <= row["first_bar_ms"])
                assert row["overlaps_calibration"] == (calibration["from_ms"] <= row["last_bar_ms"] and row["first_bar_ms"] < calibration["until_ms"])


def test_model4_beats_the_stronger_baseline_on_every_coin_and_side_after_its_cutoff():
    cases = MODELS["model4"].score["cases"]
    after = [row for row in cases.values() if row["data_set"] == "multicoin-binance1h-coinglass4h" and row["walk_forward"]]
    assert {row["coin"] for row in after} == {"BTC", "ETH", "SOL"}
    for row in after:
        assert row["margin_long"] > 0.03 and row["margin_short"] > 0.03, row["case"]
        assert 0.5 <= row["predicted_to_realized_long"] <= 2 and 0.5 <= row["predicted_to_realized_short"] <= 2, row["case"]
    btc = cases["5m_30m"]
    assert btc["walk_forward"] and btc["margin_long"] > 0 and btc["margin_short"] > 0


@needs_real_data(BTC_SET)
def test_refitting_on_the_real_data_reproduces_the_stored_fit():
    series = read_candles(BTC_SET / CALIBRATION_FILE)
    realized = read_liquidations(BTC_SET / CALIBRATION_FILE)
    until = parse_time(CALIBRATION_UNTIL)
    keep = int(np.searchsorted(series.ts_ms, until))
    fit = calibrate_model3(series.slice(0, keep), realized, from_ms=parse_time(CALIBRATION_FROM), until_ms=until)
    stored = json.loads(resources.files("engine.models").joinpath("model3_fit.json").read_text())
    assert fit.fitted_params() == stored["params"]
    assert Model3Params().half_life_hours == fit.params.half_life_hours


def test_model4_calibration_is_deterministic_blind_after_the_cutoff_and_meets_realized_usd():
    markets = [CalibrationMarket(name, *synthetic_market(500, seed=seed, volume=True), shipped_binance_table(name)) for name, seed in (("BTC", 3), ("ETH", 4))]
    options = {"from_ms": 48 * HOUR_MS, "until_ms": 300 * HOUR_MS, "turnover_rates": (1.0, 4.0), "volatility_exponents": (0.0, 1.0)}
    first = calibrate_model4(markets, **options)
    assert calibrate_model4(markets, **options).fitted_params() == first.fitted_params()
    late = [
        CalibrationMarket(
            m.name,
            replace(m.series, close=np.where(m.series.ts_ms >= options["until_ms"], m.series.close * 1.01, m.series.close)),
            RealizedLiquidations(HOUR_MS, m.liquidations.ts_ms, np.where(m.liquidations.ts_ms >= options["until_ms"], 1.0, m.liquidations.long_usd), m.liquidations.short_usd),
            m.margin_table,
        )
        for m in markets
    ]
    assert calibrate_model4(late, **options).fitted_params() == first.fitted_params()
    params = first.params
    assert abs(sum(params.weights) - 1) < 1e-9 and params.turnover_rate in (1.0, 4.0) and params.volatility_exponent in (0.0, 1.0)
    assert len(first.candidates) == 4 and set(first.markets) == {"BTC", "ETH"}
    # The share makes predicted and realized USD meet over both markets and sides (geometric mean).
    ratios = [first.markets[name][f"predicted_to_realized_{side}"] for name in ("BTC", "ETH") for side in ("long", "short")]
    assert float(np.exp(np.mean(np.log(ratios)))) == pytest.approx(1.0, rel=2e-3)
    with pytest.raises(ValueError, match="no liquidation bar"):
        calibrate_model4(markets, from_ms=10**15, until_ms=10**16)


@needs_real_data(REAL / "multicoin-binance1h-coinglass4h")
def test_refitting_model4_on_the_real_data_reproduces_the_stored_fit():
    _, document = fit_model4(REAL)
    stored = json.loads(resources.files("engine.models").joinpath("model4_fit.json").read_text())
    assert document["params"] == stored["params"] and document["calibration"] == stored["calibration"]
