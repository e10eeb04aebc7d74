"""``liqmap demo`` as a user runs it: a subprocess, polled until the heatmap appears."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.conftest import free_port

pytestmark = pytest.mark.e2e

START_TIMEOUT_S = 90


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(f"{entry.name}: {cmdline}")
    return found


def _wait_for_frame(base: str, process: subprocess.Popen) -> httpx.Response:
    deadline = time.monotonic() + START_TIMEOUT_S
    last = "no answer"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"liqmap demo exited early with {process.returncode}")
        try:
            response = httpx.get(f"{base}/v1/heatmaps/binance/BTCUSDT/latest", params={"model": "model1", "range": "24h"}, timeout=5)
            if response.status_code == 200:
                return response
            last = f"{response.status_code} {response.text[:200]}"
        except httpx.TransportError as exc:
            last = repr(exc)
        time.sleep(0.5)
    raise AssertionError(f"no frame within {START_TIMEOUT_S} s; last: {last}")


def test_demo_serves_heatmaps_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    data_dir = tmp_path / "demo-store"
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL" and not k.startswith("LIQMAP_")}
    log_path = tmp_path / "demo.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "liqmap"), "demo", "--port", str(port), "--data-dir", str(data_dir)],
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        started = time.monotonic()
        frame = _wait_for_frame(base, process).json()
        print(f"first frame after {time.monotonic() - started:.1f} s")
        long = np.array(frame["long"], dtype=float)
        short = np.array(frame["short"], dtype=float)
        assert long.sum() > 0 and short.sum() > 0

        y = np.array(frame["y"])
        close = [c for c in frame["candles"] if c[4] is not None][-1][4]
        assert long[-1][y > close].sum() == 0 and short[-1][y < close].sum() == 0

        cg = httpx.get(
            f"{base}/api/futures/liquidation/heatmap/model1",
            params={"exchange": "Binance", "symbol": "BTCUSDT", "range": "24h"},
            timeout=10,
        ).json()
        assert cg["code"] == "0" and cg["msg"] == "success"
        assert set(cg["data"]) >= {"y_axis", "liquidation_leverage_data", "price_candlesticks"}
        assert len(cg["data"]["liquidation_leverage_data"]) > 0

        # Three synthetic venues answering as Coinglass names them, summed into "all", and said to be simulated.
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            aggregated = httpx.get(f"{base}/api/futures/liquidation/aggregated-heatmap/model1", params={"symbol": "BTC", "range": "24h"}, timeout=10)
            if aggregated.status_code == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert aggregated.status_code == 200, aggregated.text
        markets = httpx.get(f"{base}/v1/markets", timeout=10).json()["markets"]
        assert {m["exchange"] for m in markets} == {"binance", "bybit", "okx", "all"}
        assert markets and all(m["synthetic"] for m in markets)
        assert len(aggregated.json()["data"]["liquidation_leverage_data"]) > 0

        assert _processes_mentioning(str(data_dir)), "the embedded store should be running"
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            raise AssertionError("liqmap demo did not stop within 30 s of Ctrl-C")
    assert process.returncode == 0, log_path.read_text()[-2000:]
    deadline = time.monotonic() + 5
    while _processes_mentioning(str(data_dir)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _processes_mentioning(str(data_dir)) == [], "a process outlived liqmap demo"
