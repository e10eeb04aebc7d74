"""PNG render benchmark: a stored frame to a heatmap PNG, as GET .../latest.png does on a cache miss.

A frame is built by the engine (model1 on a BTC-like random walk at 1m, the service's
400 price rows), encoded and compressed as the store keeps it, then per case:

- ``decode``: gunzip + msgpack into FrameOut (what a cache miss pays before drawing).
- ``render``: service.wire.png.render_png alone (raster, axes, candles, clusters, legend, PNG encoding).
- ``total``: both, the cost of one cache miss.

Each case is warmed up, then repeated; the median wall time is reported, with the PNG's size.
A cache hit costs a dictionary look-up.

Usage: python bench/render.py [--json]
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import msgspec

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from bench.engine import window_series  # noqa: E402
from engine.build import build_frame  # noqa: E402
from service.api.images import render_stored  # noqa: E402
from service.wire.codec import FIELD_V1_MSGPACK, encode_frame  # noqa: E402
from service.wire.png import render_png  # noqa: E402
from service.wire.schemas import FrameOut  # noqa: E402

ROWS = 400
CASES = (("24h", 1200, 700), ("24h", 1600, 900), ("24h", 640, 400), ("7d", 1200, 700), ("1y", 1200, 700))


def median_ms(function: Callable[[], object], repetitions: int = 15, warmup_s: float = 0.3) -> float:
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


def stored_frame(range_name: str) -> bytes:
    """The frame's msgpack form, compressed, as the store holds it."""
    series = window_series("30d" if range_name == "1y" else range_name)  # a year of 1m bars is slow to build; 30d fills the 1y grid's last month
    frame = build_frame(series, model="model1", range_name=range_name, exchange="bench", symbol="BTCUSDT", generated_at_ms=0, rows=ROWS)
    return encode_frame(frame)[FIELD_V1_MSGPACK]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    decoder = msgspec.msgpack.Decoder(FrameOut)
    stored = {name: stored_frame(name) for name in {case[0] for case in CASES}}
    results = []
    for range_name, width, height in CASES:
        frame = decoder.decode(gzip.decompress(stored[range_name]))
        png = render_png(frame, width, height)
        results.append(
            {
                "case": f"{range_name}_{width}x{height}",
                "columns": len(frame.x),
                "rows": len(frame.y),
                "decode_ms": round(median_ms(lambda r=range_name: decoder.decode(gzip.decompress(stored[r]))), 2),
                "render_ms": round(median_ms(lambda f=frame, w=width, h=height: render_png(f, w, h)), 2),
                "total_ms": round(median_ms(lambda r=range_name, w=width, h=height: render_stored(stored[r], w, h)), 2),
                "png_kb": round(len(png) / 1024, 1),
            }
        )
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{'case':<18}{'grid':>10}{'decode ms':>11}{'render ms':>11}{'total ms':>10}{'PNG KB':>9}")
    for r in results:
        grid = f"{r['columns']}x{r['rows']}"
        print(f"{r['case']:<18}{grid:>10}{r['decode_ms']:>11}{r['render_ms']:>11}{r['total_ms']:>10}{r['png_kb']:>9}")


if __name__ == "__main__":
    main()
