"""Golden frames: every model on a fixed slice of the real 5m data, against numbers stored on purpose.

The stored file holds, per model and range, the frame's id, grid ends, the
per-column totals of each side, the last column, stats and clusters, rounded
to whole USD. A change to any of them is either a bug or a new model version;
after checking which, regenerate with

    .venv/bin/python tests/unit/test_golden.py --regenerate

The real data stays in ../shared/data/real (never copied here): only the
engine's outputs are stored.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
if __name__ == "__main__":
    sys.path.insert(0, str(REPO_ROOT))
    sys.path.insert(0, str(Path(__file__).resolve().parent))

from engine.build import build_frames  # noqa: E402
from engine.models import MODELS  # noqa: E402
from real_data import BTC_SET, needs_real_data  # noqa: E402
from service.compute.scoring import parse_time, read_candles  # noqa: E402

CANDLES = BTC_SET / "binance_um_BTCUSDT_5m_klines_oi_20260525-20260531.csv"
GOLDEN = Path(__file__).resolve().parent / "golden" / "real_5m_frames.json"
# The slice: every 5m bar before this instant (the file starts 2026-05-25 15:55).
UNTIL = "2026-05-30T00:00:00Z"
RANGES = ("12h", "24h", "3d")
ROWS = 100


def compute() -> dict[str, Any]:
    series = read_candles(CANDLES)
    series = series.slice(0, int(np.searchsorted(series.ts_ms, parse_time(UNTIL))))
    frames = build_frames(series, models=list(MODELS), ranges=RANGES, exchange="binance", symbol="BTCUSDT", generated_at_ms=0, rows=ROWS)
    out: dict[str, Any] = {"until": UNTIL, "rows": ROWS, "frames": {}}
    for frame in frames:
        out["frames"][f"{frame.model}/{frame.range}"] = {
            "frame_id": frame.frame_id,
            "model_version": frame.model_version,
            "params_hash": frame.params_hash,
            "coverage_start_ms": frame.coverage_start_ms,
            "y_first": round(float(frame.y[0]), 6),
            "y_last": round(float(frame.y[-1]), 6),
            "column_long_usd": np.rint(frame.long_usd.sum(axis=1, dtype=np.float64)).astype(np.int64).tolist(),
            "column_short_usd": np.rint(frame.short_usd.sum(axis=1, dtype=np.float64)).astype(np.int64).tolist(),
            "last_long_usd": np.rint(frame.long_usd[-1]).astype(np.int64).tolist(),
            "last_short_usd": np.rint(frame.short_usd[-1]).astype(np.int64).tolist(),
            "stats": {key: round(float(value), 2) if not isinstance(value, dict) else {k: round(v, 2) for k, v in value.items()} for key, value in vars_of(frame.stats).items()},
            "clusters": [{key: round(value, 6) if isinstance(value, float) else value for key, value in band.items()} for band in frame.clusters],
        }
    return out


def vars_of(stats: Any) -> dict[str, Any]:
    return {name: getattr(stats, name) for name in stats.__dataclass_fields__}


@needs_real_data(CANDLES)
def test_frames_on_real_data_match_the_golden_file():
    golden = json.loads(GOLDEN.read_text())
    current = compute()
    assert golden["until"] == current["until"] and set(golden["frames"]) == set(current["frames"])
    for key, want in golden["frames"].items():
        got = current["frames"][key]
        assert (got["model_version"], got["params_hash"]) == (want["model_version"], want["params_hash"]), (
            f"{key}: the model changed; if on purpose, bump its version and regenerate the golden file"
        )
        assert got["frame_id"] == want["frame_id"] and got["coverage_start_ms"] == want["coverage_start_ms"]
        assert got["y_first"] == pytest.approx(want["y_first"], rel=1e-9) and got["y_last"] == pytest.approx(want["y_last"], rel=1e-9)
        for name in ("column_long_usd", "column_short_usd", "last_long_usd", "last_short_usd"):
            np.testing.assert_allclose(got[name], want[name], rtol=1e-6, atol=1.0, err_msg=f"{key} {name}")
        for name, value in want["stats"].items():
            if isinstance(value, dict):
                for k, v in value.items():
                    assert got["stats"][name][k] == pytest.approx(v, rel=1e-5, abs=0.02), (key, name, k)
            else:
                assert got["stats"][name] == pytest.approx(value, rel=1e-6, abs=0.02), (key, name)
        assert len(got["clusters"]) == len(want["clusters"]), key
        for mine, theirs in zip(got["clusters"], want["clusters"], strict=True):
            assert mine["side"] == theirs["side"]
            for field in ("price_low", "price_high", "usd", "share", "distance"):
                assert mine[field] == pytest.approx(theirs[field], rel=1e-5, abs=1e-6), (key, field)


if __name__ == "__main__":
    if sys.argv[1:] != ["--regenerate"]:
        sys.exit(f"usage: {sys.argv[0]} --regenerate")
    GOLDEN.parent.mkdir(exist_ok=True)
    GOLDEN.write_text(json.dumps(compute(), separators=(",", ":")) + "\n")
    print(f"wrote {GOLDEN}")
