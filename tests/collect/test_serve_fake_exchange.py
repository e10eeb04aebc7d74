"""``liqmap serve --fake-exchange`` and ``liqmap backfill`` as a user runs them: subprocesses on loopback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port

pytestmark = pytest.mark.e2e

START_TIMEOUT_S = 90
LIQMAP = str(Path(sys.executable).parent / "liqmap")
MARKETS = [f"{venue}/{symbol}" for venue in ("binance", "bybit", "okx") for symbol in ("BTCUSDT", "ETHUSDT", "SOLUSDT")] + ["all/BTC", "all/ETH", "all/SOL"]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL" and not k.startswith("LIQMAP_")}
    return {**env, **extra}


def _missing(base: str) -> list[str]:
    missing = []
    for market in MARKETS:
        try:
            response = httpx.get(f"{base}/v1/heatmaps/{market}/latest", params={"model": "model1", "range": "24h"}, timeout=5)
            if response.status_code != 200:
                missing.append(f"{market}: {response.status_code}")
        except httpx.TransportError as exc:
            missing.append(f"{market}: {exc!r}")
    return missing


def test_serve_with_the_fake_exchange_serves_every_market_and_the_aggregates(tmp_path: Path) -> None:
    port = free_port()
    log_path = tmp_path / "serve.log"
    # A short first backfill and two ranges keep the test quick; the default (3 days) is ~40 s.
    env = _env(LIQMAP_BACKFILL_DAYS="0.5", LIQMAP_RANGES="12h,24h", LIQMAP_FRAME_ROWS="100")
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [LIQMAP, "serve", "--fake-exchange", "--port", str(port), "--data-dir", str(tmp_path / "store")],
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        started = time.monotonic()
        missing = ["not asked yet"]
        while missing and time.monotonic() - started < START_TIMEOUT_S:
            assert process.poll() is None, log_path.read_text()[-3000:]
            missing = _missing(base)
            if missing:
                time.sleep(0.5)
        assert not missing, f"after {START_TIMEOUT_S} s: {missing}\n{log_path.read_text()[-3000:]}"
        print(f"every market served after {time.monotonic() - started:.1f} s")
        frame = httpx.get(f"{base}/v1/heatmaps/all/BTC/latest", params={"model": "model1", "range": "24h"}, timeout=5).json()
        assert frame["exchange"] == "all" and frame["symbol"] == "BTC"
        okx = httpx.get(f"{base}/v1/heatmaps/okx/BTCUSDT/latest", params={"model": "model1", "range": "24h"}, timeout=5).json()
        assert okx["symbol"] == "BTCUSDT" and okx["data_until"] > 0
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            raise AssertionError("liqmap serve did not stop within 30 s of Ctrl-C")
    assert process.returncode == 0, log_path.read_text()[-2000:]
    assert "websocket connected" in log_path.read_text()


def test_backfill_command_fills_the_store_with_a_progress_bar(tmp_path: Path) -> None:
    result = subprocess.run(
        [LIQMAP, "backfill", "--fake-exchange", "--exchange", "okx", "--symbol", "ETHUSDT", "--days", "0.05", "--data-dir", str(tmp_path / "store")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=_env(),
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "okx ETHUSDT [" in result.stderr and "1/1" in result.stderr
    assert "okx ETHUSDT: 72 bars" in result.stdout
    refused = subprocess.run([LIQMAP, "backfill", "--exchange", "kraken", "--symbol", "BTCUSDT"], capture_output=True, text=True, env=_env(), timeout=60)
    assert refused.returncode == 2 and "unknown exchange 'kraken'" in refused.stderr


def test_backfill_all_with_top_n_reads_each_venues_list_and_a_bad_value_is_refused(tmp_path: Path) -> None:
    env = _env(LIQMAP_MARKETS="top:3", LIQMAP_SOURCES="binance,okx", LIQMAP_FAKE_INSTRUMENTS="40")
    result = subprocess.run(
        [LIQMAP, "backfill", "--fake-exchange", "--all", "--days", "0.01", "--data-dir", str(tmp_path / "store")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    done = sorted(line.split(":")[0] for line in result.stdout.splitlines() if "bars" in line)
    # BTC, ETH and SOL trade the most on the fake venues.
    assert done == sorted(f"{venue} {symbol}" for venue in ("binance", "okx") for symbol in ("BTCUSDT", "ETHUSDT", "SOLUSDT"))
    refused = subprocess.run([LIQMAP, "collect"], capture_output=True, text=True, env=_env(LIQMAP_MARKETS="top:ten"), timeout=60)
    assert refused.returncode == 2 and "LIQMAP_MARKETS" in refused.stderr and "top:N" in refused.stderr
