"""Engine benchmark: frames, model runs and a market's full refresh on synthetic random-walk markets.

Each case is warmed up (which also compiles the numba kernels, or loads them
from numba's on-disk cache), then repeated; the median wall time is reported.
The slow per-level reference (tests/unit/reference_models.py) runs once on
the 24h case; ``ratio_vs_reference`` is how many times faster a case doing
the same job is than it (null for cases with no reference run).

Cases:
- ``24h_1m_500``: build_frame, model1 (5 tiers), 24h of 1m bars, 500 rows;
  ratio against the reference, which does less (no candles, stats, clusters).
- ``24h_1m_500_model``: the model run alone (grid, per-step inputs,
  recurrence), the reference's exact job.
- ``7d_1m_1000``: build_frame, model1, 7 days of 1m bars, 1000 rows.
- ``*_model2``, ``*_model3``, ``*_model4``: the same frames under the other models;
  ``*_numpy``: the model run with the numpy kernel instead of numba.
- ``market_all``: one market's full refresh, build_frames for all 8 ranges
  × 4 models, 500 rows, from a year of 1m bars (525,600); run in a fresh
  process that also reports its peak memory (``peak_rss_mb``: the
  process's peak resident set during the refresh, interpreter and input
  series included; ``refresh_mb``: that peak minus the resident set before it).
- ``market_all_35d``: the same from 35 days of 1m bars (the service's
  default candle retention).

Usage: python bench/engine.py [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from engine import kernels  # noqa: E402
from engine.build import build_frame, build_frames, column_starts, run_model  # noqa: E402
from engine.grid import display_grid  # noqa: E402
from engine.models import get_model  # noqa: E402
from engine.ranges import DAY_MS, MINUTE_MS, RANGES  # noqa: E402
from engine.series import MarketSeries  # noqa: E402
from tests.unit.reference_models import reference_model1  # noqa: E402

MODELS = ("model1", "model2", "model3", "model4")


@dataclass
class Result:
    name: str
    median_ms: float
    ratio_vs_reference: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def random_walk(n_bars: int, step_ms: int, seed: int = 7) -> MarketSeries:
    """BTC-like 1m bars: ~0.08 % moves per bar, open interest drifting around $8bn, taker flow."""
    rng = np.random.default_rng(seed)
    ts = 1_700_000_000_000 // step_ms * step_ms + np.arange(n_bars, dtype=np.int64) * step_ms
    close = 60_000 * np.exp(np.cumsum(rng.normal(0, 8e-4, n_bars)))
    open_ = np.concatenate((close[:1], close[:-1]))
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 4e-4, n_bars)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 4e-4, n_bars)))
    open_interest = 8e9 * np.exp(np.cumsum(rng.normal(0, 5e-4, n_bars)))
    volume = rng.uniform(2e6, 2e7, n_bars)
    taker_buy = volume * rng.uniform(0.3, 0.7, n_bars)
    return MarketSeries(step_ms, ts, open_, high, low, close, volume, taker_buy, open_interest)


def window_series(range_name: str) -> MarketSeries:
    return random_walk(RANGES[range_name].span_ms // MINUTE_MS, MINUTE_MS)


def model_run_case(range_name: str, rows: int, model: str, use_numba: bool) -> Callable[[], object]:
    """The model over a whole range at 1m: grid, per-step inputs, recurrence."""
    spec = RANGES[range_name]
    series = window_series(range_name)
    model_spec = get_model(model)
    x_ms = column_starts(int(series.ts_ms[-1]), spec)

    def run() -> object:
        grid = display_grid(float(series.low.min()), float(series.high.max()), rows=rows)
        return run_model(series, model_spec, grid, x_ms, spec.column_ms, use_numba=use_numba)

    return run


def frame_case(range_name: str, rows: int, model: str) -> Callable[[], object]:
    """The whole build_frame: the model run plus candles, stats and clusters."""
    series = window_series(range_name)
    return lambda: build_frame(
        series, model=model, range_name=range_name, exchange="bench", symbol="BTCUSDT", generated_at_ms=0, rows=rows
    )


def market_case(days: int, rows: int = 500) -> Callable[[], object]:
    series = random_walk(days * DAY_MS // MINUTE_MS, MINUTE_MS)
    return lambda: build_frames(
        series, models=MODELS, ranges=list(RANGES), exchange="bench", symbol="BTCUSDT", generated_at_ms=0, rows=rows
    )


def median_ms(function: Callable[[], object], repetitions: int, warmup_s: float = 0.3) -> float:
    # Warm up for a while, not a fixed count: the first calls in a process also
    # pay for JIT loading, page faults of fresh allocations and clock ramp-up.
    function()
    deadline = time.perf_counter() + warmup_s
    while time.perf_counter() < deadline:
        function()
    times = []
    for _ in range(repetitions):
        start = time.perf_counter()
        function()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def reference_ms(range_name: str, rows: int) -> float:
    spec = RANGES[range_name]
    series = window_series(range_name)
    grid = display_grid(float(series.low.min()), float(series.high.max()), rows=rows)
    x_ms = column_starts(int(series.ts_ms[-1]), spec)
    start = time.perf_counter()
    reference_model1(series, grid, x_ms, spec.column_ms)
    return (time.perf_counter() - start) * 1e3


def _status_kb(field_name: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field_name} not in /proc/self/status")


def market_child(days: int, repetitions: int) -> None:
    """In a fresh process: time the full refresh, then its peak memory; print one JSON object."""
    refresh = market_case(days)
    median = median_ms(refresh, repetitions)
    before_kb = _status_kb("VmRSS")
    # Reset the peak so that VmHWM measures this refresh alone (Linux >= 4.0).
    Path("/proc/self/clear_refs").write_text("5")
    refresh()
    peak_kb = _status_kb("VmHWM")
    print(json.dumps({"median_ms": median, "peak_rss_mb": peak_kb / 1024, "refresh_mb": (peak_kb - before_kb) / 1024}))


def market_result(name: str, days: int, repetitions: int) -> Result:
    output = subprocess.run(
        [sys.executable, __file__, "--market-child", str(days), str(repetitions)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    measured = json.loads(output.strip().splitlines()[-1])
    extra = {"peak_rss_mb": round(measured["peak_rss_mb"], 1), "refresh_mb": round(measured["refresh_mb"], 1)}
    return Result(name, measured["median_ms"], None, extra)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="one JSON line per case")
    parser.add_argument("--market-child", nargs=2, type=int, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.market_child:
        market_child(*arguments.market_child)
        return

    results: list[Result] = []
    reference = reference_ms("24h", 500)
    fast_frame = median_ms(frame_case("24h", 500, "model1"), repetitions=200)
    results.append(Result("24h_1m_500", fast_frame, reference / fast_frame))
    fast_model = median_ms(model_run_case("24h", 500, "model1", kernels.HAVE_NUMBA), repetitions=200)
    results.append(Result("24h_1m_500_model", fast_model, reference / fast_model))
    results.append(Result("7d_1m_1000", median_ms(frame_case("7d", 1000, "model1"), repetitions=30)))
    for model in MODELS[1:]:
        results.append(Result(f"24h_1m_500_{model}", median_ms(frame_case("24h", 500, model), repetitions=100)))
        results.append(Result(f"7d_1m_1000_{model}", median_ms(frame_case("7d", 1000, model), repetitions=20)))
    numpy_24h = median_ms(model_run_case("24h", 500, "model1", False), repetitions=10)
    results.append(Result("24h_1m_500_model_numpy", numpy_24h, reference / numpy_24h))
    results.append(Result("7d_1m_1000_model_numpy", median_ms(model_run_case("7d", 1000, "model1", False), repetitions=3)))
    results.append(market_result("market_all", 365, repetitions=7))
    results.append(market_result("market_all_35d", 35, repetitions=15))
    results.append(Result("reference_24h_1m_500", reference, 1.0))

    if arguments.json:
        for result in results:
            ratio = None if result.ratio_vs_reference is None else round(result.ratio_vs_reference, 1)
            print(json.dumps({"name": result.name, "median_ms": round(result.median_ms, 4), "ratio_vs_reference": ratio, **result.extra}))
        return
    kernel = "numba" if kernels.HAVE_NUMBA else "numpy only (numba not installed)"
    print(f"engine benchmark, kernel: {kernel}")
    print(f"{'case':<28}{'median ms':>12}{'x vs reference':>16}  memory")
    for result in results:
        ratio = "" if result.ratio_vs_reference is None else f"{result.ratio_vs_reference:,.0f}"
        memory = ", ".join(f"{key} {value}" for key, value in result.extra.items())
        print(f"{result.name:<28}{result.median_ms:>12.3f}{ratio:>16}  {memory}")


if __name__ == "__main__":
    main()
