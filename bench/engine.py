"""Engine benchmark: the model1 recurrence on synthetic random-walk markets.

Each case is warmed up (which also compiles the numba kernel, or loads it from
numba's on-disk cache), then repeated; the median wall time is reported. The
slow per-level reference (tests/unit/reference_models.py) runs once on the 24h
case; ``ratio_vs_reference`` is how many times faster a case is than it.

Usage: python bench/engine.py [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from engine import kernels  # noqa: E402
from engine.build import build_frame, column_starts, run_model  # noqa: E402
from engine.grid import price_grid  # noqa: E402
from engine.models import get_model  # noqa: E402
from engine.ranges import MINUTE_MS, RANGES  # noqa: E402
from engine.series import MarketSeries  # noqa: E402
from tests.unit.reference_models import reference_model1  # noqa: E402


@dataclass
class Result:
    name: str
    median_ms: float
    ratio_vs_reference: float | None = None


def random_walk(n_bars: int, step_ms: int, seed: int = 7) -> MarketSeries:
    """BTC-like 1m bars: ~0.08 % moves per bar, open interest drifting around $8bn."""
    rng = np.random.default_rng(seed)
    ts = 1_700_000_000_000 // step_ms * step_ms + np.arange(n_bars, dtype=np.int64) * step_ms
    close = 60_000 * np.exp(np.cumsum(rng.normal(0, 8e-4, n_bars)))
    open_ = np.concatenate((close[:1], close[:-1]))
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 4e-4, n_bars)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 4e-4, n_bars)))
    open_interest = 8e9 * np.exp(np.cumsum(rng.normal(0, 5e-4, n_bars)))
    volume = rng.uniform(2e6, 2e7, n_bars)
    return MarketSeries(step_ms, ts, open_, high, low, close, volume, volume * 0.5, open_interest)


def model_run_case(range_name: str, rows: int, use_numba: bool) -> Callable[[], object]:
    """The model over a whole range at 1m: grid, per-step inputs, recurrence."""
    spec = RANGES[range_name]
    series = random_walk(spec.span_ms // MINUTE_MS, MINUTE_MS)
    model = get_model("model1")
    x_ms = column_starts(int(series.ts_ms[-1]), spec)

    def run() -> object:
        grid = price_grid(float(series.low.min()), float(series.high.max()), rows=rows, reach=model.reach)
        return run_model(series, model, grid, x_ms, spec.column_ms, use_numba=use_numba)

    return run


def frame_case(range_name: str, rows: int) -> Callable[[], object]:
    """The whole build_frame: the model run plus candles and stats."""
    series = random_walk(RANGES[range_name].span_ms // MINUTE_MS, MINUTE_MS)
    return lambda: build_frame(
        series, model="model1", range_name=range_name, exchange="bench", symbol="BTCUSDT", generated_at_ms=0, rows=rows
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
    series = random_walk(spec.span_ms // MINUTE_MS, MINUTE_MS)
    model = get_model("model1")
    grid = price_grid(float(series.low.min()), float(series.high.max()), rows=rows, reach=model.reach)
    x_ms = column_starts(int(series.ts_ms[-1]), spec)
    start = time.perf_counter()
    reference_model1(series, grid, x_ms, spec.column_ms)
    return (time.perf_counter() - start) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="one JSON line per case")
    arguments = parser.parse_args()

    results: list[Result] = []
    reference = reference_ms("24h", 500)
    implementations = [("numba", True)] if kernels.HAVE_NUMBA else []
    implementations.append(("numpy", False))
    for label, use_numba in implementations:
        suffix = "" if use_numba else "_numpy"
        run_24h = model_run_case("24h", 500, use_numba)
        fast = median_ms(run_24h, repetitions=200 if use_numba else 20)
        results.append(Result(f"24h_1m_500{suffix}", fast, reference / fast))
        run_7d = model_run_case("7d", 1000, use_numba)
        results.append(Result(f"7d_1m_1000{suffix}", median_ms(run_7d, repetitions=50 if use_numba else 5)))
    results.append(Result("frame_24h_1m_500", median_ms(frame_case("24h", 500), repetitions=50)))
    results.append(Result("frame_7d_1m_1000", median_ms(frame_case("7d", 1000), repetitions=20)))
    results.append(Result("reference_24h_1m_500", reference, 1.0))

    if arguments.json:
        for result in results:
            print(json.dumps({"name": result.name, "median_ms": round(result.median_ms, 4), "ratio_vs_reference": result.ratio_vs_reference}))
        return
    kernel = "numba" if kernels.HAVE_NUMBA else "numpy only (numba not installed)"
    print(f"engine benchmark, model1, 5 tiers, kernel: {kernel}")
    print(f"{'case':<24}{'median ms':>12}{'x vs reference':>16}")
    for result in results:
        ratio = "" if result.ratio_vs_reference is None else f"{result.ratio_vs_reference:,.0f}"
        print(f"{result.name:<24}{result.median_ms:>12.3f}{ratio:>16}")


if __name__ == "__main__":
    main()
